#!/usr/bin/env bash
# One command on a fresh Debian machine: set up, then run the demo into ./flowlake.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/flowscope demo "$@"
