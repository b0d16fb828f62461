#!/usr/bin/env bash
# `make test`: the set-up, then the fleet (and the other scenarios) in the
# foreground while the docker and ha scenarios and after them the checks (lint,
# unit, the service's tests in the shipped env) run in the background, each
# writing to build/test-logs/ (printed when everything has ended).
# Ends with each phase's wall time, the sum of the phases and the real wall time.
# Why so: the fleet is the longest path; an Ansible run keeps about half of two
# cores busy (it waits on round trips), the checks about one core. The docker
# scenario shares the machine with the fleet's converge, the checks with its
# verify (about 45% busy); all three at once left the fleet's converge a third
# of the machine.
#   lab/make-test.sh ["SCENARIOS IN THE BACKGROUND" [SCENARIO...]]
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

echo "== in the background: molecule ${beside:-(none)} (output in $logs/molecule-beside.log), then the checks" \
     "(lint, unit, app-env-test; output in $logs/checks.log); here: molecule ${rest[*]:-(none)}"
(
  rc=0
  [ -z "$beside" ] || "${after_setup[@]}" molecule MOLECULE_SCENARIOS="$beside" >"$logs/molecule-beside.log" 2>&1 || rc=1
  for phase in lint unit app-env-test; do
    echo "== $phase"
    lab/phase.sh run "$phase" "${after_setup[@]}" "$phase" || { echo "== $phase: FAILED"; rc=1; break; }
  done >"$logs/checks.log" 2>&1
  exit "$rc"
) &
background=$!
rc=0
[ "${#rest[@]}" -eq 0 ] || "${after_setup[@]}" molecule MOLECULE_SCENARIOS="${rest[*]}" 2>&1 | tee "$logs/molecule.log" || rc=1
wait "$background" || rc=1
for log in "$logs/molecule-beside.log" "$logs/checks.log"; do
  [ -f "$log" ] || continue
  echo "== output of $log"
  cat "$log"
done
finish "$rc"
