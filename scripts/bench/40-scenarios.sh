#!/bin/bash
# The bundled scenarios (scenarios/*.yaml) on the system target against the
# sample image, the way `make test` and a CI gate run them. A first pass
# makes sure every snapshot exists (the burst scenario's app arguments get
# their own); the second pass is the measured one: every boot warm.
# Printed side by side: first pass (cold where no snapshot existed yet) and
# the warm pass, with each case's time and boot mode.
# Target: the warm pass <= 30 s on 2 cores.
#
# Env: HIL_IMAGES (default build/images), HIL (default build/hil),
#      SCENARIOS (default scenarios), REPORT (default build/report/bench-scenarios).
set -euo pipefail
IMAGES=${HIL_IMAGES:-build/images}
HIL=${HIL:-build/hil}
SCENARIOS=${SCENARIOS:-scenarios}
REPORT=${REPORT:-build/report/bench-scenarios}
ref="oci:$IMAGES/pcapwatch"

[ -x "$HIL" ] || { echo "missing $HIL (make hil)" >&2; exit 1; }
[ -f "$IMAGES/pcapwatch/index.json" ] || { echo "missing $IMAGES/pcapwatch (make images)" >&2; exit 1; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f s", ms / 1000 }'; }

run() { # $1: report dir; prints hil's per-case lines, returns hil's status
	"$HIL" run --image "$ref" --target system --progress plain --report "$1" "$SCENARIOS" |
		grep -E '^(--- |hil run:|[0-9]+ case)' || true
	return "${PIPESTATUS[0]}"
}

echo "== first pass (makes the snapshots; cold boots where none existed)"
t0=$(now_ms)
set +e; run "$REPORT/first"; first_rc=$?; set -e
first=$(($(now_ms) - t0))

echo "== warm pass (measured)"
t0=$(now_ms)
set +e; run "$REPORT/warm"; warm_rc=$?; set -e
warm=$(($(now_ms) - t0))

# Boot modes of the warm pass, from its JSON report.
boots=$(grep -o '"boot": *"[a-z]*"' "$REPORT/warm/results.json" | sed 's/.*"\([a-z]*\)"$/\1/' | sort | uniq -c | awk '{printf "%s%d %s", sep, $1, $2; sep=", "}')

printf '\n%-44s %12s %12s\n' "bundled scenarios, system target" "first pass" "warm pass"
printf '%-44s %12s %12s\n' "wall time (hil run, whole process)" "$(secs "$first")" "$(secs "$warm")"
printf '%-44s %12s %12s\n' "exit status" "$first_rc" "$warm_rc"
echo "warm pass boots: ${boots:-unknown}; target: warm pass <= 30 s on 2 cores ($(nproc) here)"
echo "reports: $REPORT/warm/report.html"
[ "$warm_rc" -eq 0 ]
