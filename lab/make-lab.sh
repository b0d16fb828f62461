#!/usr/bin/env bash
# `make lab`: Debian packages then the lab image, beside the mirror builders' venv
# then the mirror, beside the venv with Ansible; then the hosts and the converge of
# playbooks/site.yml. Ends with each
# phase's wall time against the 5-minute aim (a fresh machine), and the time of
# the previous make lab.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mk=(make --no-print-directory)
mkdir -p build
export PHASE_LOG="$PWD/build/lab-phases.tsv"
: >"$PHASE_LOG"
start=$(date +%s)

finish() {
  local took=$(( $(date +%s) - start )) prev
  prev=$(cat build/make-lab.seconds 2>/dev/null || echo none)
  echo "make lab: wall time per phase"
  TEST_WALL_SECONDS=$took TEST_BUDGET_SECONDS=300 lab/phase.sh table
  [ "$1" -ne 0 ] || echo "$took s" >build/make-lab.seconds
  echo "make lab: $([ "$1" -eq 0 ] && echo done || echo FAILED) in $took s (previous make lab: $prev)"
  exit "$1"
}

( lab/phase.sh run "Debian packages" "${mk[@]}" deps-lab && lab/phase.sh run "lab image" "${mk[@]}" -o deps-lab image ) &
packages_then_image=$!
( lab/phase.sh run "mirror's venv" "${mk[@]}" venv-mirror && lab/phase.sh run mirror "${mk[@]}" -o venv-mirror mirror ) &
mirror=$!
lab/phase.sh run "venv (Ansible)" "${mk[@]}" venv-lab
rc=$?
wait "$packages_then_image" || rc=1
wait "$mirror" || rc=1
[ "$rc" -eq 0 ] || finish 1
lab/phase.sh run "start the hosts" .venv/bin/python lab/lab.py up || finish 1
lab/phase.sh run "converge site.yml" .venv/bin/python lab/lab.py converge playbooks/site.yml || finish 1
finish 0
