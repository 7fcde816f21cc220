#!/usr/bin/env bash
# make demo: the whole gate on the bundled sample, with nothing else running.
#
#  1. start a throw-away registry on loopback (go-containerregistry's
#     embedded registry, inside `hil registry serve`);
#  2. push the sample image as :candidate, gate it for the seed's board, a
#     Raspberry Pi 3 B+ (--board pi3b+: its engine pulls the index's arm64
#     manifest; the full-system target boots a Cortex-A53 with the board's
#     memory) with scenarios/, and promote :latest to the tested digest;
#  3. push the old-glibc variant as the next :candidate and show the gate
#     refusing it with the reason, :latest unchanged;
#  4. the same for the Rust build of the app in a repository of its own:
#     pcapwatch-rs promoted, then rs-no-deps (libpcap.so.0.8 copied without
#     the libraries it needs) refused naming the chain, :latest unchanged;
#  5. a fleet with a Pi Zero W in it (--fleet: pi0w, pi3b+), gated with the
#     static check per board: the armhf-only image (pcapwatch-armhf, one
#     manifest, which the Zero's engine pulls anyway) refused with the ISA
#     reason naming the board; the sample index, whose armel build the Zero
#     pulls, promoted.
#
# Exits 0 when all six outcomes are as expected. The registry is stopped on
# every path. Env: HIL (default build/hil), HIL_IMAGES (default
# build/images), DEMO_REPORTS (default build/demo).
set -euo pipefail
cd "$(dirname "$0")/.."

HIL=${HIL:-build/hil}
IMAGES=${HIL_IMAGES:-build/images}
REPORTS=${DEMO_REPORTS:-build/demo}
TARGET=${DEMO_TARGET:-system}
BOARD=${DEMO_BOARD:-pi3b+}

die() { echo "demo: $*" >&2; exit 2; }
[[ -x $HIL ]] || die "$HIL is not built: run make hil"
for v in pcapwatch old-glibc pcapwatch-rs rs-no-deps pcapwatch-armhf; do
  [[ -f $IMAGES/$v/index.json ]] || die "$IMAGES/$v is not an OCI layout: run make images"
done
[[ -d scenarios ]] || die "no scenarios/ directory"

