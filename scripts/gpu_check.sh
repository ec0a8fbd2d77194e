#!/usr/bin/env bash
# The GPU check: run from the repository root on a machine with an NVIDIA GPU, it checks and
# measures every CUDA path of livegen in about 8 minutes at most (scripts/gpu_plan.toml says
# what, scripts/gpu_check.py runs it) and writes one JSON file plus a log:
#
#   scripts/gpu_check.sh [--out DIR] [--budget SECONDS] [--only STEP,...] [--skip STEP,...]
#
# It installs nothing that needs a network. It picks the first Python whose torch sees a CUDA
# GPU: $LIVEGEN_PYTHON, the project's .venv, then python3 on the PATH (a machine that comes
# with a CUDA torch). If livegen is not installed in that Python, it is imported from this
# source tree (scripts/no_install). LIVEGEN_WHEELS=DIR: wheels to add first (pip --no-index),
# for a machine without network that lacks a package. Without a GPU: one line, exit status 2
# (with --rehearse, the whole plan runs small on the CPU instead).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1

candidates=()
add() { # once each: probing a Python imports torch, seconds each
  for known in "${candidates[@]}"; do [ "$known" = "$1" ] && return; done
  candidates+=("$1")
}
[ -n "${LIVEGEN_PYTHON:-}" ] && add "$LIVEGEN_PYTHON"
[ -x .venv/bin/python ] && add "$PWD/.venv/bin/python"
command -v python3 >/dev/null 2>&1 && add "$(command -v python3)"
if [ ${#candidates[@]} -eq 0 ]; then
  echo "gpu-check: no Python found (no \$LIVEGEN_PYTHON, no .venv, no python3); see README.md, 'On a GPU'"
  exit 2
fi
python=""
for candidate in "${candidates[@]}"; do
  if "$candidate" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
    >/dev/null 2>&1; then
    python=$candidate
    break
  fi
done
if [ -n "$python" ] && [ -n "${LIVEGEN_WHEELS:-}" ]; then
  site=$(mktemp -d /tmp/livegen-wheels.XXXXXX)
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$site" "$LIVEGEN_WHEELS"/*.whl || exit 1
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ -n "$python" ] && ! "$python" -c 'import livegen.models' >/dev/null 2>&1; then
  echo "gpu-check: livegen is not installed in $python: importing it from this source tree"
  export PYTHONPATH="$PWD/scripts/no_install${PYTHONPATH:+:$PYTHONPATH}"
fi

# None sees a GPU: the driver, run by the first, says why in one line and exits 2.
exec "${python:-${candidates[0]}}" scripts/gpu_check.py "$@"
