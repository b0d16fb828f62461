#!/usr/bin/env bash
# Run one Molecule scenario (molecule test -s NAME) with the engine it needs:
# the docker scenario gets a private dockerd for its duration and the lab image
# loaded into it; every other scenario runs on podman (LAB_IMAGE from make). Both
# run the lab image with the test tools (lab/image/packages-test.txt).
# Molecule reads every scenario's file, so the engine is fixed per scenario,
# not taken from the caller's LAB_ENGINE.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scenario="$1"
if [ "$scenario" = docker ]; then
  export "$(lab/docker/engine.sh start)"
  trap 'lab/docker/engine.sh stop >/dev/null' EXIT
  export LAB_ENGINE=docker
  LAB_IMAGE="$(LAB_IMAGE_TEST_TOOLS=1 .venv/bin/python lab/lab.py image)"
  export LAB_IMAGE
else
  export LAB_ENGINE=podman
fi
molecule test -s "$scenario"
