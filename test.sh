#!/usr/bin/env bash
# The whole test suite. Sets up .venv (with the training extra: torch is the independent
# reference some tests compare against) and runs pytest. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
MMFREE_EXTRAS="test,train" source "$root/scripts/bootstrap.sh"
cd "$root"
exec python -m pytest -q "$@"
