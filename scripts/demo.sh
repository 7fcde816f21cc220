#!/usr/bin/env bash
# make demo: until the gate lands, list the built sample images.
set -euo pipefail
cd "$(dirname "$0")/.."
ls build/images
