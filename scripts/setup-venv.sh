#!/usr/bin/env bash
# Create .venv with Python 3.11 or newer and install the project into it.
# Usage: scripts/setup-venv.sh [EXTRAS], e.g. scripts/setup-venv.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: eyekiosk-sync needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
target="."
if [ -n "${1:-}" ]; then
    target=".[$1]"
fi
# pip and setuptools print build warnings even with --quiet; show them only on failure.
log=.venv/install.log
if ! { .venv/bin/python -m pip install --quiet --upgrade pip &&
       .venv/bin/python -m pip install --quiet -e "$target"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "error: installing eyekiosk-sync into .venv failed; the pip output is above" >&2
    exit 1
fi
