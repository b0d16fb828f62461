#!/usr/bin/env bash
# Build the lab host image (Debian 12 with systemd as PID 1) without a registry:
# debootstrap a minbase root file system, then import it as an image.
# The tag carries a hash of this recipe, so the image is rebuilt only when
# the recipe changes. Prints the image reference on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
engine="${LAB_ENGINE:-podman}"
suite="${LAB_IMAGE_SUITE:-bookworm}"
apt_mirror="${LAB_APT_MIRROR:-http://deb.debian.org/debian}"
build_dir="${LAB_BUILD_DIR:-$here/../../build}/image"

recipe_hash="$(cat "$here/build.sh" "$here/packages.txt" <(echo "$suite") | sha256sum | cut -c1-12)"
image="localhost/token-billing-lab:${suite}-${recipe_hash}"

if "$engine" image inspect "$image" >/dev/null 2>&1; then
  echo "lab image $image: up to date" >&2
  echo "$image"
  exit 0
fi

command -v debootstrap >/dev/null || {
  echo "ERROR: debootstrap is missing: run 'apt-get install debootstrap' (or 'make deps')" >&2
  exit 1
}

packages="$(grep -v '^#' "$here/packages.txt" | grep -v '^$' | paste -sd, -)"
rootfs="$build_dir/rootfs-$recipe_hash"
rm -rf "$rootfs"
mkdir -p "$rootfs"
echo "lab image $image: debootstrap $suite ($packages)" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$apt_mirror" >"$build_dir/debootstrap.log" 2>&1 || {
  echo "ERROR: debootstrap failed; last lines of $build_dir/debootstrap.log:" >&2
  tail -n 20 "$build_dir/debootstrap.log" >&2
  exit 1
}

# A container has no consoles or hardware to manage; these units only fail.
for unit in getty.target systemd-udevd.service systemd-udev-trigger.service \
  systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount \
  dev-hugepages.mount systemd-modules-load.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
rm -f "$rootfs"/var/cache/apt/archives/*.deb
: >"$rootfs/etc/machine-id"

tar -C "$rootfs" -c . | "$engine" import \
  --change 'CMD ["/sbin/init"]' \
  --change 'STOPSIGNAL SIGRTMIN+3' \
  --change "ENV container=$engine" \
  --change "LABEL org.token-billing.lab.recipe=$recipe_hash" \
  $([ "$engine" = podman ] && echo --quiet) - "$image" >/dev/null
rm -rf "$rootfs"
echo "lab image $image: built" >&2
echo "$image"
