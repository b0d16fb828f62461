#!/usr/bin/env bash
# `make test`: the set-up, then three things at once: the checks (lint, unit, the
# service's tests in the shipped env, one after the other), the docker scenario,
# and the other Molecule scenarios (fleet, upstream). The first two write to
# build/test-logs/, printed when everything has ended.
# Ends with each phase's wall time, the sum of the phases and the real wall time.
# Why at once: an Ansible run keeps about half of two cores busy (it waits on
# round trips), the checks about a third; the fleet is the longest path.
#   lab/make-test.sh [SCENARIO_IN_BACKGROUND [SCENARIO...]]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
beside="${1:-docker}"; shift || true
rest=("$@")
# After the set-up, no phase remakes it: two mirror builds at once would race.
after_setup=(make --no-print-directory -o deps -o venv -o setup -o image -o mirror)
logs=build/test-logs
mkdir -p "$logs"
export PHASE_LOG="$PWD/build/test-phases.tsv"
: >"$PHASE_LOG"
start=$(date +%s)

finish() {
  echo "make test: wall time per phase"
  TEST_WALL_SECONDS=$(( $(date +%s) - start )) lab/phase.sh table
  exit "$1"
}

lab/phase.sh run setup make --no-print-directory setup || finish 1

echo "== at once: the checks (lint, unit, app-env-test; output in $logs/checks.log), molecule $beside" \
     "(output in $logs/molecule-$beside.log) and molecule ${rest[*]:-(none)} (below)"
(
  for phase in lint unit app-env-test; do
    echo "== $phase"
    lab/phase.sh run "$phase" "${after_setup[@]}" "$phase" || { echo "== $phase: FAILED"; exit 1; }
  done
) >"$logs/checks.log" 2>&1 &
checks=$!
"${after_setup[@]}" molecule MOLECULE_SCENARIOS="$beside" >"$logs/molecule-$beside.log" 2>&1 &
background=$!
rc=0
[ "${#rest[@]}" -eq 0 ] || "${after_setup[@]}" molecule MOLECULE_SCENARIOS="${rest[*]}" || rc=1
wait "$background" || rc=1
wait "$checks" || rc=1
for log in "$logs/molecule-$beside.log" "$logs/checks.log"; do
  echo "== output of $log"
  cat "$log"
done
finish "$rc"
