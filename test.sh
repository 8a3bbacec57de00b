#!/usr/bin/env bash
# The whole test suite. Sets up .venv (with the training extra: torch is the independent reference
# some tests compare against; the synth extra: Yosys and nextpnr) and Icarus Verilog, then runs
# pytest. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
MMFREE_EXTRAS="test,train,synth,power" MMFREE_NEED_IVERILOG=1 source "$root/scripts/bootstrap.sh"
cd "$root"
exec python -m pytest -q "$@"
