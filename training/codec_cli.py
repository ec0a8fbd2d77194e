"""The codec's `livegen-train` subcommands: codec (train), eval-codec, export-codec.

livegen-train codec --config FILE --out RUN [--audio DIR ...] [--midi DIR ... --soundfont SF ...]
livegen-train eval-codec RUN --audio DIR [--midi DIR --soundfont SF] [--json]
livegen-train export-codec RUN --name NAME
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from livegen.kernels.errors import LivegenError

CODEC_HELP = "train a streaming audio codec on audio folders and/or MIDI rendered by FluidSynth"
EVAL_CODEC_HELP = "codec quality on held-out audio (mel, STFT, SI-SDR, ViSQOL, perplexity) vs Opus"
EXPORT_CODEC_HELP = "write a codec run's latest checkpoint as a codec preset"


def add_codec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="a TOML file with [model] and [train]")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN", help="run folder")
    parser.add_argument("--audio", nargs="+", type=Path, default=[], metavar="DIR")
    parser.add_argument("--midi", nargs="+", type=Path, default=[], metavar="DIR")
    parser.add_argument("--soundfont", nargs="+", type=Path, default=[], metavar="SF")
    parser.add_argument("--steps", type=int, help="total optimizer steps (overrides the config)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    parser.add_argument("--stop-after", type=int, metavar="N", help="stop after N steps")
    parser.add_argument(
        "--init", type=Path, metavar="RUN", help="start from another run's (or codec's) weights"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (CPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _codec_run(args: argparse.Namespace):
    from livegen.training.codec_config import CodecRunConfig, load_codec_run_config
    from livegen.training.codec_train import DataArgs

    if args.config is not None:
        run = load_codec_run_config(args.config)
    elif args.resume:
        info = _run_info(args.out)
        run = CodecRunConfig.from_dict(info["config"], str(args.out))
    else:
        raise LivegenError("give --config FILE (or --resume an existing run)")
    data = DataArgs(list(args.audio), list(args.midi), list(args.soundfont))
    if args.resume and not (data.audio or data.midi):
        recorded = _run_info(args.out)["data"]
        data = DataArgs(*([Path(p) for p in recorded[k]] for k in ("audio", "midi", "soundfonts")))
    if not (data.audio or data.midi):
        raise LivegenError("give training data: --audio DIR and/or --midi DIR --soundfont SF")
    return run, data


def _run_info(run_dir: Path) -> dict:
    from livegen.training.train import read_run_file

    info = read_run_file(run_dir)
    if info.get("kind") != "codec":
        raise LivegenError(f"{run_dir}: not a codec run")
    return info


def run_codec(args: argparse.Namespace) -> int:
    import torch

    from livegen.training.codec_train import train_codec

    if args.threads:
        torch.set_num_threads(args.threads)
    run, data = _codec_run(args)
    if args.steps is not None:
        run.train.steps = args.steps
        run.train.validate()
    result = train_codec(
        args.out,
        run,
        data,
        resume=args.resume,
        device=args.device,
        progress=not args.no_progress,
        stop_after=args.stop_after,
        init=args.init,
    )
    s = result.state
    verb = "interrupted at" if result.interrupted else "stopped at"
    val = f", val mel distance {s.val_nll:.4f}" if s.val_nll is not None else ""
    if result.checkpoint is not None:
        print(f"{verb} step {s.step}{val}; saved {result.checkpoint}")
    return 0


def add_eval_codec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="run folder or codec preset")
    parser.add_argument("--audio", nargs="+", type=Path, default=[], metavar="DIR")
    parser.add_argument("--midi", nargs="+", type=Path, default=[], metavar="DIR")
    parser.add_argument("--soundfont", nargs="+", type=Path, default=[], metavar="SF")
    parser.add_argument("--levels", type=int, help="levels to use (default: all)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per clip (10)")
    parser.add_argument("--clips", type=int, default=12, help="at most this many clips (12)")
    parser.add_argument("--no-visqol", action="store_true", help="skip ViSQOL (slow)")
    parser.add_argument("--no-opus", action="store_true", help="skip the Opus comparison")
    parser.add_argument("--workers", type=int, default=1, help="ViSQOL processes (1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run_eval_codec(args: argparse.Namespace) -> int:
    import torch

    from livegen.training.codec_eval import EvalOptions, evaluate_codec, format_report

    torch.set_num_threads(max(1, args.threads))
    if not (args.audio or args.midi):
        raise LivegenError("give held-out data: --audio DIR and/or --midi DIR --soundfont SF")
    options = EvalOptions(
        args.audio, args.midi, args.soundfont, args.levels, args.seconds, args.clips,
        visqol=not args.no_visqol, opus=not args.no_opus, workers=max(1, args.workers),
    )  # fmt: skip
    report = evaluate_codec(args.run_dir, options)
    print(json.dumps(report) if args.json else format_report(report))
    return 0


def add_export_codec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="codec run folder")
    parser.add_argument("--name", required=True, help="preset name")
    parser.add_argument("--dir", type=Path, help="where presets go (default: shipped presets)")
    parser.add_argument("--description", default="", help="one line for the preset list")
    parser.add_argument("--trained-on", default="", help="what the data was, in words")
    parser.add_argument("--figures", type=Path, help="a JSON report of eval-codec to record")


def run_export_codec(args: argparse.Namespace) -> int:
    from livegen.models.preset import SHIPPED_DIR
    from livegen.training.codec_export import export_codec_preset

    figures = None
    if args.figures is not None:
        try:
            figures = json.loads(args.figures.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise LivegenError(f"{args.figures}: not a JSON report: {error}") from None
    path = export_codec_preset(
        args.run_dir, args.name, args.dir or SHIPPED_DIR, args.description, args.trained_on, figures
    )
    print(f"wrote {path} and {path.with_suffix('')}/")
    return 0


COMMANDS = {
    "codec": (CODEC_HELP, add_codec_arguments, run_codec),
    "eval-codec": (EVAL_CODEC_HELP, add_eval_codec_arguments, run_eval_codec),
    "export-codec": (EXPORT_CODEC_HELP, add_export_codec_arguments, run_export_codec),
}
