#!/usr/bin/env bash
# Build the separate virtual environment that benchmarks/bench_vs_perceiver_io.py runs
# krasserm/perceiver-io in (PyPI `perceiver-io` 0.11.0), outside this repository.
#
# Why a separate venv: perceiver-io 0.11 pins einops<0.5, fairscale<0.5, transformers<5,
# torchmetrics<0.10, pytorch-lightning 2.x and declares Requires-Python <3.11; none of that may
# touch livegen's own environment. Nothing of perceiver-io's code is vendored here.
#
# Only what its Perceiver AR backend (perceiver.model.core) and its Hugging Face `generate`
# wrapper (perceiver.model.core.huggingface) import is installed: torch, einops, fairscale,
# transformers. The Lightning/datasets/MIDI/vision extras are left out (the benchmark never
# imports them).
#
# torch is pinned to the version livegen uses and installed FIRST; every later install runs
# under a constraints file with that pin, so pip can never swap in another torch build (on a
# GPU index that would be gigabytes of CUDA wheels). Here pip's configured find-links hold the
# CPU wheel; elsewhere point pip at a CPU index, e.g.
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu benchmarks/perceiver_io_env.sh
#
# Usage: benchmarks/perceiver_io_env.sh [VENV_DIR]   (default /work/venv-pio, or $PIO_VENV)
set -euo pipefail

VENV="${1:-${PIO_VENV:-/work/venv-pio}}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

"$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip"
CONSTRAINTS="$VENV/torch-constraints.txt"
echo "torch==$TORCH_VERSION" >"$CONSTRAINTS"

"$PIP" install -c "$CONSTRAINTS" "torch==$TORCH_VERSION"

# perceiver-io 0.11.0 says Requires-Python <3.11 but its model code runs on 3.11; its declared
# dependencies (cchardet, tensorboard, torch-optimizer, lightning, ...) are for training only.
"$PIP" install -c "$CONSTRAINTS" --no-deps --ignore-requires-python "perceiver-io==0.11.0"

# What `import perceiver.model.core.huggingface` actually needs. transformers 4.30.2 is the
# release current with perceiver-io 0.11 (mid 2023); its generate() still passes the legacy
# tuple KV cache that perceiver-io's prepare_inputs_for_generation expects.
"$PIP" install -c "$CONSTRAINTS" "einops==0.4.1" "fairscale==0.4.13" "transformers==4.30.2"

"$VENV/bin/python" - <<'EOF'
import torch
import transformers
from perceiver.model.core import CausalSequenceModel  # noqa: F401
from perceiver.model.core.huggingface import PerceiverCausalSequenceModel  # noqa: F401

print(f"perceiver-io venv ready: torch {torch.__version__}, transformers {transformers.__version__}")
EOF
