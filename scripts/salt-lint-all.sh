#!/usr/bin/env bash
# Lint every SLS file in the repo with salt-lint; fail when there is none (that would be a silent pass).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find . -name '*.sls' -not -path './.venv/*' -not -path './.git/*' -not -path './.cache/*' | sort)
if [ ${#files[@]} -eq 0 ]; then echo "salt-lint: no SLS files found" >&2; exit 1; fi
.venv/bin/salt-lint "${files[@]}"
echo "salt-lint: ${#files[@]} SLS files clean"
