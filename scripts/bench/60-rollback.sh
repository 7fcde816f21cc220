#!/usr/bin/env bash
# The rollback loop, timed: hil gate promotes late-crash to latest on a
# registry on loopback, the fleet stand-in (internal/fleetsim) on a board
# (a private dockerd) pulls it and restarts the app, the app panics 10 s
# after ready, hil watch --rollback sees the restart, moves latest back to
# the last digest with a passing signed attestation and records why, and
# the stand-in pulls the old digest: the board runs it again. The figures
# come from TestWatchRollsBackALateCrashAndTheBoardRunsTheOldDigestAgain
# (cmd/hil), which runs exactly that loop with the real pieces.
#
# The loop is bounded by the app: late-crash's fault fires 10 s after
# ready, so "failed window" is about 10 s plus the roll-out; what hil adds
# is the detection (one poll, 1 s), the rollback's registry work and the
# stand-in's next poll (0.5 s here; Watchtower's --interval on a fleet).
#
# Needs root (a private dockerd, sshd) and the sample images (make
# images). HIL_BENCH_ROLLBACKS runs (default 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HIL_IMAGES="$(realpath "${HIL_IMAGES:-build/images}")"
runs="${HIL_BENCH_ROLLBACKS:-1}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

echo "rollback loop: promotion -> failed window -> latest restored -> old digest running again ($runs run(s))"
for i in $(seq "$runs"); do
	go test -count=1 -v -timeout 10m -run '^TestWatchRollsBackALateCrashAndTheBoardRunsTheOldDigestAgain$' ./cmd/hil/ >"$out" 2>&1 || { cat "$out"; exit 1; }
	line="$(grep -m1 'rollback loop:' "$out" | sed 's/.*rollback loop: //')"
	printf 'run %d: %s\n' "$i" "$line"
done
