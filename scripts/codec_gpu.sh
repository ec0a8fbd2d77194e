#!/usr/bin/env bash
# The codec's GPU session, as run on a one-GPU box that has PyTorch but neither FluidSynth,
# opus-tools nor this project installed: training audio pre-rendered by
# scripts/render_codec_data.py into data/gpu/, held-out clips in data/heldout/<group>/, wheels
# (soundfile, cffi, pycparser, visqol-python) in data/whl/, libsvm's ctypes package in
# data/pylib/, opusenc/opusdec and their libraries in data/opus/.
# Phase 1 trains with the spectral losses, phase 2 continues from it against the
# discriminators (encoder frozen); each phase is stopped by SIGTERM after its time (the trainer
# checkpoints and exits). Both are exported (float16, inference only) and quickly scored on the
# held-out clips; the one with the lower mel distance gets the full evaluation (ViSQOL, Opus).
#   OUT=DIR P1=SECONDS P2=SECONDS [PY=python3 DEVICE=cuda LOCAL=1 WORKERS=14] bash scripts/codec_gpu.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/codec-gpu-out}; P1=${P1:-240}; P2=${P2:-100}
PY=${PY:-python3}; DEVICE=${DEVICE:-cuda}; WORKERS=${WORKERS:-14}; SECONDS_EVAL=${SECONDS_EVAL:-6}
mkdir -p "$OUT"; LOG="$OUT/console.txt"
if [ -z "${LOCAL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site data/whl/*.whl || exit 1
  rm -rf /tmp/shim && mkdir -p /tmp/shim/livegen && cp -r livegen/. /tmp/shim/livegen/
  for d in kernels models training presets; do cp -r "$d" "/tmp/shim/livegen/$d"; done
  export PYTHONPATH=/tmp/shim:/tmp/site:$PWD/data/pylib PYTHONSAFEPATH=1  # not ./livegen
  export PATH=$PWD/data/opus:$PATH LD_LIBRARY_PATH=$PWD/data/opus
  nvidia-smi -L >> "$LOG"
fi
R=${RUNS:-/tmp/codec-gpu-runs}; rm -rf "$R"
T="$PY -m livegen.training"
timeout -s TERM "$P1" $T codec --config configs/codec-24k-gpu.toml --out "$R/p1" \
  --audio data/gpu --device "$DEVICE" --no-progress >> "$LOG" 2>&1
echo "phase 1 exit $?" >> "$LOG"
timeout -s TERM "$P2" $T codec --config configs/codec-24k-gpu-adv.toml --init "$R/p1" \
  --out "$R/p2" --audio data/gpu --device "$DEVICE" --no-progress >> "$LOG" 2>&1
echo "phase 2 exit $?" >> "$LOG"
$PY - "$R" "$OUT" >> "$LOG" 2>&1 <<'PY'
import shutil, sys
from pathlib import Path
import torch
from livegen.models.codec_files import load_codec, save_codec
from livegen.training.checkpointing import latest_checkpoint
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
for name in ("p1", "p2"):
    found = latest_checkpoint(runs / name)
    if found is None:
        print(name, "no checkpoint"); continue
    save_codec(load_codec(found / "model"), out / name, dtype=torch.float16,
               inference_only=True, metadata={"checkpoint": found.name})
    shutil.copy(runs / name / "log.csv", out / name / "log.csv")
    print("exported", name, found.name)
PY
H="data/heldout/openmsx-musescore data/heldout/asc-music"
best=p1; bestmel=99
for name in p1 p2; do
  [ -f "$OUT/$name/config.json" ] || continue
  mel=$($T eval-codec "$OUT/$name" --audio $H --seconds 3 --clips 6 --no-visqol --no-opus --json 2>>"$LOG" \
        | $PY -c "import json,sys; print(json.load(sys.stdin)['overall']['codec']['mel'])")
  echo "quick mel $name $mel" >> "$LOG"
  if $PY -c "import sys; sys.exit(0 if float('${mel:-99}') < $bestmel else 1)"; then best=$name; bestmel=$mel; fi
done
echo "best $best" >> "$LOG"
$T eval-codec "$OUT/$best" --audio $H --seconds "$SECONDS_EVAL" --clips "${CLIPS_EVAL:-12}" --workers "$WORKERS" \
  --json > "$OUT/eval.json" 2>> "$LOG"
echo "eval exit $?" >> "$LOG"
$PY benchmarks/bench_codec.py --codec "$OUT/$best" --seconds 10 >> "$LOG" 2>&1
