"""`livegen-train eval-continuations`: the arguments and the run (the measure itself lives in
training/continuations.py, call mode in training/answers.py).

Which MIDI files: the folders or files given; without any, the held-out (test) split of the
model's training data (the `data` folder its run or preset records, or --data), its files
found again under the folders that data was built from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from livegen.kernels.errors import LivegenError
from livegen.models.preset import FOLLOW_BOUNDS, add_sampling_options, sampling_overrides

CONT_HELP = "judge a model's continuations (and call-mode answers) against real music"
# The --follow-* options, each overriding one FollowSettings field of the preset's:
# flag -> (field, METAVAR of a number, or None for a 0|1 switch, help).
FOLLOW_OPTIONS: dict[str, tuple[str, str | None, str]] = {
    "--follow-density": ("density_gain", "GAIN", "steer density to the prompt's"),
    "--follow-polyphony": ("polyphony", None, "cap polyphony at the prompt's"),
    "--follow-length": ("note_length", None, "cap note length at the prompt's"),
    "--follow-register": ("register_margin", "MARGIN", "keep to the prompt's range"),
    "--follow-key": ("key", None, "only the prompt's pitch classes"),
    "--follow-key-bias": ("key_bias", "GAIN", "steer towards the prompt's pitch classes"),
    "--follow-key-quota": (
        "key_quota",
        None,
        "each pitch class at most its share of the prompt's, counted as the model plays",
    ),
    "--follow-register-steer": (
        "register_steer",
        "RATE",
        "tilt the model's pitches towards the prompt's mean pitch (0: off)",
    ),
    "--follow-rhythm-draw": (
        "rhythm_draw",
        None,
        "onset intervals, chord sizes and note lengths drawn from the prompt's",
    ),
    "--follow-rhythm-variation": (
        "rhythm_variation",
        "CHANCE",
        "chance that an onset closing a second of the prompt's own rhythm is varied (0..1)",
    ),
    "--follow-rhythm-shuffle": (
        "rhythm_shuffle",
        None,
        "the prompt's onsets dealt in new orders (1) or in their own (0)",
    ),
    "--follow-rhythm": (
        "rhythm",
        "PARTS",
        "onsets on the prompt's own pulse, in PARTS where coarser than 160 ms (0: off)",
    ),
}


def _dest(flag: str) -> str:
    """argparse's attribute for `flag`, which is also the preset key of its bound."""
    return flag.removeprefix("--").replace("-", "_")


