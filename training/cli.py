"""`livegen-train`: build token data, train (one process or a torchrun job), evaluate, export.

livegen-train data --midi DIR [DIR ...] --out DATA
livegen-train data --music21 [COLLECTION ...] --out DATA
livegen-train data --audio DIR [DIR ...] [--midi DIR ... --render SF] --codec P --out DATA
livegen-train ar --config FILE | --preset P --data DATA --out RUN [--steps N] [--resume] [--init P]
torchrun --nproc-per-node K -m livegen.training ar ...
livegen-train eval RUN --data DATA [--json]
livegen-train eval-continuations [MIDI_DIR ...] [--preset P | --run RUN] [--call] [--json]
livegen-train export RUN --name NAME
livegen-train codec | eval-codec | export-codec ...   (the audio codec: see codec_cli.py)
livegen-train finetune --preset P --midi DIR [DIR ...] --out RUN [--tracks player|all]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from livegen.kernels.atomic_write import describe_os_error, write_text
from livegen.kernels.errors import LivegenError
from livegen.kernels.values import (
    COUNT,
    FRACTION,
    MIDI_BYTE,
    NONNEGATIVE_INT,
    POSITIVE,
    THREADS,
    OptionParser,
    UsageError,
)
from livegen.training.audio_data_cli import add_audio_data_arguments, run_audio_data
from livegen.training.codec_cli import COMMANDS as CODEC_COMMANDS
from livegen.training.continuation_cli import (
    CONT_HELP,
    add_continuation_arguments,
    run_continuations,
)
from livegen.training.finetune_command import FINETUNE_HELP, add_finetune_arguments, run_finetune

PROG = "livegen-train"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("livegen")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- data

DATA_HELP = (
    "turn MIDI folders or the music21 corpus into token shards (train/val/test); with --codec, "
    "audio (or MIDI rendered through FluidSynth) into codec token shards"
)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--midi", nargs="+", type=Path, metavar="DIR", help="MIDI folders")
    source.add_argument(
        "--music21",
        nargs="*",
        metavar="COLLECTION",
        help="the music21 corpus (default: every collection except Essen), converted to MIDI "
        "under DATA/music21-midi first (cached)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DATA", help="output folder")
    parser.add_argument(
        "--include-essen",
        action="store_true",
        help="with --music21: include the Essen folk songs (licensed for non-commercial use)",
    )
    parser.add_argument("--workers", type=THREADS.option(), default=1, help="processes (default 1)")
    parser.add_argument(
        "--val", type=FRACTION.option(), default=0.05, help="validation fraction (0.05)"
    )
    parser.add_argument("--test", type=FRACTION.option(), default=0.05, help="test fraction (0.05)")
    parser.add_argument(
        "--limit",
        type=COUNT.option(),
        default=None,
        help="with --music21: only the first N source files",
    )
    parser.add_argument("--drums", action="store_true", help="keep channel-10 drums")
    parser.add_argument(
        "--max-gap",
        type=POSITIVE.option(),
        default=30.0,
        metavar="S",
        help="shorten any stretch longer than S seconds with no event to S (30; listed in "
        "DATA/repaired.txt)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_audio_data_arguments(parser)


def run_data(args: argparse.Namespace) -> int:
    from livegen.training.data import DataOptions, build_data, format_summary, summary_json

    if not (0 <= args.val < 1 and 0 <= args.test < 1 and args.val + args.test < 1):
        raise LivegenError("--val and --test must be fractions that leave some training data")
    if args.audio or args.codec or args.render:
        return run_audio_data(args)
    if args.midi is None and args.music21 is None:
        raise LivegenError("give --midi DIR ..., --music21 or --audio DIR ... (with --codec)")
    options = DataOptions(
        val_fraction=args.val,
        test_fraction=args.test,
        workers=max(1, args.workers),
        include_drums=args.drums,
        progress=not args.no_progress,
        max_gap_seconds=args.max_gap,
    )
    folders = args.midi
    if args.music21 is not None:
        folders = [_music21_folder(args, options.progress)]
    index = build_data(folders, args.out, options)
    print(summary_json(index) if args.json else format_summary(index, args.out))
    return 0


def _music21_folder(args: argparse.Namespace, progress: bool) -> Path:
    from livegen.training.music21_source import export_corpus

    midi_dir = args.out / "music21-midi"

    def bar(results, total):
        if not progress:
            return results
        from tqdm import tqdm

        return tqdm(results, total=total, desc="music21 -> MIDI", unit="source")

    results = export_corpus(
        midi_dir,
        collections=args.music21 or None,
        include_essen=args.include_essen,
        workers=max(1, args.workers),
        progress=bar,
        limit=args.limit,
    )
    failed = [f"{piece}: {reason}" for r in results for piece, reason in r.failed]
    args.out.mkdir(parents=True, exist_ok=True)
    report = args.out / "music21-skipped.txt"
    write_text(report, "".join(line + "\n" for line in failed))
    if failed:
        print(f"music21: {len(failed)} pieces could not be converted (listed in {report})")
    return midi_dir


# ---------------------------------------------------------------- ar

AR_HELP = "train a Perceiver AR on token shards (one process, or every rank under torchrun)"


def add_ar_arguments(parser: argparse.ArgumentParser) -> None:
    config = parser.add_mutually_exclusive_group()
    config.add_argument("--config", type=Path, help="a TOML file with [model] and [train]")
    config.add_argument(
        "--preset",
        help="train the architecture and settings of a preset (a shipped name or a .toml path)",
    )
    parser.add_argument("--data", type=Path, required=True, help="folder from `data`")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN", help="run folder")
    parser.add_argument(
        "--steps", type=COUNT.option(), help="total optimizer steps (overrides the config)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the run's latest checkpoint"
    )
    parser.add_argument(
        "--stop-after",
        type=COUNT.option(),
        metavar="N",
        help="checkpoint and stop after N steps of this invocation (the schedule is unchanged)",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1")
    parser.add_argument("--threads", type=THREADS.option(), help="torch intra-op threads (CPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--init",
        metavar="SOURCE",
        help="start from these weights instead of random ones: a preset, a run folder or a "
        "model folder (same dim/heads/layers; context, latents, dropout may differ)",
    )


def _run_config(args: argparse.Namespace):
    from livegen.training.config import RunConfig, load_run_config

    if args.config is not None:
        return load_run_config(args.config)
    if args.preset is not None:
        return _preset_config(args.preset)
    if args.resume:
        from livegen.training.train import read_run_file

        return RunConfig.from_dict(read_run_file(args.out)["config"], str(args.out))
    raise LivegenError("give --config FILE or --preset NAME (or --resume an existing run)")


def _preset_config(name: str):
    from livegen.models.checkpoint import load_config
    from livegen.models.preset import load_preset
    from livegen.training.config import RunConfig, TrainConfig

    preset = load_preset(name)
    model, _ = load_config(preset.model_dir)
    recorded = preset.training.get("config", {}).get("train", {})
    return RunConfig(model, TrainConfig.from_dict(recorded, f"{preset.source} [training.config]"))


def run_ar(args: argparse.Namespace) -> int:
    import torch

    from livegen.training.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    run = _run_config(args)
    if args.steps is not None:
        run.train.steps = args.steps
        run.train.validate()
    init = None
    if args.init is not None:
        from livegen.training.warm_start import check_compatible, resolve_init, source_config

        init = resolve_init(args.init)
        check_compatible(source_config(init), run.model, args.init)  # before any data is read
    result = train(
        args.out,
        run,
        args.data,
        resume=args.resume,
        device=args.device,
        progress=not args.no_progress,
        stop_after=args.stop_after,
        init=init,
    )
    s = result.state
    val = f", val NLL {s.val_nll:.4f} nats/token" if s.val_nll is not None else ""
    verb = "interrupted at" if result.interrupted else "stopped at"
    if result.checkpoint is not None:
        print(f"{verb} step {s.step} ({s.tokens_seen:,} tokens{val}); saved {result.checkpoint}")
    return 0


# ---------------------------------------------------------------- eval

EVAL_HELP = "test-set NLL (nats/token) of a run, also through the streaming decoder"


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", type=Path, metavar="RUN", help="run folder (or a preset: name or .toml)"
    )
    parser.add_argument("--data", type=Path, required=True, help="folder from `data`")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--windows", type=COUNT.option(), default=256, help="max windows (256)")
    parser.add_argument(
        "--stream-tokens",
        type=NONNEGATIVE_INT.option(),
        default=512,
        help="tokens decoded one by one through the streaming decoder (512; 0 skips)",
    )
    parser.add_argument("--threads", type=THREADS.option(), help="torch intra-op threads")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from livegen.models.checkpoint import load_model
    from livegen.training.audio_data import check_data_matches
    from livegen.training.checkpointing import read_state, require_checkpoint
    from livegen.training.evaluate import split_nll, stream_nll
    from livegen.training.export import EVAL_FILE
    from livegen.training.shards import TokenShards, read_index

    if args.threads:
        torch.set_num_threads(args.threads)
    is_run = args.run_dir.is_dir()
    if is_run:
        checkpoint = require_checkpoint(args.run_dir)
        model_dir, step = checkpoint / "model", read_state(checkpoint).step
    else:  # a preset: what a user plays, measured on any data (e.g. held-out MIDI)
        from livegen.models.audio_preset import load_audio_preset
        from livegen.models.preset import find_preset, load_preset, preset_kind

        audio = preset_kind(find_preset(str(args.run_dir))) == "audio"
        preset = (load_audio_preset if audio else load_preset)(str(args.run_dir))
        checkpoint, model_dir = preset.model_dir, preset.model_dir
        step = preset.training.get("steps")
    model = load_model(model_dir, device="cpu")
    index = read_index(args.data)
    check_data_matches(index, model.config, args.data)  # the same token language
    shards = TokenShards(args.data, args.split, index)
    if shards.total_tokens == 0:
        raise LivegenError(f"{args.data}: the {args.split} split is empty")
    nll, count = split_nll(model, shards, limit=args.windows)
    report = {
        "checkpoint": str(checkpoint),
        "step": step,
        "split": args.split,
        "nll": round(nll, 5),
        "tokens": count,
    }
    agrees = True
    if args.stream_tokens > 0:
        tokens = shards.window(0, 0, args.stream_tokens + 1)
        streamed = stream_nll(model, tokens)
        agrees = streamed.agrees
        report["stream"] = {
            "nll": round(streamed.nll, 5),
            "parallel_nll": round(streamed.reference_nll, 5),
            "max_logit_diff": streamed.max_logit_diff,
            "tokens": streamed.tokens,
            "agrees": agrees,
        }
    if is_run:
        write_text(args.run_dir / EVAL_FILE, json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.split} NLL {nll:.4f} nats/token over {count:,} tokens ({checkpoint.name})")
        if "stream" in report:
            s = report["stream"]
            word = "agrees with" if agrees else "DISAGREES with"
            print(
                f"streaming decoder: {s['nll']:.4f} nats/token over {s['tokens']} tokens from "
                f"an empty cache; {word} parallel windows ({s['parallel_nll']:.4f}, max logit "
                f"difference {s['max_logit_diff']:.2e})"
            )
    return 0 if agrees else 1


# ---------------------------------------------------------------- export

EXPORT_HELP = "write a run's latest checkpoint as a preset: presets/NAME.toml + presets/NAME/"


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="run folder")
    parser.add_argument("--name", required=True, help="preset name")
    parser.add_argument(
        "--dir",
        type=Path,
        help="where presets go (default: your presets folder for a fine-tune, where --preset "
        "NAME and the jam find it; livegen's shipped presets folder for other runs)",
    )
    parser.add_argument("--description", default="", help="one line for the preset list")
    parser.add_argument("--soundfont", help="SoundFont file the preset plays through")
    parser.add_argument(
        "--program",
        type=MIDI_BYTE.option(),
        help="General MIDI program (default: the base preset's for a warm-started run, else 0)",
    )
    parser.add_argument("--quantize", choices=["none", "int8"], default="none")
    parser.add_argument(
        "--weights",
        choices=["float32", "float16"],
        default="float32",
        help="storage precision of the weights (float16: half the file; loaded as float32)",
    )


def run_export(args: argparse.Namespace) -> int:
    from livegen.training.export import ExportOptions, default_presets_dir, export_preset

    options = ExportOptions(
        args.description, args.soundfont, args.program, args.quantize, args.weights
    )
    folder = args.dir or default_presets_dir(args.run_dir)
    path = export_preset(args.run_dir, args.name, folder, options)
    print(f"wrote {path} and {path.with_suffix('')}/")
    return 0


# ---------------------------------------------------------------- main

COMMANDS = {
    "data": (DATA_HELP, add_data_arguments, run_data),
    "ar": (AR_HELP, add_ar_arguments, run_ar),
    "eval": (EVAL_HELP, add_eval_arguments, run_eval),
    "eval-continuations": (CONT_HELP, add_continuation_arguments, run_continuations),
    "export": (EXPORT_HELP, add_export_arguments, run_export),
    "finetune": (FINETUNE_HELP, add_finetune_arguments, run_finetune),
}
COMMANDS.update(CODEC_COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    parser = OptionParser(
        prog=PROG,
        description="Build livegen's models: token data, training (torchrun for many "
        "processes or machines), evaluation, presets.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (text, add_arguments, run) in COMMANDS.items():
        command = sub.add_parser(name, help=text, description=text)
        add_arguments(command)
        command.set_defaults(handler=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:  # one line, exit 2, like every other bad input
        print(error, file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except LivegenError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a disk or device failure no command foresaw: still one line
        print(f"{PROG} {args.command}: error: {describe_os_error(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
