#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/apt-packages.txt that are
# missing, and nothing else. Idempotent: a second run with everything present
# does nothing and asks apt nothing. Not root: prints the command to run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

missing=()
while read -r pkg probe; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  if [[ -n "${probe:-}" ]]; then
    if [[ "$probe" == /* ]]; then [[ -x "$probe" ]] && continue
    else command -v "$probe" >/dev/null 2>&1 && continue; fi
  fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' && continue
  missing+=("$pkg")
done < "$here/apt-packages.txt"

[[ ${#missing[@]} -eq 0 ]] && exit 0

cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [[ $(id -u) -ne 0 ]]; then
  echo "hil needs these Debian packages: ${missing[*]}" >&2
  echo "run: sudo apt-get update && sudo ${cmd[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent on a fresh machine or stale on an old one.
apt-get update -qq || echo "apt-get update reported errors (often the armhf index); going on" >&2
"${cmd[@]}"
# Packages such as docker.io and docker-registry start services on install;
# hil's tests start their own instances, so the system ones are stopped.
for svc in docker containerd docker-registry ssh; do
  systemctl stop "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done
