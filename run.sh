#!/usr/bin/env bash
# The main job: generate text. Sets up .venv on first use. Extra arguments go to `mmfree generate`.
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
source "$root/scripts/bootstrap.sh"
cd "$root"
exec mmfree generate --model models/mmfree-ecp5 --prompt "${MMFREE_PROMPT:-import os
def }" --max-tokens "${MMFREE_TOKENS:-64}" "$@"
