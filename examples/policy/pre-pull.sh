#!/bin/sh
# Pre-pull check for a board that runs Watchtower with --no-pull: pull the
# image only when hil attest verify finds a signed, passing test result for
# exactly the digest the tag points at now (and for this board), then tag it
# locally so that Watchtower restarts the container on it.
#
#   IMAGE=registry.lan/pcapwatch:latest KEY=/etc/hil/cosign.pub BOARD=pi3b+ ./pre-pull.sh
#
# Exit 0 pulled (or already current), 1 refused (the reason is printed),
# 2 could not check (registry unreachable, bad key).
set -eu
IMAGE=${IMAGE:?set IMAGE, e.g. registry.lan/pcapwatch:latest}
KEY=${KEY:?set KEY to the team public key (cosign.pub)}
HIL=${HIL:-hil}

# Resolve the tag once: verify and pull the same digest, never the tag again.
digest=$("$HIL" registry digest "$IMAGE") || exit 2
repo=${IMAGE%:*}
pinned="$repo@$digest"

set -- attest verify "$pinned" --key "$KEY"
if [ -n "${BOARD:-}" ]; then
	set -- "$@" --require-board "$BOARD"
fi
rc=0
"$HIL" "$@" || rc=$?
if [ "$rc" -ne 0 ]; then
	echo "pre-pull: not pulling $pinned (hil attest verify exit $rc)" >&2
	exit "$rc"
fi
docker pull "$pinned"
docker tag "$pinned" "$IMAGE"
echo "pre-pull: $IMAGE is now the verified $digest"
