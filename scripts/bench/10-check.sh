#!/bin/bash
# The static startup check (hil check / startup.Check) next to its dynamic
# equivalent: the image's own ld.so listing the libraries under qemu-user
# (`qemu-arm-static -L ROOTFS ROOTFS/lib/ld-linux-armhf.so.3 --list`), on
# the same arm/v7 rootfs of the sample image. Several runs each, median.
# Targets: the static check >= 10x faster and < 200 ms; the whole hil check
# process (start, package init, image open, check) >= 2x faster.
#
# Env: HIL_IMAGES (default build/images), HIL (default build/hil), RUNS (9).
set -euo pipefail
IMAGES=${HIL_IMAGES:-build/images}
HIL=${HIL:-build/hil}
RUNS=${RUNS:-9}
QEMU=${QEMU:-qemu-arm-static}
ref="oci:$IMAGES/pcapwatch"
platform=linux/arm/v7

for tool in "$HIL" "$(command -v "$QEMU" || true)"; do
	[ -x "$tool" ] || { echo "missing $tool (make hil; apt-get install qemu-user-static)" >&2; exit 1; }
done

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Warm-up: flattens the rootfs into the cache once and tells where it is.
json=$("$HIL" check "$ref" --platform "$platform" --json)
rootfs=$(printf '%s\n' "$json" | sed -n 's/.*"rootfs": *"\([^"]*\)".*/\1/p' | head -n1)
[ -d "$rootfs" ] || { echo "could not find the rootfs in hil check --json output" >&2; exit 1; }
loader="$rootfs/lib/ld-linux-armhf.so.3"
prog="$rootfs/opt/pcapwatch"
"$QEMU" -L "$rootfs" "$loader" --list "$prog" >/dev/null

cli=() lib=() dyn=() brd=()
for ((i = 0; i < RUNS; i++)); do
	t0=$(now_ns)
	out=$("$HIL" check "$ref" --platform "$platform" --json)
	t1=$(now_ns)
	cli+=($(((t1 - t0) / 1000)))
	# startup.Check alone, as the runner calls it (measured inside hil).
	lib+=($(printf '%s\n' "$out" | sed -n 's/.*"check_ms": *\([0-9.e+-]*\).*/\1/p' | head -n1 | awk '{printf "%d", $1 * 1e3}'))
	# The same with a board: every ELF's build attributes and the Go build
	# info read and held to a Pi 3's ISA.
	out=$("$HIL" check "$ref" --board pi3b+ --json)
	brd+=($(printf '%s\n' "$out" | sed -n 's/.*"check_ms": *\([0-9.e+-]*\).*/\1/p' | head -n1 | awk '{printf "%d", $1 * 1e3}'))
	t0=$(now_ns)
	"$QEMU" -L "$rootfs" "$loader" --list "$prog" >/dev/null
	t1=$(now_ns)
	dyn+=($(((t1 - t0) / 1000)))
done

m_lib=$(printf '%s\n' "${lib[@]}" | median)
m_brd=$(printf '%s\n' "${brd[@]}" | median)
m_cli=$(printf '%s\n' "${cli[@]}" | median)
m_dyn=$(printf '%s\n' "${dyn[@]}" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "inf" }'; }

echo "startup check on $ref ($platform), $RUNS runs each, median wall time:"
printf '  %-58s %8.2f ms\n' "startup.Check (in process, as the runner calls it)" "$(awk -v u="$m_lib" 'BEGIN{print u/1000}')"
printf '  %-58s %8.2f ms\n' "startup.Check with --board pi3b+ (ISA of every ELF)" "$(awk -v u="$m_brd" 'BEGIN{print u/1000}')"
printf '  %-58s %8.2f ms\n' "hil check (whole CLI: process start, image open, check)" "$(awk -v u="$m_cli" 'BEGIN{print u/1000}')"
printf '  %-58s %8.2f ms\n' "$QEMU ld-linux-armhf.so.3 --list (dynamic)" "$(awk -v u="$m_dyn" 'BEGIN{print u/1000}')"
echo "  speed-up vs dynamic: startup.Check $(ratio "$m_dyn" "$m_lib"), hil check CLI $(ratio "$m_dyn" "$m_cli")"
if [ "$m_lib" -lt 200000 ] && [ $((m_dyn)) -ge $((10 * m_lib)) ]; then
	echo "  target (>= 10x faster and < 200 ms): met by startup.Check"
else
	echo "  target (>= 10x faster and < 200 ms): NOT met by startup.Check"
fi
if [ $((m_dyn)) -ge $((2 * m_cli)) ]; then
	echo "  target (whole hil check process >= 2x faster): met"
else
	echo "  target (whole hil check process >= 2x faster): NOT met"
fi
