#!/usr/bin/env bash
# Memory and rate of a replay of big captures, hil next to tcpreplay on one
# veth pair in one run: generated pcaps of 2M frames (~150 MB) and 20M
# frames (~1.5 GB) of 60-byte frames, written into a temp dir and removed
# afterwards, each replayed at top speed by both tools, BIG_RUNS times
# interleaved. Printed per tool: max RSS (getrusage of the process, the
# highest of the runs), the rate the tool reports (the best run), the frames
# that reached the app end (its rx_packets counter) and the wall time.
# Target: hil's max RSS <= 64 MB for both (it streams the capture through a
# bounded window; it used to load it whole: 505 MB for the 2M frames).
# Needs root and ~1.5 GB of free disk in TMPDIR. Env: HIL (default
# build/hil), TCPREPLAY (default tcpreplay), BIG_FRAMES (default
# 2000000,20000000), BIG_RUNS (default 2), HIL_BEFORE (an older hil binary
# to add as a column).
set -euo pipefail
cd "$(dirname "$0")/../.."
HIL=${HIL:-build/hil}
if [[ ! -x $HIL ]]; then
	go build -o "$HIL" ./cmd/hil
fi
command -v "${TCPREPLAY:-tcpreplay}" >/dev/null || { echo "tcpreplay not installed (apt-get install tcpreplay)"; exit 1; }
if [[ $(id -u) -ne 0 ]]; then
	echo "25-replay-big: needs root (network namespace, AF_PACKET); run: sudo HIL=$HIL $0"
	exit 1
fi
args=(--hil "$HIL" --tcpreplay "${TCPREPLAY:-tcpreplay}" --only-big --big "${BIG_FRAMES:-2000000,20000000}" --big-runs "${BIG_RUNS:-2}")
[[ -n ${HIL_BEFORE:-} ]] && args+=(--hil-before "$HIL_BEFORE")
exec go run ./harness/replay/internal/replaybench "${args[@]}"
