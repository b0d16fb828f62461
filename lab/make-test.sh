#!/usr/bin/env bash
# `make test`: the set-up, then the checks (lint, unit, the service's tests in the
# shipped env, one after the other) beside the docker scenario, then the other
# Molecule scenarios alone (the fleet's load phases get the machine to themselves).
# Ends with each phase's wall time, the sum of the phases and the real wall time.
# An idle-rerun converge leaves about half of two cores free: the checks use it.
#   lab/make-test.sh [SCENARIO_BESIDE_CHECKS [SCENARIO...]]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
beside="${1:-docker}"; shift || true
after=("$@")
# After the set-up, no phase remakes it: two mirror builds at once would race.
after_setup=(make --no-print-directory -o deps -o venv -o setup -o image -o mirror)
mkdir -p build/test-logs
export PHASE_LOG="$PWD/build/test-phases.tsv"
: >"$PHASE_LOG"
start=$(date +%s)

finish() {
  echo "make test: wall time per phase"
  TEST_WALL_SECONDS=$(( $(date +%s) - start )) lab/phase.sh table
  exit "$1"
}

lab/phase.sh run setup make --no-print-directory setup || finish 1

checks_log=build/test-logs/checks.log
echo "== checks (lint, unit, app-env-test) beside molecule $beside; their output: $checks_log, printed when they end"
(
  for phase in lint unit app-env-test; do
    echo "== $phase"
    lab/phase.sh run "$phase" "${after_setup[@]}" "$phase" || { echo "== $phase: FAILED"; exit 1; }
  done
) >"$checks_log" 2>&1 &
checks=$!
rc=0
"${after_setup[@]}" molecule MOLECULE_SCENARIOS="$beside" || rc=1
wait "$checks" || rc=1
echo "== output of the checks ($checks_log)"
cat "$checks_log"
[ "$rc" -eq 0 ] || finish 1

[ "${#after[@]}" -eq 0 ] || "${after_setup[@]}" molecule MOLECULE_SCENARIOS="${after[*]}" || finish 1
finish 0
