#!/usr/bin/env bash
# Time from Boot to the sample app's "ready" line on each target, side by
# side in one run, next to the plain tools hil wraps (chroot / qemu-user,
# docker run). Where the app cannot capture (arm/v7 under qemu-user, in the
# user target and in the container target on an x86 engine) the app never
# gets ready: the figure is the time to its first line (libpcap's
# SIOCETHTOOL error), i.e. how fast that target gives its verdict.
#
# Needs root (namespaces, a private dockerd) and the sample images
# (make images). HIL_BENCH_BOOTS boots per row (default 5, after one
# warm-up boot that is not counted); HIL_BENCH_SYSTEM=0 leaves the system
# target out.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HIL_IMAGES="$(realpath "${HIL_IMAGES:-build/images}")"
boots="${HIL_BENCH_BOOTS:-5}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

go test -run '^$' -bench '^BenchmarkReady$' -benchtime "${boots}x" -timeout 30m \
	./harness/target/internal/targetbench/ >"$out" 2>&1 || { cat "$out"; exit 1; }

echo "time from boot to ready, sample image pcapwatch (median / min of $boots boots, ms)"
printf '%-44s %10s %10s  %s\n' "target / platform" "median" "min" "measured to"
awk '
/^BenchmarkReady\// {
	name = $1; sub(/^BenchmarkReady\//, "", name); sub(/-[0-9]+$/, "", name)
	med = ""; min = ""
	for (i = 1; i <= NF; i++) { if ($i == "ms-median") med = $(i-1); if ($i == "ms-min") min = $(i-1) }
	order[++n] = name; m[name] = med; mi[name] = min
	next
}
/^--- BENCH: BenchmarkReady\// { cur = $3; sub(/^BenchmarkReady\//, "", cur); sub(/-[0-9]+$/, "", cur); next }
/median .* ms to / { sub(/.*ms to /, ""); what[cur] = $0 }
/^--- SKIP: BenchmarkReady\// { s = $3; sub(/^BenchmarkReady\//, "", s); skipped[++k] = s }
END {
	for (i = 1; i <= n; i++) printf "%-44s %10s %10s  %s\n", order[i], m[order[i]], mi[order[i]], what[order[i]]
	for (i = 1; i <= k; i++) printf "%-44s %10s %10s  %s\n", skipped[i], "-", "-", "skipped (see go test output)"
}' "$out"
grep -E '^\s+bench_test.go:[0-9]+: .*(failed|skip)' "$out" || true
