"""`livegen-train finetune`: a preset, trained a little further on a musician's own recordings.

    RUN/recordings/   the MIDI files chosen (with --tracks player: the player's track of each
                      livegen take), staged so the data step sees exactly what trains
    RUN/data/         token shards and index, built as `livegen-train data` builds them
    RUN/finetune.json what was fine-tuned on what, and the validation NLL before training
    RUN/...           a training run like any other (checkpoints, log.csv, run.json)

The data rules are those of `data` (skipped files listed with their reason, splits by the
hash of a file's bytes), the loop is `ar`'s (checkpoints, --resume, Ctrl-C), and the weights
start from the preset's. What changes is the schedule: a low learning rate and a short run,
so the model moves towards the recordings without forgetting what it knew.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livegen.kernels.errors import LivegenError
from livegen.models.perceiver_ar import PerceiverAR
from livegen.training.config import RunConfig, TrainConfig
from livegen.training.data import DataOptions, build_data, find_midi_files
from livegen.training.warm_start import (
    InitSource,
    load_init_weights,
    resolve_init,
    source_config,
)

TRACKS = ("player", "all")
PLAYER, MODEL = "player", "model"  # the track names livegen's recorder writes
STAGE_DIR = "recordings"
DATA_DIR = "data"
INFO_FILE = "finetune.json"
# [model] keys a fine-tune config may change: the rest shape the preset's weights.
MODEL_OVERRIDES = ("context", "latents", "dropout")


@dataclass
class FinetuneOptions:
    tracks: str = PLAYER
    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-4  # a tenth of the piano preset's peak: adapt, do not start over
    warmup_steps: int = 20
    eval_interval: int = 25
    checkpoint_interval: int = 25
    val_fraction: float = 0.1  # held out to show whether it generalises; no test split
    workers: int = 1
    progress: bool = True


@dataclass
class StageReport:
    files: int = 0
    takes: int = 0  # livegen takes, of which only the chosen tracks were kept
    whole: int = 0  # other MIDI files, used whole
    unreadable: int = 0  # copied as they are: the data step skips them with the reason


def _take_tracks(data: bytes) -> list[str] | None:
    """The track names of a MIDI file if it is a livegen take (player and model tracks)."""
    import io

    import mido

    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except Exception:  # mido raises many types for bad files; the data step reports them
        return None
    names = [track.name for track in midi.tracks]
    return names if PLAYER in names and MODEL in names else None


def _player_only(data: bytes) -> bytes:
    """The take without its model track (tempo and the player's notes stay)."""
    import io

    import mido

    midi = mido.MidiFile(file=io.BytesIO(data))
    kept = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
    kept.tracks.extend(track for track in midi.tracks if track.name != MODEL)
    out = io.BytesIO()
    kept.save(file=out)
    return out.getvalue()


def stage_recordings(folders: list[Path], stage: Path, tracks: str) -> StageReport:
    """Copy the recordings into stage/, keeping only the chosen tracks of each livegen take."""
    if tracks not in TRACKS:
        raise LivegenError(f"--tracks must be one of {', '.join(TRACKS)}, not {tracks!r}")
    files = find_midi_files(folders)
    if not files:
        raise LivegenError(f"no MIDI files (*.mid, *.midi) under {', '.join(map(str, folders))}")
    if stage.exists():
        shutil.rmtree(stage)
    report = StageReport(files=len(files))
    for name, path in files:
        target = stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = path.read_bytes()
        except OSError:
            data = b""  # the data step names it as unreadable (empty)
        names = _take_tracks(data)
        if names is None:
            report.whole += 1
        elif tracks == PLAYER:
            report.takes += 1
            data = _player_only(data)
        else:
            report.takes += 1
        target.write_bytes(data)
    return report


def _read_overrides(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LivegenError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise LivegenError(f"{path}: cannot read: {error}") from None
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise LivegenError(f"{path}: unknown tables {unknown}; known: ['model', 'train']")
    fixed = sorted(set(data.get("model", {})) - set(MODEL_OVERRIDES))
    if fixed:
        raise LivegenError(
            f"{path} [model]: {fixed} shape the preset's weights; a fine-tune may change only "
            f"{', '.join(MODEL_OVERRIDES)}"
        )
    return data


def finetune_config(
    init: InitSource, options: FinetuneOptions, config_file: Path | None = None
) -> RunConfig:
    """The preset's model and recorded training settings with a fine-tune's schedule.

    A config file's [model] (context, latents, dropout) and [train] tables override both.
    """
    model = source_config(init)
    recorded: dict[str, Any] = {}
    if init.preset is not None:
        recorded = dict(init.preset.training.get("config", {}).get("train", {}))
    schedule = {
        "steps": options.steps,
        "batch_size": options.batch_size,
        "grad_accum": 1,
        "lr": options.lr,
        "warmup_steps": options.warmup_steps,
        "eval_interval": options.eval_interval,
        "checkpoint_interval": options.checkpoint_interval,
    }
    overrides = _read_overrides(config_file)
    train_table = {**recorded, **schedule, **overrides.get("train", {})}
    where = str(config_file) if config_file else "finetune"
    train = TrainConfig.from_dict(train_table, f"{where} [train]")
    try:
        model = dataclasses.replace(model, **overrides.get("model", {}))
    except (TypeError, ValueError) as error:
        raise LivegenError(f"{where} [model]: {error}") from None
    return RunConfig(model, train)


def prepare(
    run_dir: Path, preset: str, folders: list[Path], options: FinetuneOptions
) -> tuple[InitSource, dict[str, Any]]:
    """Stage the recordings and build RUN/data; returns the weights to start from and what
    finetune.json records."""
    init = resolve_init(preset)
    report = stage_recordings(folders, run_dir / STAGE_DIR, options.tracks)
    data_options = DataOptions(
        val_fraction=options.val_fraction,
        test_fraction=0.0,
        workers=options.workers,
        progress=options.progress,
    )
    index = build_data([run_dir / STAGE_DIR], run_dir / DATA_DIR, data_options)
    info = {
        "init": init.to_dict(),
        "midi": [str(Path(f).resolve()) for f in folders],
        "tracks": options.tracks,
        "staged": dataclasses.asdict(report),
        "data_summary": index.summary,
    }
    return init, info


def check_enough(info: dict[str, Any], run: RunConfig) -> None:
    """Training windows are N + 1 tokens with the loss on the last L: fewer training tokens
    than that would train on padding only, silently. Say so instead."""
    have = int(info["data_summary"]["tokens_per_split"]["train"])
    need = run.model.context + 1
    if have < need:
        raise LivegenError(
            f"the recordings hold {have:,} tokens for training; the model reads {need:,} at a "
            "time (a few minutes of playing): record more, or fine-tune a shorter context with "
            "--config (a [model] table with context and latents)"
        )


def write_info(run_dir: Path, info: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / INFO_FILE
    path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def read_info(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / INFO_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def split_nll_of(
    model: PerceiverAR, data_dir: Path, split: str = "val", windows: int = 64
) -> float | None:
    """NLL (nats/token) of a model on a split of a data folder; None when the split is empty."""
    from livegen.training.evaluate import split_nll
    from livegen.training.shards import TokenShards

    shards = TokenShards(data_dir, split)
    if shards.total_tokens < 2:
        return None
    nll, _ = split_nll(model, shards, limit=windows)
    return nll


def starting_model(init: InitSource, run: RunConfig) -> PerceiverAR:
    """The weights a fine-tune starts from, shaped as the run trains them (its context)."""
    model = PerceiverAR(run.model)
    load_init_weights(model, init)
    return model.eval()
