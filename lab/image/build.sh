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
# One build at a time: a second one would remove the rootfs the first is
# debootstrapping, with /proc mounted inside it. The docker path below calls
# this script again for podman's image: that call runs under our lock.
mkdir -p "$build_dir"
if [ -z "${LAB_IMAGE_BUILD_LOCKED:-}" ]; then
  exec 9>"$build_dir/.lock"
  flock 9
  export LAB_IMAGE_BUILD_LOCKED=1
fi

# The lab's SSH key: made once per machine (LAB_KEY_DIR, kept with the image store
# so that every clone of the project uses the same image), copied into build/; its
# public half is baked into the image for the deploy user.
key_dir="${LAB_BUILD_DIR:-$here/../../build}/lab-ssh"
machine_key_dir="${LAB_KEY_DIR:-${HOME:-/root}/.cache/token-billing/lab-ssh}"
if [ ! -f "$key_dir/id_ed25519" ]; then
  if [ ! -f "$machine_key_dir/id_ed25519" ]; then
    command -v ssh-keygen >/dev/null || { echo "ERROR: ssh-keygen is missing: run 'apt-get install openssh-client'" >&2; exit 1; }
    mkdir -p "$machine_key_dir" && chmod 700 "$machine_key_dir"
    ssh-keygen -q -t ed25519 -N '' -C token-billing-lab -f "$machine_key_dir/id_ed25519"
  fi
  mkdir -p "$key_dir" && chmod 700 "$key_dir"
  install -m 0600 "$machine_key_dir/id_ed25519" "$key_dir/id_ed25519"
  install -m 0644 "$machine_key_dir/id_ed25519.pub" "$key_dir/id_ed25519.pub"
fi

recipe_hash="$(cat "$here/build.sh" "$here/packages.txt" <(echo "$suite") "$key_dir/id_ed25519.pub" | sha256sum | cut -c1-12)"
image="localhost/token-billing-lab:${suite}-${recipe_hash}"

if "$engine" image inspect "$image" >/dev/null 2>&1; then
  echo "lab image $image: up to date" >&2
  echo "$image"
  exit 0
fi

# Docker: take podman's image when there is one (docker import accepts fewer
# --change instructions: no STOPSIGNAL; lab.py sets it per container instead).
if [ "$engine" = docker ] && command -v podman >/dev/null; then
  LAB_ENGINE=podman "$here/build.sh" >/dev/null
  podman save "$image" | docker load >/dev/null
  echo "lab image $image: loaded into docker from podman" >&2
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

# A deploy user with passwordless sudo and the lab key, as on a real fleet; key
# logins only. pam_loginuid cannot write in an unprivileged container.
chroot "$rootfs" useradd --create-home --shell /bin/bash deploy
install -d -m 0700 "$rootfs/home/deploy/.ssh"
install -m 0600 "$key_dir/id_ed25519.pub" "$rootfs/home/deploy/.ssh/authorized_keys"
chroot "$rootfs" chown -R deploy:deploy /home/deploy/.ssh
echo 'deploy ALL=(ALL) NOPASSWD:ALL' >"$rootfs/etc/sudoers.d/deploy"
chmod 0440 "$rootfs/etc/sudoers.d/deploy"
printf 'PasswordAuthentication no\nPermitRootLogin no\n' >"$rootfs/etc/ssh/sshd_config.d/lab.conf"
sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' "$rootfs/etc/pam.d/sshd"
: >"$rootfs/etc/machine-id"

changes=(--change 'CMD ["/sbin/init"]' --change "ENV container=$engine" --change "LABEL org.token-billing.lab.recipe=$recipe_hash")
[ "$engine" = podman ] && changes+=(--change 'STOPSIGNAL SIGRTMIN+3' --quiet)
tar -C "$rootfs" -c . | "$engine" import "${changes[@]}" - "$image" >/dev/null
rm -rf "$rootfs"
echo "lab image $image: built" >&2
echo "$image"
