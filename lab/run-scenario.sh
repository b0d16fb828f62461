#!/usr/bin/env bash
# Run one Molecule scenario (molecule test -s NAME) with the engine it needs:
# the docker scenario gets a private dockerd for its duration and the lab image
# loaded into it; every other scenario runs on podman (LAB_IMAGE from make).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scenario="$1"
if [ "$scenario" = docker ]; then
  export "$(lab/docker/engine.sh start)"
  trap 'lab/docker/engine.sh stop >/dev/null' EXIT
  export LAB_ENGINE=docker LAB_ANSIBLE_CONNECTION=community.docker.docker
  LAB_IMAGE="$(.venv/bin/python lab/lab.py image)"
  export LAB_IMAGE
fi
molecule test -s "$scenario"
