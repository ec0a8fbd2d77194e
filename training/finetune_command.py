"""The `livegen-train finetune` command line (the work is in training/finetune.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from livegen.kernels.errors import LivegenError

FINETUNE_HELP = "fine-tune a preset on your own recordings (livegen's takes or any MIDI)"


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    from livegen.training.finetune import TRACKS, FinetuneOptions

    defaults = FinetuneOptions()
    parser.add_argument("--preset", required=True, help="the preset to start from (e.g. piano)")
    parser.add_argument(
        "--midi", nargs="+", type=Path, required=True, metavar="DIR", help="recording folders"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="RUN", help="run folder")
    parser.add_argument(
        "--tracks",
        choices=TRACKS,
        default=defaults.tracks,
        help="of livegen's takes, learn the player's track only (default) or all tracks "
        "(the model's answers too); other MIDI files are used whole",
    )
    parser.add_argument("--steps", type=int, help=f"optimizer steps ({defaults.steps})")
    parser.add_argument("--lr", type=float, help=f"peak learning rate ({defaults.lr:g})")
    parser.add_argument("--batch-size", type=int, help=f"sequences a step ({defaults.batch_size})")
    parser.add_argument(
        "--val", type=float, default=defaults.val_fraction, help="validation fraction (0.1)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML overrides: [train] keys, and [model] context / latents / dropout",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run's checkpoint")
    parser.add_argument("--stop-after", type=int, metavar="N", help="stop after N steps")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (CPU)")
    parser.add_argument("--workers", type=int, default=1, help="processes for the data step")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _options(args: argparse.Namespace):
    from livegen.training.finetune import FinetuneOptions

    options = FinetuneOptions(
        tracks=args.tracks,
        val_fraction=args.val,
        workers=max(1, args.workers),
        progress=not args.no_progress,
    )
    if not 0 <= args.val < 1:
        raise LivegenError(f"--val must be a fraction in [0, 1), got {args.val}")
    for name in ("steps", "lr", "batch_size"):
        value = getattr(args, name)
        if value is not None:
            if value <= 0:
                raise LivegenError(f"--{name.replace('_', '-')} must be positive, got {value}")
            setattr(options, name, value)
    options.eval_interval = min(options.eval_interval, options.steps)
    options.checkpoint_interval = min(options.checkpoint_interval, options.steps)
    return options


def run_finetune(args: argparse.Namespace) -> int:
    import torch

    from livegen.training import finetune
    from livegen.training.config import RunConfig
    from livegen.training.train import RUN_FILE, read_run_file, train

    if args.threads:
        torch.set_num_threads(args.threads)
    options = _options(args)
    data_dir = args.out / finetune.DATA_DIR
    init = None
    if args.resume and (args.out / RUN_FILE).is_file():
        # The run trains on the data it was prepared with; new takes need a new run.
        run = RunConfig.from_dict(read_run_file(args.out)["config"], str(args.out))
        if args.steps is not None:
            run.train.steps = args.steps
        info = finetune.read_info(args.out) or {}
    else:
        if (args.out / RUN_FILE).exists():  # before the recordings are staged over its data
            raise LivegenError(
                f"{args.out}: already holds a training run; --resume continues it, or give "
                "--out a new folder (nothing was changed)"
            )
        init, info = finetune.prepare(args.out, args.preset, args.midi, options)
        run = finetune.finetune_config(init, options, args.config)
        finetune.check_enough(info, run)
        staged = info["staged"]
        print(
            f"{staged['files']} MIDI files: {staged['takes']} livegen takes "
            f"({options.tracks} tracks), {staged['whole']} other files used whole; "
            f"{info['data_summary']['tokens']:,} tokens"
        )
        info["val_nll_before"] = finetune.split_nll_of(
            finetune.starting_model(init, run), data_dir, "val", run.train.eval_windows
        )
        finetune.write_info(args.out, info)
    result = train(
        args.out,
        run,
        data_dir,
        resume=args.resume,
        device=args.device,
        progress=not args.no_progress,
        stop_after=args.stop_after,
        init=init,
    )
    before, after = info.get("val_nll_before"), result.state.val_nll
    if before is not None and after is not None:
        print(f"validation NLL {before:.4f} -> {after:.4f} nats/token")
    word = "interrupted at" if result.interrupted else "stopped at"
    print(f"{word} step {result.state.step}; saved {result.checkpoint}")
    print(f"make it a preset: livegen-train export {args.out} --name NAME")
    return 0
