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
# Two runs: the first with an empty snapshot cache (each board's first
# case boots cold), the second with the snapshots the first left (a CI
# machine that keeps ~/.cache/hil between runs). Both with --parallel
# $PARALLEL (default 2: one case's waiting overlaps another's emulation)
# and a snapshot cache that holds a fleet's snapshots (5 boards x (a base
# + an app snapshot per distinct app command line) is about 2 GB;
# HIL_SNAPSHOT_CACHE_MAX, default here 3GiB).
#
# Env: HIL_IMAGES (default build/images), HIL (default build/hil),
#      BOARDS, SCENARIOS (default scenarios), REPORT (default
#      build/report/bench-fleet), PARALLEL (default 2).
set -euo pipefail
IMAGES=${HIL_IMAGES:-build/images}
HIL=${HIL:-build/hil}
BOARDS=${BOARDS:-pi2 pi3b+/32 pi3b+ pi4 pi5}
SCENARIOS=${SCENARIOS:-scenarios}
REPORT=${REPORT:-build/report/bench-fleet}
PARALLEL=${PARALLEL:-2}
export HIL_SNAPSHOT_CACHE_MAX=${HIL_SNAPSHOT_CACHE_MAX:-3GiB}
ref="oci:$IMAGES/pcapwatch"
[ -x "$HIL" ] || { echo "missing $HIL (make hil)" >&2; exit 1; }
[ -f "$IMAGES/pcapwatch/index.json" ] || { echo "missing $IMAGES/pcapwatch (make images)" >&2; exit 1; }

boards=$(echo "$BOARDS" | tr -s ' ' ',')
args=(run --image "$ref" --target system --progress none)
if "$HIL" run --help 2>&1 | grep -q -- '--board'; then
	args+=(--board "$boards")
	echo "== fleet: $SCENARIOS on boards $boards"
else
	echo "== fleet: this hil has no 'hil run --board' (board profiles on the system target are not in it yet):"
	echo "   running $SCENARIOS once on the default machine instead of on $boards"
fi
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# A cache sharing everything with ~/.cache/hil but the snapshots,
# initramfs and logs, which start empty.
work=$(mktemp -d /tmp/hil-bench-fleet.XXXXXX)
trap 'rm -rf "$work"' EXIT
shared=${HIL_CACHE:-$HOME/.cache/hil}
mkdir -p "$work/cache"
for d in "$shared"/*; do
	case $(basename "$d") in snapshots | initramfs | logs) ;; *) ln -s "$d" "$work/cache/$(basename "$d")" ;; esac
done
args+=(--parallel "$PARALLEL")
mkdir -p "$(dirname "$REPORT")"

fleet_run() { # $1: label, $2: report dir
	local t0 wall rc f n kinds passed
	t0=$(now_ms)
	set +e
	HIL_CACHE="$work/cache" "$HIL" "${args[@]}" --report "$2" "$SCENARIOS" >"$2.log" 2>&1
	rc=$?
	set -e
	wall=$(($(now_ms) - t0))
	f="$2/results.json"
	[ -f "$f" ] || { tail -20 "$2.log" >&2; exit 1; }
	echo "-- $1"
	# One line per case: scenario, board, verdict, boot kind and boot time.
	jq -r '["case", "board", "verdict", "boot", "boot ms", "case ms"], (.results[] | [.scenario, (.board // "-"), .verdict, (.device.boot // "-"), (.device.boot_ms // "-" | tostring), (.duration_ms | floor | tostring)]) | @tsv' "$f" |
		awk -F'\t' '{ printf "%-22s %-10s %-12s %-5s %8s %8s\n", $1, $2, $3, $4, $5, $6 }'
	n=$(jq '.results | length' "$f")
	kinds=$(jq -r '[.results[].device.boot // "?"] | group_by(.) | map("\(length) \(.[0])") | join(", ")' "$f")
	passed=$(jq '[.results[] | select(.verdict == "pass")] | length' "$f")
	printf '%s: %d cases (%d pass) in %.1f s wall (target: 35 cases <= 60 s), --parallel %s, boots: %s, exit %d\n' "$1" "$n" "$passed" "$(echo "$wall" | awk '{print $1/1000}')" "$PARALLEL" "$kinds" "$rc"
	summary+=("$(printf '%s: %.1f s wall, %d/%d pass, boots: %s' "$1" "$(echo "$wall" | awk '{print $1/1000}')" "$passed" "$n" "$kinds")")
}
summary=()
fleet_run "empty snapshot cache" "$REPORT-cold"
fleet_run "snapshots of the first run" "$REPORT"
echo "== fleet summary (snapshot cache cap $HIL_SNAPSHOT_CACHE_MAX):"
printf '   %s\n' "${summary[@]}"
