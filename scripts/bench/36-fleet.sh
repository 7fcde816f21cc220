#!/bin/bash
# A fleet run on the system target: the bundled scenarios (scenarios/*.yaml)
# on every board profile in BOARDS, in one `hil run` on this machine, with
# the boot kind (cold, base, app snapshot) and boot time of every case.
# Target (issue 19): 5 boards x 7 scenarios = 35 cases <= 60 s wall on 2
# cores, every case after a board's first from a snapshot.
#
# The boards are input: BOARDS="pi2 pi3b+/32 pi3b+ pi4 pi5" (the default:
# the ARMv7 and ARMv8 boards the system target models, 32- and 64-bit). It
# needs `hil run --board` (board profiles on the system target); a hil
# without it runs the cases once on the system target's default machine
# and says so.
#
# Env: HIL_IMAGES (default build/images), HIL (default build/hil),
#      BOARDS, SCENARIOS (default scenarios), REPORT (default
#      build/report/bench-fleet).
set -euo pipefail
IMAGES=${HIL_IMAGES:-build/images}
HIL=${HIL:-build/hil}
BOARDS=${BOARDS:-pi2 pi3b+/32 pi3b+ pi4 pi5}
SCENARIOS=${SCENARIOS:-scenarios}
REPORT=${REPORT:-build/report/bench-fleet}
ref="oci:$IMAGES/pcapwatch"
[ -x "$HIL" ] || { echo "missing $HIL (make hil)" >&2; exit 1; }
[ -f "$IMAGES/pcapwatch/index.json" ] || { echo "missing $IMAGES/pcapwatch (make images)" >&2; exit 1; }

boards=$(echo "$BOARDS" | tr -s ' ' ',')
args=(run --image "$ref" --target system --progress none --report "$REPORT")
if "$HIL" run --help 2>&1 | grep -q -- '--board'; then
	args+=(--board "$boards")
	echo "== fleet: $SCENARIOS on boards $boards"
else
	echo "== fleet: this hil has no 'hil run --board' (board profiles on the system target are not in it yet):"
	echo "   running $SCENARIOS once on the default machine instead of on $boards"
fi
now_ms() { echo $(($(date +%s%N) / 1000000)); }
t0=$(now_ms)
set +e
"$HIL" "${args[@]}" "$SCENARIOS" >"$REPORT.log" 2>&1
rc=$?
set -e
wall=$(($(now_ms) - t0))
f="$REPORT/results.json"
[ -f "$f" ] || { tail -20 "$REPORT.log" >&2; exit 1; }
# One line per case: scenario, board, verdict, boot kind and boot time.
jq -r '["case", "board", "verdict", "boot", "boot ms"], (.results[] | [.scenario, (.board // "-"), .verdict, (.device.boot // "-"), (.device.boot_ms // "-" | tostring)]) | @tsv' "$f" |
	awk -F'\t' '{ printf "%-22s %-10s %-12s %-5s %8s\n", $1, $2, $3, $4, $5 }'
n=$(jq '.results | length' "$f")
kinds=$(jq -r '[.results[].device.boot // "?"] | group_by(.) | map("\(length) \(.[0])") | join(", ")' "$f")
passed=$(jq '[.results[] | select(.verdict == "pass")] | length' "$f")
printf '%d cases (%d pass) in %.1f s wall (target: 35 cases <= 60 s), boots: %s, exit %d\n' "$n" "$passed" "$(echo "$wall" | awk '{print $1/1000}')" "$kinds" "$rc"
