#!/usr/bin/env bash
# One command on a fresh Debian machine: install what the tests need, then lint and run every test
# (slow and integration ones included). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/setup.sh test
.venv/bin/ruff check src tests benchmarks fuzz
.venv/bin/mypy
.venv/bin/python -m pytest -o addopts="" -q "$@"
