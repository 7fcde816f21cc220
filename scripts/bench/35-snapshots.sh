#!/bin/bash
# Two-level snapshots on the system target: 8 scenarios for one image (the
# tcpdump sample) that differ only in the app's arguments (`tcpdump -c N`,
# N = 1..8), in one `hil run` with an empty snapshot cache. The first case
# boots cold and saves the image's base snapshot (hil-init idle, before the
# app); every later case restores it and starts tcpdump with its own
# arguments. Printed per case: the boot kind (cold, base, app) and the boot
# time (QEMU start to the app started), split into restored (QEMU start to
# the restored guest running) and app start (the app's command line sent
# to hil-init's "started"), next to the same 8 cases booted cold (each in a
# cache of its own: no snapshot to restore). The host's speed shows in all
# columns: compare a run's base boots with its own cold boots.
# Target: every case after the first boots from a snapshot, <= 0.5 s boot.
#
# The kernels, rootfs, init and package caches are shared with ~/.cache/hil
# (symlinked); the snapshot, initramfs and log caches are fresh.
#
# Env: HIL_IMAGES (default build/images), HIL (default build/hil),
#      COLD (1: also the cold pass, default 1).
set -euo pipefail
IMAGES=${HIL_IMAGES:-build/images}
HIL=${HIL:-build/hil}
COLD=${COLD:-1}
ref="oci:$IMAGES/tcpdump"
[ -x "$HIL" ] || { echo "missing $HIL (make hil)" >&2; exit 1; }
[ -f "$IMAGES/tcpdump/index.json" ] || { echo "missing $IMAGES/tcpdump (make images)" >&2; exit 1; }

work=$(mktemp -d /tmp/hil-bench-snap.XXXXXX)
trap 'rm -rf "$work"' EXIT
shared=${HIL_CACHE:-$HOME/.cache/hil}
fresh_cache() { # $1: dir; a cache sharing everything but snapshots, initramfs, logs
	mkdir -p "$1"
	for d in "$shared"/*; do
		case "$(basename "$d")" in snapshots | initramfs | logs) ;; *) ln -s "$d" "$1/$(basename "$d")" ;; esac
	done
}
mkdir -p "$work/scenarios"
for n in 1 2 3 4 5 6 7 8; do
	cat >"$work/scenarios/args-$n.yaml" <<YAML
name: tcpdump-c$n
description: tcpdump -c $n stops after $n frames of dns-resolver
targets: [system]
platforms: [linux/arm/v7]
app:
  args: [-i, eth0, -n, -e, -l, -U, -c, "$n"]
startup: {budget: 60s, ready: {regex: "^listening on eth0, link-type EN10MB", stream: stderr}}
steps:
  - replay: {fixture: dns-resolver, schedule: top}
  - expect_output: {regex: "^$n packets? captured\$", stream: stderr, count: "== 1", within: 30s}
  - expect_exit: {code: 0, within: 30s}
YAML
done

now_ms() { echo $(($(date +%s%N) / 1000000)); }
cases() { # results.json: scenario boot boot_ms restored_ms app_start_ms, one per line, in run order
	jq -r 'def ms: if type == "number" then (. * 10 | round / 10) else "-" end;
		.results[] | "\(.scenario) \(.device.boot // "?") \(.device.boot_ms | ms) \(.device.restored_ms | ms) \(.device.app_start_ms | ms)"' "$1"
}

echo "== snapshots: 8 cases, one hil run, an empty snapshot cache"
fresh_cache "$work/cache"
t0=$(now_ms)
set +e
HIL_CACHE="$work/cache" "$HIL" run --image "$ref" --target system --report "$work/warm" "$work/scenarios" >"$work/warm.log" 2>&1
rc=$?
set -e
wall=$(($(now_ms) - t0))
declare -A boot kind restored started
while read -r s k ms r a; do kind[$s]=$k boot[$s]=$ms restored[$s]=$r started[$s]=$a; done < <(cases "$work/warm/results.json")

declare -A cold
if [ "$COLD" = 1 ]; then
	echo "== cold: the same 8 cases, each with no snapshot to restore"
	for n in 1 2 3 4 5 6 7 8; do
		fresh_cache "$work/cold-$n"
		mkdir -p "$work/one-$n" && cp "$work/scenarios/args-$n.yaml" "$work/one-$n/"
		HIL_CACHE="$work/cold-$n" "$HIL" run --image "$ref" --target system --retries 0 --report "$work/cold-report-$n" "$work/one-$n" >/dev/null 2>&1 || true
		while read -r s k ms _; do cold[$s]="$ms ($k)"; done < <(cases "$work/cold-report-$n/results.json")
	done
fi

printf '\n%-14s %-6s %12s %12s %14s %16s\n' "case" "boot" "boot ms" "restored ms" "app start ms" "cold boot ms"
for n in 1 2 3 4 5 6 7 8; do
	s=tcpdump-c$n
	printf '%-14s %-6s %12s %12s %14s %16s\n' "$s" "${kind[$s]:-?}" "${boot[$s]:-?}" "${restored[$s]:--}" "${started[$s]:--}" "${cold[$s]:--}"
done
later=$(for n in 2 3 4 5 6 7 8; do echo "${kind[tcpdump-c$n]:-?}"; done | sort | uniq -c | awk '{printf "%s%d %s", sep, $1, $2; sep=", "}')
printf 'hil run wall time %.1f s, exit %d; cases 2-8 booted: %s (target: all base or app, <= 500 ms)\n' "$(echo "$wall" | awk '{print $1/1000}')" "$rc" "$later"
[ "$rc" -eq 0 ] || { grep -B2 -A12 -- "--- FAIL" "$work/warm.log" >&2; exit 1; }