def add_file_options(parser: argparse.ArgumentParser) -> None:
    """Which MIDI files are judged (chosen_files reads these)."""
    parser.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        metavar="MIDI",
        help="MIDI files or folders (default: the held-out split of the model's training data)",
    )
    parser.add_argument("--data", type=Path, help="a `data` folder (its --split is judged)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int, help="at most N files, evenly spread over the list")


def add_follow_options(parser: argparse.ArgumentParser) -> None:
    """--no-follow and the --follow-* overrides (follow_settings reads these)."""
    parser.add_argument(
        "--no-follow", action="store_true", help="ignore the preset's follow_* settings"
    )
    for flag, (_, metavar, text) in FOLLOW_OPTIONS.items():
        if metavar is None:
            parser.add_argument(flag, type=int, choices=[0, 1], help=text)
        else:  # checked as the preset's own value is
            bound = FOLLOW_BOUNDS[_dest(flag)].option()
            parser.add_argument(flag, type=bound, metavar=metavar, help=text)


def add_continuation_arguments(parser: argparse.ArgumentParser) -> None:
    add_file_options(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", default="piano", help="preset name or .toml (default piano)")
    source.add_argument("--run", type=Path, help="a run folder: its latest checkpoint")
    parser.add_argument(
        "--sampling-from",
        default="piano",
        metavar="PRESET",
        help="with --run: the preset whose [sampling] defaults apply (default piano)",
    )
    parser.add_argument("--prompt-seconds", type=float, default=15.0, help="prompt (15 s)")
    parser.add_argument("--seconds", type=float, default=15.0, help="continuation (15 s)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--call", action="store_true", help="judge call-mode answers instead")
    parser.add_argument("--phrases", type=int, default=3, help="--call: phrases per file (3)")
    parser.add_argument(
        "--no-budget", action="store_true", help="--call: no note budget (the old answer length)"
    )
    add_sampling_options(parser)
    add_follow_options(parser)
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (1)")
    parser.add_argument("--json", action="store_true", help="print everything as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _model(args: argparse.Namespace):  # noqa: ANN202 - (decoder, params, data folder)
    from livegen.models.loading import load_model_for, load_preset_model
    from livegen.models.preset import load_preset
    from livegen.models.sampling import SamplingParams
    from livegen.models.streaming import StreamingDecoder

    preset = load_preset(args.sampling_from if args.run else args.preset)
    try:
        params = SamplingParams.from_defaults(preset.sampling, **sampling_overrides(args))
    except ValueError as error:
        raise LivegenError(str(error)) from None
    if args.run is not None:
        from livegen.training.checkpointing import require_checkpoint
        from livegen.training.train import read_run_file

        loaded = load_model_for(require_checkpoint(args.run) / "model", device=args.device)
        data = read_run_file(args.run).get("data")
    else:
        loaded = load_preset_model(preset, args.device)
        data = preset.training.get("data")
    return StreamingDecoder(loaded.model), params, data, follow_settings(args, preset)


def follow_settings(args: argparse.Namespace, preset):  # noqa: ANN001, ANN201
    """The preset's follow settings (none with --no-follow), with the --follow-* options'."""
    from livegen.models.follow import FollowSettings

    base = FollowSettings() if args.no_follow else FollowSettings.from_defaults(preset.sampling)
    changes = {}
    for flag, (field, metavar, _) in FOLLOW_OPTIONS.items():
        value = getattr(args, _dest(flag))
        if value is not None:
            changes[field] = bool(value) if metavar is None else value
    return dataclasses.replace(base, **changes)


def held_out_files(data_dir: Path, split: str) -> list[Path]:
    """The files of a data folder's split, found under the folders it was built from."""
    from livegen.training.shards import read_index

    index = read_index(data_dir)
    roots = {Path(p).name: Path(p) for p in index.summary.get("inputs", [])}
    found = []
    for piece in index.pieces:
        if piece.split != split:
            continue
        label, _, rest = piece.name.partition("/")
        root = roots.get(label.split("#")[0])
        if root is not None and (root / rest).is_file():
            found.append(root / rest)
    if not found:
        raise LivegenError(
            f"{data_dir}: no {split} file found under the folders it was built from; "
            "give MIDI folders instead"
        )
    return sorted(found)


def chosen_files(args: argparse.Namespace, data: str | None) -> list[Path]:
    """The files add_file_options chose: the MIDI given, else the held-out split of --data or
    of `data` (the folder the model's run or preset records)."""
    from livegen.training.continuations import find_files, spread

    if args.inputs:
        files = find_files(args.inputs)
    else:
        folder = args.data or (Path(data) if data else None)
        if folder is None:
            raise LivegenError("give MIDI folders, or --data: the model records no data folder")
        files = held_out_files(folder, args.split)
    if not files:
        raise LivegenError("no MIDI files found in " + ", ".join(map(str, args.inputs)))
    return spread(files, args.limit)


def _progress(enabled: bool, desc: str):  # noqa: ANN202
    def bar(items, total):  # noqa: ANN001, ANN202
        if not enabled:
            return items
        from tqdm import tqdm

        return tqdm(items, total=total, desc=desc, unit="file")

    return bar


def run_continuations(args: argparse.Namespace) -> int:
    import torch

    from livegen.training import answers, continuations

    if args.threads < 1:
        raise LivegenError(f"--threads must be >= 1, got {args.threads}")
    if args.phrases < 1:
        raise LivegenError(f"--phrases must be >= 1, got {args.phrases}")
    options = continuations.EvalOptions(args.prompt_seconds, args.seconds, args.seed)
    options.validate()
    torch.set_num_threads(args.threads)
    decoder, params, data, follow = _model(args)
    options.follow = follow
    files = chosen_files(args, data)
    bar = _progress(not args.no_progress, "answers" if args.call else "continuations")
    with torch.no_grad():
        if args.call:
            call = answers.CallOptions(
                phrases_per_file=args.phrases,
                budget=not args.no_budget,
                seed=args.seed,
                follow=follow,
            )
            summary = answers.call_summary(
                answers.evaluate_calls(files, decoder, params, call, bar)
            )
            text = answers.format_call_summary(summary)
        else:
            report = continuations.evaluate(files, decoder, params, options, bar)
            summary = continuations.summary(report)
            text = continuations.format_summary(summary)
    summary["sampling"] = {
        k: getattr(params, k) for k in ("temperature", "top_k", "top_p", "min_p", "density")
    }
    summary["follow"] = dataclasses.asdict(follow)
    print(json.dumps(summary) if args.json else text)
    return 0 if (summary.get("files") or summary.get("phrases")) else 1
