"""Render MIDI folders through FluidSynth into a folder of audio clips (Ogg Vorbis or FLAC).

The same crops `livegen-train codec --midi` draws on the fly (random soundfont, General MIDI
programs, transposition, stretch, level), written once: for a machine that has no FluidSynth
(a GPU box), or to train several codecs on identical audio.

    python scripts/render_codec_data.py --midi DIR --soundfont A.sf2 B.sf2 --out DIR \
        --clips 700 --seconds 10 [--format ogg|flac] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from livegen.training.audio_io import write_audio
from livegen.training.codec_config import DataConfig
from livegen.training.codec_data import CropSampler, scan_sources


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--midi", nargs="+", type=Path, required=True)
    parser.add_argument("--soundfont", nargs="+", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample-rate", type=int, default=24000)
    parser.add_argument("--format", choices=["ogg", "flac"], default="ogg")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=["train", "val"], default="train")
    args = parser.parse_args()
    train, val = scan_sources([], args.midi, DataConfig().val_fraction)
    sources = train if args.split == "train" else val
    samples = int(args.seconds * args.sample_rate)
    sampler = CropSampler(
        sources, args.soundfont, DataConfig(), args.sample_rate, samples, args.seed
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.clips):
        path = args.out / f"clip-{args.seed}-{i:05d}.{args.format}"
        if not path.exists():
            write_audio(path, sampler.batch(i, 1).numpy()[0], args.sample_rate)
        if i % 50 == 0:
            print(f"{i}/{args.clips}", file=sys.stderr, flush=True)
    sampler.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
