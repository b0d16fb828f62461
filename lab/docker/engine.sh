#!/usr/bin/env bash
# A private Docker engine for the lab (these machines have no systemd as PID 1,
# so nothing starts dockerd for us): its own data root under build/, its own
# socket, started and stopped by the Makefile around the Docker scenario.
#   lab/docker/engine.sh start   prints DOCKER_HOST=unix:///run/tb-docker/docker.sock
#   lab/docker/engine.sh stop
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${LAB_BUILD_DIR:-$here/../../build}/docker"
run=/run/tb-docker
sock="unix://$run/docker.sock"

case "${1:-}" in
  start)
    command -v dockerd >/dev/null || { echo "ERROR: dockerd is missing: run 'apt-get install docker.io' (or 'make deps')" >&2; exit 1; }
    mkdir -p "$root" "$run"
    if [ -f "$run/dockerd.pid" ] && kill -0 "$(cat "$run/dockerd.pid")" 2>/dev/null; then
      echo "DOCKER_HOST=$sock"; exit 0
    fi
    rm -f "$run/dockerd.pid" "$run/docker.sock"
    dockerd --data-root "$root/data" --exec-root "$run/exec" -H "$sock" --pidfile "$run/dockerd.pid" \
      --storage-driver overlay2 --exec-opt native.cgroupdriver=cgroupfs \
      --default-ulimit nofile=20000:20000 --default-ulimit nproc=32768:32768 \
      >"$root/dockerd.log" 2>&1 &
    for _ in $(seq 60); do
      DOCKER_HOST="$sock" docker version >/dev/null 2>&1 && { echo "DOCKER_HOST=$sock"; exit 0; }
      sleep 0.5
    done
    echo "ERROR: dockerd did not come up; last lines of $root/dockerd.log:" >&2
    tail -n 15 "$root/dockerd.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$run/dockerd.pid" ]; then
      pid="$(cat "$run/dockerd.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    # dockerd leaves its data root (and overlays under it) mounted: 'rm -rf build' would fail
    awk -v r="$(realpath -m "$root/data")" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r |
      while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    echo "docker engine: stopped"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
