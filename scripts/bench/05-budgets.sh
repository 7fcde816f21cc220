#!/bin/bash
# The library's budgets (issue 13): what a program that uses only the
# system target links (third-party modules; no testcontainers, moby or
# OpenTelemetry), how big it and the hil CLI are, and how long every hil
# process spends in package init (GODEBUG=inittrace, `hil version`,
# median and best of RUNS; gopacket/layers alone beside it). The
# whole-process comparison of hil check with qemu's ld.so --list is in
# 10-check.sh.
#
# Env: HIL (default build/hil), RUNS (21), GO (go).
set -euo pipefail
HIL=${HIL:-build/hil}
RUNS=${RUNS:-21}
GO=${GO:-go}
[ -x "$HIL" ] || { echo "missing $HIL (make hil)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

prog=./harness/testdata/systemonly
mods() { "$GO" list -deps -f '{{with .Module}}{{.Path}}{{end}}' "$1" | sort -u | grep -v '^github.com/hilproject/hil$' | grep -c . || true; }
heavy() { "$GO" list -deps -f '{{with .Module}}{{.Path}}{{end}}' "$1" | sort -u | grep -E '^(github.com/testcontainers|github.com/moby|go.opentelemetry.io)' | tr '\n' ' ' || true; }
"$GO" build -o "$tmp/systemonly" "$prog"
size() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

h=$(heavy "$prog")
echo "library budgets:"
printf '  %-58s %s\n' "third-party modules, system-target-only program" "$(mods "$prog") (testcontainers/moby/otel: ${h:-none})"
printf '  %-58s %s\n' "third-party modules, hil CLI (every target)" "$(mods ./cmd/hil)"
printf '  %-58s %s\n' "binary size, system-target-only program" "$(size "$tmp/systemonly")"
printf '  %-58s %s\n' "binary size, hil CLI" "$(size "$HIL")"

for ((i = 0; i < RUNS; i++)); do
	GODEBUG=inittrace=1 "$HIL" version 2>&1 >/dev/null | awk '/^init/ { t += $5; if ($2 ~ /gopacket\/layers$/) l += $5 } END { printf "%.3f %.3f\n", t, l }'
done >"$tmp/init"
stat_of() { sort -n | awk '{ a[NR] = $1 } END { printf "%.2f ms median, %.2f ms best", a[int((NR + 1) / 2)], a[1] }'; }
total=$(cut -d' ' -f1 "$tmp/init" | stat_of)
layers=$(cut -d' ' -f2 "$tmp/init" | stat_of)
printf '  %-58s %s\n' "package init of every hil process (budget 5 ms)" "$total"
printf '  %-58s %s\n' "  of which gopacket/layers (the floor while hil links gopacket)" "$layers"
best=$(cut -d' ' -f1 "$tmp/init" | sort -n | head -n1)
if awk -v b="$best" 'BEGIN { exit !(b <= 5) }'; then
	echo "  init budget (<= 5 ms): met (best of $RUNS)"
else
	echo "  init budget (<= 5 ms): NOT met (best of $RUNS)"
fi
