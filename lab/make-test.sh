#!/usr/bin/env bash
# `make test`: the set-up, then three chains side by side, each writing to
# build/test-logs/ (printed when everything has ended):
#   - the fleet (and the other scenarios) in the foreground: the longest path;
#   - the docker and ha scenarios, one after the other, at nice TEST_NICE_BESIDE;
#   - the checks (lint, unit, the service's tests in the shipped env) at nice
#     TEST_NICE_CHECKS, from the start.
# Ends with each phase's wall time, the sum of the phases and the real wall time.
# Why so: CPU is what the run waits for (2 cores for about 2,900 core-seconds),
# and an Ansible run leaves the machine idle between its round trips. The checks
# are pure CPU with nothing to wait for: at a low priority they fill those gaps
# instead of queueing behind the scenarios. The controllers of the scenarios beside
# the fleet yield to the fleet's (the hosts' processes run in their containers' own
# cgroups, which nice does not touch: the ha drills' database hosts keep their CPU).
#   lab/make-test.sh ["SCENARIOS BESIDE" [SCENARIO...]]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
beside="${1-docker}"; shift || true
rest=("$@")
# After the set-up, no phase remakes it: two mirror builds at once would race.
after_setup=(make --no-print-directory -o deps -o deps-lab -o venv -o venv-lab -o venv-mirror -o setup -o image -o mirror)
logs=build/test-logs
mkdir -p "$logs"
export PHASE_LOG="$PWD/build/test-phases.tsv"
: >"$PHASE_LOG"
start=$(date +%s)

# CI shows only the end of the output: when something failed, the lines that say
# what (pytest's summary, Ansible's fatal results, failed phases) come last.
failures() {
  echo "make test: what failed"
  local plain="$logs/plain.txt"
  # without colours and Molecule's frame ("  │ ")
  sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^ *│ \{0,1\}//' "$logs"/molecule*.log "$logs"/checks.log 2>/dev/null >"$plain"
  grep -E -A6 '^fatal: \[|^failed: \[' "$plain" | grep -v '^--$' | tail -n 40
  grep -E '^E  ' "$plain" | head -n 30
  awk '/short test summary info/ { f = 1; next } f && /^=+ / { f = 0 } f' "$plain" | head -n 40
  grep -E '^== .*FAILED' "$plain"
}

finish() {
  [ "$1" -eq 0 ] || failures
  echo "make test: wall time per phase"
  TEST_WALL_SECONDS=$(( $(date +%s) - start )) lab/phase.sh table
  exit "$1"
}

rm -f "$logs"/*.log
lab/phase.sh run setup make --no-print-directory setup 2>&1 | tee "$logs/setup.log" || finish 1

nice_beside=${TEST_NICE_BESIDE:-4}
nice_checks=${TEST_NICE_CHECKS:-8}
echo "== beside: molecule ${beside:-(none)} at nice $nice_beside (output in $logs/molecule-beside.log);" \
     "the checks (lint, unit, app-env-test) at nice $nice_checks (output in $logs/checks.log);" \
     "here: molecule ${rest[*]:-(none)}"
pids=()
if [ -n "$beside" ]; then
  nice -n "$nice_beside" "${after_setup[@]}" molecule MOLECULE_SCENARIOS="$beside" >"$logs/molecule-beside.log" 2>&1 &
  pids+=($!)
fi
(
  renice -n "$nice_checks" -p "$BASHPID" >/dev/null
  for phase in lint unit app-env-test; do
    echo "== $phase"
    lab/phase.sh run "$phase" "${after_setup[@]}" "$phase" || { echo "== $phase: FAILED"; exit 1; }
  done >"$logs/checks.log" 2>&1
) &
pids+=($!)
rc=0
[ "${#rest[@]}" -eq 0 ] || "${after_setup[@]}" molecule MOLECULE_SCENARIOS="${rest[*]}" 2>&1 | tee "$logs/molecule.log" || rc=1
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
for log in "$logs/molecule-beside.log" "$logs/checks.log"; do
  [ -f "$log" ] || continue
  echo "== output of $log"
  cat "$log"
done
finish "$rc"
