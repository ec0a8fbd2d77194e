"""Streaming speed of the codec on one CPU thread: encode and decode one 16 ms frame at a time
(as the live path will), through the NumPy step (models/codec_fast, what `livegen codec` uses)
and the torch modules, against Opus (opusenc/opusdec) on the same audio in the same run.

    python benchmarks/bench_codec.py [--preset codec-24k | --codec DIR] [--seconds 20]
        [--levels K] [--threads 1]

Prints ms per frame (mean and median: on a busy machine the median is closer to what the code
costs), real-time factors (mean compute seconds per audio second) and the algorithmic latency,
then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from livegen.models.codec import Codec, stream_round_trip
from livegen.models.codec_fast import fast_round_trip
from livegen.models.codec_preset import open_codec
from livegen.training.audio_io import write_audio
from livegen.training.codec_config import load_codec_run_config


def test_signal(seconds: float, rate: int) -> np.ndarray:
    """Chords of decaying partials with a little noise: music-like, not silence."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.5):
        pitch = 220 * 2 ** (rng.integers(0, 24) / 12)
        env = np.where(t >= start, np.exp(-(t - start) * 3), 0)
        for k in range(1, 6):
            out += env * np.sin(2 * np.pi * pitch * k * t) / k
    out += 0.01 * rng.standard_normal(len(t))
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def opus_seconds(audio: np.ndarray, rate: int, kbps: float) -> tuple[float, float] | None:
    if shutil.which("opusenc") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav, coded, out = Path(tmp, "a.wav"), Path(tmp, "a.opus"), Path(tmp, "b.wav")
        write_audio(wav, audio, rate)
        tick = time.perf_counter()
        subprocess.run(
            ["opusenc", "--quiet", "--bitrate", f"{kbps:g}", str(wav), str(coded)], check=True
        )
        tock = time.perf_counter()
        subprocess.run(["opusdec", "--quiet", str(coded), str(out)], check=True)
        return tock - tick, time.perf_counter() - tock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="codec preset name or .toml")
    parser.add_argument("--codec", type=Path, help="a codec folder or training run")
    parser.add_argument("--config", type=Path, default=Path("configs/codec-24k.toml"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--levels", type=int)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = args.codec or args.preset
    if spec is not None:
        model, where = open_codec(spec)
    else:  # untrained weights of the shipped shape: the speed is the same
        model, where = (
            Codec(load_codec_run_config(args.config).model).eval(),
            f"{args.config} (random weights)",
        )
    cfg = model.config
    audio = test_signal(args.seconds, cfg.sample_rate)
    fast_round_trip(model, audio[: cfg.sample_rate], args.levels)  # warm up
    fast = fast_round_trip(model, audio, args.levels)
    trip = stream_round_trip(model, torch.from_numpy(audio)[None], args.levels)
    frames = fast.codes.shape[1]
    median = np.median(fast.frame_seconds, axis=0) * 1000
    result = {
        "codec": where,
        "threads": args.threads,
        "seconds": args.seconds,
        "frames": frames,
        "encode_ms_per_frame": round(1000 * fast.encode_seconds / frames, 3),
        "decode_ms_per_frame": round(1000 * fast.decode_seconds / frames, 3),
        "encode_ms_median": round(float(median[0]), 3),
        "decode_ms_median": round(float(median[1]), 3),
        "encode_rtf": round(fast.encode_seconds / args.seconds, 4),
        "decode_rtf": round(fast.decode_seconds / args.seconds, 4),
        "torch_encode_rtf": round(trip.encode_seconds / args.seconds, 4),
        "torch_decode_rtf": round(trip.decode_seconds / args.seconds, 4),
        "latency_ms": cfg.latency_ms,
        "kbps": cfg.kbps(args.levels),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    opus = opus_seconds(audio, cfg.sample_rate, max(6.0, cfg.kbps(args.levels)))
    if opus is not None:  # includes process start and file I/O: an upper bound for Opus
        result["opus_encode_rtf"] = round(opus[0] / args.seconds, 4)
        result["opus_decode_rtf"] = round(opus[1] / args.seconds, 4)
    print(f"{where}: {frames} frames of {1000 / cfg.frame_rate:.0f} ms, {args.threads} thread(s)")
    for side in ("encode", "decode"):
        print(
            f"  {side} {result[side + '_ms_per_frame']} ms/frame (median "
            f"{result[side + '_ms_median']})  RTF {result[side + '_rtf']}  "
            f"(torch modules: RTF {result['torch_' + side + '_rtf']})"
        )
    print(f"  algorithmic latency {cfg.latency_ms:.1f} ms at {result['kbps']:g} kbps")
    if opus is not None:
        print(f"  opusenc RTF {result['opus_encode_rtf']}, opusdec RTF {result['opus_decode_rtf']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
