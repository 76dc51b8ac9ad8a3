#!/usr/bin/env bash
# Set up .venv with the test dependencies and run the test suite.
# Tests that need PostgreSQL or MariaDB read EYEKIOSK_TEST_POSTGRES_URL and
# EYEKIOSK_TEST_MARIADB_URL; with CI=true a missing server fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh dev
exec .venv/bin/python -m pytest -n 2 "$@"
