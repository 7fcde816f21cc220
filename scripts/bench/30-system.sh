#!/bin/bash
# The system target (qemu-system-arm, real Debian armmp kernel, TCG) on the
# arm/v7 sample image: cold boot to the app's ready line, warm restore from
# a snapshot to ready, restore of the base snapshot (hil-init idle) with
# other app arguments, and the 100k-frame burst fixture replayed into the
# guest through the qemustream link (pps and frames pcapwatch did not see),
# at top speed and at 100,000 pps ("sent" is the replay's rate into the
# socket; "QEMU read" counts until QEMU had read the last frame off it,
# which it does only while the guest NIC takes frames), with the image's own arguments and with a
# capture ring big enough for the whole burst; what an idle guest costs the
# host (QEMU's CPU time per second, hil-init's heartbeat included, and with
# the runner's liveness check every 250 ms) and one liveness check. Go
# benchmarks in
# harness/target/system (bench_test.go), RUNS iterations each.
# Per board profile (BenchmarkSystemBoard*, bench_board_test.go): cold boot
# and warm restore to ready on 2 vCPUs with the manifest of the sample index
# each board pulls, on the board's QEMU machine, CPU and memory, next to
# hil's generic virt machine ("no board").
# Targets on 2 cores: cold <= 5 s, warm <= 0.5 s, >= 100,000 pps with 0 loss.
#
# Env: HIL_IMAGES (default build/images), RUNS (3).
set -euo pipefail
export HIL_IMAGES=${HIL_IMAGES:-build/images}
case "$HIL_IMAGES" in /*) ;; *) HIL_IMAGES=$PWD/$HIL_IMAGES ;; esac
RUNS=${RUNS:-3}
command -v qemu-system-arm >/dev/null || { echo "missing qemu-system-arm (apt-get install qemu-system-arm)" >&2; exit 1; }
command -v qemu-system-aarch64 >/dev/null || { echo "missing qemu-system-aarch64 (apt-get install qemu-system-arm)" >&2; exit 1; }

out=$(go test -run '^$' -bench 'BenchmarkSystem' -benchtime "${RUNS}x" -timeout 30m ./harness/target/system/ 2>&1) || {
	printf '%s\n' "$out" >&2
	exit 1
}
metric() { # benchmark-name-regex unit
	printf '%s\n' "$out" | awk -v n="$1" -v u="$2" '$1 ~ n { for (i = 2; i <= NF; i++) if ($i == u) print $(i-1) }' | head -n1
}
printf 'system target, arm/v7 pcapwatch, %s runs each (load average now: %s)\n' "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
for c in 1 2; do
	printf '  %-52s %8s s   (target <= 5 s)\n' "cold boot to ready, $c vCPU" "$(metric "^BenchmarkSystemColdBoot/cpus-$c" s-to-ready)"
done
for c in 1 2; do
	printf '  %-52s %8s s   (target <= 0.5 s)\n' "app-level restore to ready, $c vCPU" "$(metric "^BenchmarkSystemWarmRestore/cpus-$c" s-to-ready)"
done
printf '  %-52s %8s s   (target <= 0.5 s)\n' "base restore, other app arguments, to the app started" "$(metric "^BenchmarkSystemBaseRestore" s-to-started)"
printf '  %-52s %8s s\n' "  ... to ready (saving its app-level snapshot too)" "$(metric "^BenchmarkSystemBaseRestore" s-to-ready)"
printf '  %-52s %8s s / %s s\n' "cold boot: QEMU start to hil-init idle / base saved in" "$(metric "^BenchmarkSystemBaseRestore" cold-s-to-idle)" "$(metric "^BenchmarkSystemBaseRestore" base-save-s)"
printf '  %-52s %8s ms\n' "cold boot: receive offload off and read back (ethtool)" "$(metric "^BenchmarkSystemBaseRestore" cold-ethtool-ms)"
echo "  per board profile, 2 vCPUs (target: cold <= 5 s, warm <= 0.5 s):"
printf '    %-16s %-44s %8s %8s\n' board "machine (manifest pulled)" cold warm
while read -r b m; do
	re=${b//+/[+]} # pi3b+ in a regular expression
	printf '    %-16s %-44s %6s s %6s s\n' "$b" "$m" "$(metric "^BenchmarkSystemBoardColdBoot/$re-" s-to-ready)" "$(metric "^BenchmarkSystemBoardWarmRestore/$re-" s-to-ready)"
done <<'BOARDS'
no-board virt,cortex-a15,512MiB(arm/v7)
virt virt,cortex-a15,512MiB(arm/v7)
pi2 virt,cortex-a7,1GiB(arm/v7)
pi3b+-32 aarch64,cortex-a53,1GiB,linux32(arm/v7)
pi3b+ aarch64,cortex-a53,1GiB(arm64)
pi4-32 aarch64,cortex-a72,1GiB,linux32(arm/v7)
pi4-64 aarch64,cortex-a72,1GiB(arm64)
pi5 aarch64,cortex-a76,2GiB(arm64)
BOARDS
printf '  %-52s %8s ms/s (QEMU CPU per second)\n' "idle guest, heartbeat every 200 ms" "$(metric "^BenchmarkSystemIdleCPU/idle" qemu-cpu-ms/s)"
printf '  %-52s %8s ms/s\n' "idle guest, liveness checked every 250 ms" "$(metric "^BenchmarkSystemIdleCPU/alive-every-250ms" qemu-cpu-ms/s)"
printf '  %-52s %8s ns\n' "one liveness check (QMP round trip)" "$(metric "^BenchmarkSystemAlive" ns/op)"
echo "  100k burst into the guest (default 2 vCPUs); target >= 100000 pps, 0 lost:"
for v in image-args ring-64MiB-snap256; do
	for s in top 100000pps; do
		m="^BenchmarkSystemReplay100k/$v/$s"
		printf '    %-40s sent %9s pps, QEMU read %8s pps, kernel dropped %s, app did not see %s of 100000\n' \
			"$s, pcapwatch $v" "$(metric "$m" pps)" "$(metric "$m" qemu-read-pps)" "$(metric "$m" pcap-dropped)" "$(metric "$m" frames-lost)"
	done
done
