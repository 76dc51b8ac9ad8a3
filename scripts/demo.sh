#!/usr/bin/env bash
# Set up .venv and run the demo: two sync cycles of the bundled sample export
# against a local Partner API sandbox. Extra arguments go to `eyekiosk-sync demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
exec .venv/bin/eyekiosk-sync demo "$@"
