#!/usr/bin/env bash
# The whole test suite. Sets up .venv (with the training extra: torch is the independent reference
# some tests compare against; the synth extra: Yosys and nextpnr) and Icarus Verilog, then runs
# pytest on every CPU (pytest-xdist; a test file's tests stay on one worker, so its module
# fixtures, the simulated boards among them, are built once). Extra arguments go to pytest
# (``-n 0`` runs in one process).
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
MMFREE_EXTRAS="test,train,synth,power" MMFREE_NEED_IVERILOG=1 source "$root/scripts/bootstrap.sh"
cd "$root"
exec python -m pytest -q -n auto --dist loadfile "$@"
