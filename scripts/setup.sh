#!/usr/bin/env bash
# Creates ./.venv and installs flowscope into it (editable). Extra arguments are pip extras, e.g. "test".
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv python3-pip >&2
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
extras=""
wanted=("$@")
# the test setup also installs the spark extra, so CI runs the Spark tests (pip builds pyspark: ~25 s)
for extra in "$@"; do [ "$extra" = "test" ] && wanted+=(spark); done
[ ${#wanted[@]} -gt 0 ] && extras="[$(IFS=,; echo "${wanted[*]}")]"
.venv/bin/python -m pip install -q --upgrade pip >&2
.venv/bin/python -m pip install -q -e ".${extras}" >&2
# Compile flowscope's numba kernels into their on-disk cache now (cache=True), so no command pays for it later.
.venv/bin/python -m flowscope.kernels >&2
