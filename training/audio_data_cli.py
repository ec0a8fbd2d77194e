"""The audio options of `livegen-train data` (training/audio_data.py does the work)."""

from __future__ import annotations

import argparse
from pathlib import Path

from livegen.kernels.errors import LivegenError
from livegen.kernels.values import COUNT, MIDI_BYTE, POSITIVE


def add_audio_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("codec tokens (audio models)")
    group.add_argument(
        "--audio", nargs="+", type=Path, default=[], metavar="DIR", help="audio folders"
    )
    group.add_argument(
        "--codec",
        metavar="P",
        help="encode with this codec preset (name, .toml, codec folder or codec run); "
        "makes codec tokens of --audio and of --midi rendered with --render",
    )
    group.add_argument(
        "--render",
        metavar="SF",
        help="render --midi folders through FluidSynth with this soundfont, then encode",
    )
    group.add_argument(
        "--levels", type=COUNT.option(), default=4, help="codec levels per frame (default 4)"
    )
    group.add_argument(
        "--program",
        type=MIDI_BYTE.option(),
        default=0,
        help="General MIDI program for every rendered part (default 0: piano)",
    )
    group.add_argument(
        "--max-seconds",
        type=POSITIVE.option(),
        metavar="S",
        help="encode at most the first S seconds of each file",
    )


def run_audio_data(args: argparse.Namespace) -> int:
    from livegen.training.audio_data import AudioDataOptions, build_audio_data
    from livegen.training.data import format_summary, summary_json

    if args.music21 is not None:
        raise LivegenError("--music21 makes MIDI tokens; render its MIDI folder with --midi DIR")
    if not args.codec:
        raise LivegenError("audio tokens need a codec: give --codec PRESET")
    if args.midi and not args.render:
        raise LivegenError("with --codec, MIDI folders are rendered first: give --render SF")
    if not args.audio and not args.midi:
        raise LivegenError("give --audio DIR ... and/or --midi DIR ... --render SF")
    options = AudioDataOptions(
        val_fraction=args.val,
        test_fraction=args.test,
        workers=max(1, args.workers),
        progress=not args.no_progress,
        codec=args.codec,
        levels=args.levels,
        soundfont=args.render or "",
        program=args.program,
        max_seconds=args.max_seconds,
    )
    index = build_audio_data(args.audio, args.midi or [], args.out, options)
    if args.json:
        print(summary_json(index))
    else:
        info = index.summary["tokens_kind"]
        print(format_summary(index, args.out))
        print(
            f"codec {info['codec']}: {info['levels']} levels x {info['codebook_size']} codes, "
            f"{info['frame_rate'] * info['levels']:g} tokens per second of audio"
        )
    return 0
