#!/usr/bin/env bash
# Create or reuse the project's virtual environment in .venv and install what it needs.
# Sourced by run.sh and test.sh; safe to run again (installs only when pyproject.toml changed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
extras="${MMFREE_EXTRAS:-test}"
if [ ! -x "$venv/bin/python" ]; then
    echo "[bootstrap] creating virtual environment in $venv" >&2
    python3 -m venv "$venv"
fi
stamp="$venv/.installed-$extras"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    echo "[bootstrap] installing the project with extras [$extras]" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -e "$root[$extras]"
    touch "$stamp"
fi
# Icarus Verilog, the second simulator, comes from Debian (there is no wheel).
if [ "${MMFREE_NEED_IVERILOG:-0}" = 1 ] && ! command -v iverilog >/dev/null 2>&1; then
    echo "[bootstrap] installing iverilog (apt-get)" >&2
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get install -y -q iverilog >/dev/null || {
        $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q iverilog >/dev/null; } || {
        echo "[bootstrap] could not install iverilog: install it with your package manager" >&2; exit 1; }
fi
export PATH="$venv/bin:$PATH"
