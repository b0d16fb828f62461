#!/usr/bin/env bash
# Wall time of each phase of `make test`, printed as a table at the end.
#   lab/phase.sh run NAME CMD...   run CMD, record NAME, its seconds and its result
#   lab/phase.sh table             print the recorded phases, their sum and the wall time
#                                  (TEST_WALL_SECONDS, when phases ran side by side)
# Records go to $PHASE_LOG (one "name<TAB>seconds<TAB>result" line per phase);
# without it, run only runs CMD.
set -uo pipefail
log="${PHASE_LOG:-}"

case "${1:-}" in
  run)
    name="$2"; shift 2
    [ -n "$log" ] || exec "$@"
    start=$(date +%s)
    "$@"; rc=$?
    result=passed; [ "$rc" -eq 0 ] || result=FAILED
    printf '%s\t%s\t%s\n' "$name" "$(( $(date +%s) - start ))" "$result" >>"$log"
    exit "$rc" ;;
  table)
    [ -n "$log" ] && [ -s "$log" ] || { echo "no phase was recorded (PHASE_LOG=$log)"; exit 0; }
    awk -F'\t' -v budget="${TEST_BUDGET_SECONDS:-1800}" -v wall="${TEST_WALL_SECONDS:-}" '
      { printf "  %-28s %6d s  %s\n", $1, $2, $3; total += $2 }
      END {
        if (wall == "") wall = total
        else printf "  %-28s %6d s  (phases that ran side by side count twice)\n", "sum of the phases", total
        printf "  %-28s %6d s  (%d min %02d s; budget %d min)\n", "wall time", wall, wall / 60, wall % 60, budget / 60
        if (wall > budget) printf "  over budget by %d s\n", wall - budget
      }' "$log" ;;
  *)
    echo "usage: lab/phase.sh run NAME CMD... | lab/phase.sh table" >&2; exit 2 ;;
esac
