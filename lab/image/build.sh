#!/usr/bin/env bash
# Build the lab host image (Debian 12 with systemd as PID 1) without a registry:
# mmdebstrap a minbase root file system (apt fetches in parallel: about half
# of debootstrap's time), then import it as an image.
# The tag carries a hash of this recipe, so the image is rebuilt only when
# the recipe changes. Prints the image reference on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
engine="${LAB_ENGINE:-podman}"
suite="${LAB_IMAGE_SUITE:-bookworm}"
apt_mirror="${LAB_APT_MIRROR:-http://deb.debian.org/debian}"
build_dir="${LAB_BUILD_DIR:-$here/../../build}/image"
# One build at a time: a second one would remove the rootfs the first is
# bootstrapping, with /proc mounted inside it. The docker path below calls
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

# The test image: the lab image with packages-test.txt installed from the apt mirror.
add_test_tools() {
  [ "$want" != "$image" ] || { echo "$image"; return; }
  local tools ctr="tblab-image-build-$$"
  tools="$(grep -v '^#' "$here/packages-test.txt" | grep -v '^$' | paste -sd' ' -)"
  echo "lab image $want: $image + $tools" >&2
  "$engine" rm --force "$ctr" >/dev/null 2>&1 || true
  "$engine" run --name "$ctr" "$image" bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends $tools >/dev/null && apt-get clean" >&2 || {
    "$engine" rm --force "$ctr" >/dev/null 2>&1
    echo "ERROR: installing $tools into the lab image failed (see above)" >&2
    exit 1
  }
  "$engine" commit $([ "$engine" = podman ] && echo --quiet) --change 'CMD ["/sbin/init"]' "$ctr" "$want" >/dev/null
  "$engine" rm "$ctr" >/dev/null
  echo "lab image $want: built" >&2
  echo "$want"
}

recipe_hash="$(cat "$here/build.sh" "$here/packages.txt" <(echo "$suite") "$key_dir/id_ed25519.pub" | sha256sum | cut -c1-12)"
image="localhost/token-billing-lab:${suite}-${recipe_hash}"
# LAB_IMAGE_TEST_TOOLS=1: the image the Molecule scenarios run, the lab image plus
# packages-test.txt (tools only tests use) in a layer of its own.
want="$image"
if [ -n "${LAB_IMAGE_TEST_TOOLS:-}" ]; then
  want="${image}-test-$(sha256sum <"$here/packages-test.txt" | cut -c1-6)"
fi

if "$engine" image inspect "$want" >/dev/null 2>&1; then
  echo "lab image $want: up to date" >&2
  echo "$want"
  exit 0
fi

# Docker: take podman's image when there is one (docker import accepts fewer
# --change instructions: no STOPSIGNAL; lab.py sets it per container instead).
if [ "$engine" = docker ] && command -v podman >/dev/null; then
  LAB_ENGINE=podman "$here/build.sh" >/dev/null
  podman save "$want" | docker load >/dev/null
  echo "lab image $want: loaded into docker from podman" >&2
  echo "$want"
  exit 0
fi

if "$engine" image inspect "$image" >/dev/null 2>&1; then
  add_test_tools
  exit 0
fi

command -v mmdebstrap >/dev/null || {
  echo "ERROR: mmdebstrap is missing: run 'apt-get install mmdebstrap' (or 'make deps-lab')" >&2
  exit 1
}

packages="$(grep -v '^#' "$here/packages.txt" | grep -v '^$' | paste -sd, -)"
rootfs="$build_dir/rootfs-$recipe_hash"
rm -rf "$rootfs"
mkdir -p "$rootfs"
echo "lab image $image: mmdebstrap $suite ($packages)" >&2
# C.UTF-8: the PostgreSQL cluster the package creates is UTF8, as the role's apt run makes it.
LANG=C.UTF-8 LC_ALL=C.UTF-8 mmdebstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$apt_mirror" \
  >"$build_dir/mmdebstrap.log" 2>&1 || {
  echo "ERROR: mmdebstrap failed; last lines of $build_dir/mmdebstrap.log:" >&2
  tail -n 20 "$build_dir/mmdebstrap.log" >&2
  exit 1
}

# A container has no consoles or hardware to manage; these units only fail.
for unit in getty.target systemd-udevd.service systemd-udev-trigger.service \
  systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount \
  dev-hugepages.mount systemd-modules-load.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
rm -f "$rootfs"/var/cache/apt/archives/*.deb
# The server packages the roles install are here so that a converge does not wait
# on apt; none runs until the role that owns it enables it on its host.
chroot "$rootfs" systemctl disable --quiet postgresql.service nginx.service haproxy.service \
  etcd.service patroni.service pgbackrest.service keepalived.service

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
add_test_tools
