#!/usr/bin/env bash
# hil replay vs tcpreplay, side by side on one veth pair in one run:
#  - top speed on pcapfixtures/burst-100k.pcap: frames counted and rate
#    measured on the receiving end (AF_PACKET, kernel timestamps) for both;
#  - x1 on pcapfixtures/home-minute.pcap (~58 s per tool): inter-frame gap
#    error at the receiver against the fixture's own gaps, same method for
#    both.
# Needs root. Env: HIL (default build/hil), TCPREPLAY (default tcpreplay),
# BURST_RUNS (default 3), SKIP_TIMING=1 to skip the 2-minute x1 part.
set -euo pipefail
cd "$(dirname "$0")/../.."
HIL=${HIL:-build/hil}
if [[ ! -x $HIL ]]; then
	go build -o "$HIL" ./cmd/hil
fi
command -v "${TCPREPLAY:-tcpreplay}" >/dev/null || { echo "tcpreplay not installed (apt-get install tcpreplay)"; exit 1; }
if [[ $(id -u) -ne 0 ]]; then
	echo "20-replay: needs root (network namespace, AF_PACKET); run: sudo HIL=$HIL $0"
	exit 1
fi
args=(--hil "$HIL" --tcpreplay "${TCPREPLAY:-tcpreplay}" --burst-runs "${BURST_RUNS:-3}")
[[ ${SKIP_TIMING:-} == 1 ]] && args+=(--skip-timing)
exec go run ./harness/replay/internal/replaybench "${args[@]}"
