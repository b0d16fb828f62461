#!/usr/bin/env bash
# `make test`: the set-up, then the fleet (and the other scenarios) in the
# foreground while the ha and docker scenarios run one after the other in the
# background, and the checks (lint, unit, the service's tests in the shipped env)
# beside the second of them; each writes to build/test-logs/ (printed when
# everything has ended). Ends with each phase's wall time, the sum of the phases
# and the real wall time.
# Why so: the fleet is the longest path. Its converge and the first background
# scenario's both need the CPU (ha's converge costs it less than docker's: 170 s
# against 280-320 s for the fleet's); after them the fleet's rollouts and ha's
# drills mostly wait on their hosts (1.0-1.4 of two cores busy), which leaves room
# for the checks (about one core) and docker's converge.
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

read -ra beside_list <<<"$beside"
echo "== in the background: molecule ${beside_list[*]:-(none)} (output in $logs/molecule-beside*.log), and" \
     "after ${beside_list[0]:-set-up} the checks beside the rest (lint, unit, app-env-test; output in $logs/checks.log);" \
     "here: molecule ${rest[*]:-(none)}"
(
  rc=0
  [ "${#beside_list[@]}" -eq 0 ] ||
    "${after_setup[@]}" molecule MOLECULE_SCENARIOS="${beside_list[0]}" >"$logs/molecule-beside.log" 2>&1 || rc=1
  pid=
  if [ "${#beside_list[@]}" -gt 1 ]; then
    "${after_setup[@]}" molecule MOLECULE_SCENARIOS="${beside_list[*]:1}" >"$logs/molecule-beside2.log" 2>&1 &
    pid=$!
  fi
  for phase in lint unit app-env-test; do
    echo "== $phase"
    lab/phase.sh run "$phase" "${after_setup[@]}" "$phase" || { echo "== $phase: FAILED"; rc=1; break; }
  done >"$logs/checks.log" 2>&1
  [ -z "$pid" ] || wait "$pid" || rc=1
  exit "$rc"
) &
background=$!
rc=0
[ "${#rest[@]}" -eq 0 ] || "${after_setup[@]}" molecule MOLECULE_SCENARIOS="${rest[*]}" 2>&1 | tee "$logs/molecule.log" || rc=1
wait "$background" || rc=1
for log in "$logs/molecule-beside.log" "$logs/molecule-beside2.log" "$logs/checks.log"; do
  [ -f "$log" ] || continue
  echo "== output of $log"
  cat "$log"
done
finish "$rc"
