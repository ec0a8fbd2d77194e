"""`livegen codec IN -o OUT`: a round trip through a codec preset's streaming path.

Any format soundfile reads, any rate and channel count in (mixed down to mono, resampled to the
codec's rate); the decoded audio out at the codec's rate, as long as the input. Encoding and
decoding run frame by frame on one thread through the NumPy streaming step (models/codec_fast),
as live playback would.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "encode and decode an audio file through a codec preset (streaming, one thread)"
DEFAULT_PRESET = "codec-24k"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="IN", help="audio file (wav, flac, ogg, mp3)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.wav")
    parser.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        help=f"codec preset, codec folder or training run ({DEFAULT_PRESET})",
    )
    parser.add_argument("--levels", type=int, help="quantiser levels to use (default: all)")
    parser.add_argument("--json", action="store_true", help="print figures as one JSON object")


def run(args: argparse.Namespace) -> int:
    import torch

    from livegen.kernels.errors import LivegenError
    from livegen.models.codec_fast import fast_round_trip
    from livegen.models.codec_preset import open_codec
    from livegen.training.audio_io import read_audio, write_audio

    torch.set_num_threads(1)  # the figure is for one thread, as in the live audio path
    model, where = open_codec(args.preset)
    cfg = model.config
    levels = args.levels or cfg.levels
    if not 1 <= levels <= cfg.levels:
        raise LivegenError(f"--levels must be 1..{cfg.levels} for this codec, got {args.levels}")
    audio = read_audio(args.input, cfg.sample_rate)
    trip = fast_round_trip(model, audio, levels)
    write_audio(args.output, trip.audio[0].numpy(), cfg.sample_rate)
    seconds = len(audio) / cfg.sample_rate
    figures = {
        "input": str(args.input),
        "output": str(args.output),
        "codec": where,
        "kbps": round(cfg.kbps(levels), 3),
        "sample_rate": cfg.sample_rate,
        "frame_rate": cfg.frame_rate,
        "levels": levels,
        "codebook_size": cfg.codebook_size,
        "seconds": round(seconds, 3),
        "frames": int(trip.codes.shape[1]),
        "rtf": round((trip.encode_seconds + trip.decode_seconds) / max(seconds, 1e-9), 4),
        "encode_rtf": round(trip.encode_seconds / max(seconds, 1e-9), 4),
        "decode_rtf": round(trip.decode_seconds / max(seconds, 1e-9), 4),
        "latency_ms": round(cfg.latency_ms, 2),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"{args.output}: {seconds:.2f} s at {cfg.sample_rate} Hz through {where}, "
            f"{figures['kbps']:g} kbps ({levels} x {cfg.codebook_size} codes at "
            f"{cfg.frame_rate:g} Hz), RTF {figures['rtf']} on one thread, "
            f"latency {figures['latency_ms']:g} ms"
        )
    return 0