work=$(mktemp -d)
reg_pid=
child=
stop() { # stop one process we started and reap it
  if [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
cleanup() {
  stop "$child" # hil tears its VMs down on SIGTERM
  stop "$reg_pid"
  rm -rf "$work"
}
# run runs a command in the background and waits for it, so that a signal
# reaches the trap at once instead of after the command (bash defers traps
# while a foreground command runs).
run() {
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=
  return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

banner() { printf '\n==== %s\n' "$*"; }

banner "starting a throw-away registry on loopback"
"$HIL" registry serve --addr 127.0.0.1:0 --print-addr --quiet >"$work/addr" 2>"$work/registry.log" &
reg_pid=$!
for _ in $(seq 100); do
  [[ -s $work/addr ]] && break
  kill -0 "$reg_pid" 2>/dev/null || { cat "$work/registry.log" >&2; die "the registry exited at start"; }
  sleep 0.1
done
[[ -s $work/addr ]] || die "the registry did not start within 10s"
repo="$(head -n1 "$work/addr")/pcapwatch"
echo "registry at $(head -n1 "$work/addr") (pid $reg_pid)"

digest_of() { "$HIL" registry digest "$1" 2>/dev/null || true; }

banner "part 1: the good image, gated for the seed's board ($BOARD)"
cand=$("$HIL" registry push "$IMAGES/pcapwatch" "$repo:candidate")
echo "pushed $IMAGES/pcapwatch as $repo:candidate ($cand)"
latest_before=$(digest_of "$repo:latest")
echo "latest before: $latest_before"
rm -rf "$REPORTS/good"
set +e
run "$HIL" gate --image "$repo:candidate" --scenarios scenarios --target "$TARGET" \
  --board "$BOARD" --promote latest --report "$REPORTS/good"
rc_good=$?
set -e
latest_good=$(digest_of "$repo:latest")
echo "latest after:  $latest_good"

banner "part 2: old-glibc as the next candidate"
bad=$("$HIL" registry push "$IMAGES/old-glibc" "$repo:candidate")
echo "pushed $IMAGES/old-glibc as $repo:candidate ($bad)"
echo "latest before: $latest_good"
rm -rf "$REPORTS/old-glibc"
set +e
run "$HIL" gate --image "$repo:candidate" --scenarios scenarios --target "$TARGET" \
  --board "$BOARD" --promote latest --report "$REPORTS/old-glibc"
rc_bad=$?
set -e
latest_bad=$(digest_of "$repo:latest")
echo "latest after:  $latest_bad"

banner "part 3: the Rust build, pcapwatch-rs, in its own repository"
rsrepo="$(head -n1 "$work/addr")/pcapwatch-rs"
rscand=$("$HIL" registry push "$IMAGES/pcapwatch-rs" "$rsrepo:candidate")
echo "pushed $IMAGES/pcapwatch-rs as $rsrepo:candidate ($rscand)"
rm -rf "$REPORTS/pcapwatch-rs"
set +e
run "$HIL" gate --image "$rsrepo:candidate" --scenarios scenarios --target "$TARGET" \
  --board "$BOARD" --promote latest --report "$REPORTS/pcapwatch-rs"
rc_rs=$?
set -e
rs_latest=$(digest_of "$rsrepo:latest")
echo "latest after:  $rs_latest"

banner "part 4: rs-no-deps as the next Rust candidate"
rsbad=$("$HIL" registry push "$IMAGES/rs-no-deps" "$rsrepo:candidate")
echo "pushed $IMAGES/rs-no-deps as $rsrepo:candidate ($rsbad)"
rm -rf "$REPORTS/rs-no-deps"
set +e
run "$HIL" gate --image "$rsrepo:candidate" --scenarios scenarios --target "$TARGET" \
  --board "$BOARD" --promote latest --report "$REPORTS/rs-no-deps"
rc_rsbad=$?
set -e
rs_latest_bad=$(digest_of "$rsrepo:latest")
echo "latest after:  $rs_latest_bad"

banner "part 5: a fleet with a Pi Zero W in it"
printf '# the boards in the field\nboards: [pi0w, pi3b+]\n' >"$work/fleet.yaml"
cat "$work/fleet.yaml"
frepo="$(head -n1 "$work/addr")/fleet"
armhf=$("$HIL" registry push "$IMAGES/pcapwatch-armhf" "$frepo:candidate")
echo "pushed $IMAGES/pcapwatch-armhf (arm/v7 only, one manifest) as $frepo:candidate ($armhf)"
rm -rf "$REPORTS/fleet-armhf" "$REPORTS/fleet-index"
set +e
run "$HIL" gate --image "$frepo:candidate" --target static --fleet "$work/fleet.yaml" \
  --promote latest --report "$REPORTS/fleet-armhf"
rc_farmhf=$?
set -e
fleet_armhf=$(digest_of "$frepo:latest")
echo "latest after:  $fleet_armhf"
findex=$("$HIL" registry push "$IMAGES/pcapwatch" "$frepo:candidate")
echo "pushed $IMAGES/pcapwatch (arm/v7, amd64, arm/v5 armel, arm64) as $frepo:candidate ($findex)"
set +e
run "$HIL" gate --image "$frepo:candidate" --target static --fleet "$work/fleet.yaml" \
  --promote latest --report "$REPORTS/fleet-index"
rc_findex=$?
set -e
fleet_index=$(digest_of "$frepo:latest")
echo "latest after:  $fleet_index"

banner "what tested the digest latest points at"
"$HIL" attest show "$repo:latest" || true

banner "summary"
ok=1
if [[ $rc_good -eq 0 && $latest_good == "${cand#*@}" ]]; then
  echo "OK   good image promoted: latest = ${cand#*@} (was $latest_before)"
else
  echo "FAIL good image: gate exit $rc_good (want 0), latest = $latest_good (want ${cand#*@})"
  ok=0
fi
if [[ $rc_bad -eq 1 && $latest_bad == "$latest_good" ]] && grep -q 'GLIBC_2.34' "$REPORTS/old-glibc/decision.json"; then
  echo "OK   old-glibc refused (it needs GLIBC_2.34, the image has glibc 2.31): latest unchanged at $latest_bad"
else
  echo "FAIL old-glibc: gate exit $rc_bad (want 1, refused for GLIBC_2.34), latest = $latest_bad (want unchanged $latest_good)"
  ok=0
fi
if [[ $rc_rs -eq 0 && $rs_latest == "${rscand#*@}" ]]; then
  echo "OK   pcapwatch-rs promoted: $rsrepo:latest = ${rscand#*@}"
else
  echo "FAIL pcapwatch-rs: gate exit $rc_rs (want 0), latest = $rs_latest (want ${rscand#*@})"
  ok=0
fi
if [[ $rc_rsbad -eq 1 && $rs_latest_bad == "$rs_latest" ]] && grep -q 'libpcap.so.0.8 → libdbus-1.so.3' "$REPORTS/rs-no-deps/decision.json"; then
  echo "OK   rs-no-deps refused (libpcap.so.0.8 → libdbus-1.so.3 missing): latest unchanged at $rs_latest_bad"
else
  echo "FAIL rs-no-deps: gate exit $rc_rsbad (want 1, refused for libdbus-1.so.3), latest = $rs_latest_bad (want unchanged $rs_latest)"
  ok=0
fi
if [[ $rc_farmhf -eq 1 && $fleet_armhf == "(none)" ]] && grep -q 'a pi0w (Raspberry Pi Zero W) has ARMv6' "$REPORTS/fleet-armhf/decision.json"; then
  echo "OK   fleet (pi0w, pi3b+): pcapwatch-armhf refused (the Pi Zero W pulls the arm/v7 manifest and has ARMv6): latest not written"
else
  echo "FAIL fleet: pcapwatch-armhf: gate exit $rc_farmhf (want 1, refused for pi0w's ISA), latest = $fleet_armhf (want (none))"
  ok=0
fi
if [[ $rc_findex -eq 0 && $fleet_index == "${findex#*@}" ]] && grep -q 'pi0w pulls linux/arm/v5' "$REPORTS/fleet-index/decision.json"; then
  echo "OK   fleet (pi0w, pi3b+): the index with the armel build promoted (pi0w pulls linux/arm/v5, pi3b+ linux/arm64): latest = ${findex#*@}"
else
  echo "FAIL fleet: the index: gate exit $rc_findex (want 0), latest = $fleet_index (want ${findex#*@})"
  ok=0
fi
for d in good old-glibc pcapwatch-rs rs-no-deps fleet-armhf fleet-index; do
  html=$(ls "$REPORTS/$d"/*.html 2>/dev/null | head -n1 || true)
  echo "     report ($d): ${html:-$REPORTS/$d/decision.json}"
done
[[ $ok -eq 1 ]] || exit 1
