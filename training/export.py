"""`livegen-train export`: a run's latest checkpoint -> presets/NAME.toml + presets/NAME/.

The preset names its model folder, sampling defaults, sound, and in [training] what it was
trained on and how long (data, steps, tokens seen, validation/test NLL, the run's config), so
a shipped preset can be reproduced with `livegen-train ar --preset NAME`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from livegen.kernels.errors import LivegenError
from livegen.models.checkpoint import load_model, save_model
from livegen.models.preset import (
    SHIPPED_DIR,
    ModelSpec,
    Preset,
    SamplingDefaults,
    Sound,
    load_preset,
    save_preset,
    user_presets_dir,
)
from livegen.training.checkpointing import read_state, require_checkpoint
from livegen.training.train import read_run_file

EVAL_FILE = "eval.json"
WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass
class ExportOptions:
    description: str = ""
    soundfont: str | None = None
    program: int | None = None  # None: the base preset's, else 0 (piano)
    quantize: str = "none"
    weights: str = "float32"  # storage precision of the shipped weights: float32 or float16


def _clean(value: Any) -> Any:
    """TOML has no null: drop None values, recursively."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value if v is not None]
    return value


def training_table(run_dir: Path, checkpoint: Path) -> dict[str, Any]:
    run = read_run_file(run_dir)
    state = read_state(checkpoint)
    summary = run.get("data_summary", {})
    table: dict[str, Any] = {
        "data": run.get("data", ""),
        "data_inputs": summary.get("inputs", []),
        "data_files": summary.get("files"),
        "data_hours": summary.get("hours"),
        "data_tokens": summary.get("tokens"),
        "steps": state.step,
        "tokens_seen": state.tokens_seen,
        "val_nll": state.val_nll,
        "config": run.get("config"),
        "init": run.get("init"),  # a warm start: the weights it began from
        "data_history": run.get("data_history"),  # earlier data of a run resumed on new data
    }
    tuned = Path(run_dir) / "finetune.json"
    if tuned.is_file():
        info = json.loads(tuned.read_text(encoding="utf-8"))
        keys = ("midi", "tracks", "staged", "val_nll_before")
        table["finetune"] = {k: info[k] for k in keys if k in info}
    eval_path = Path(run_dir) / EVAL_FILE
    if eval_path.is_file():
        table["eval"] = json.loads(eval_path.read_text(encoding="utf-8"))
    return _clean(table)


def export_preset(
    run_dir: Path, name: str, presets_dir: Path, options: ExportOptions | None = None
) -> Path:
    """Write presets_dir/NAME.toml and presets_dir/NAME/ from the run's latest checkpoint."""
    options = options or ExportOptions()
    if not name or "/" in name or name.startswith("."):
        raise LivegenError(f"preset name {name!r} must be a plain file name")
    checkpoint = require_checkpoint(Path(run_dir))
    model = load_model(checkpoint / "model")
    training = training_table(Path(run_dir), checkpoint)
    params = model.config.num_parameters()
    training["parameters"] = params
    if options.weights not in WEIGHT_DTYPES:
        raise LivegenError(
            f"weights must be one of {sorted(WEIGHT_DTYPES)}, not {options.weights!r}"
        )
    training["weights"] = options.weights
    base = base_preset(Path(run_dir))  # read before an export over it replaces it
    if base is not None:
        training["base"] = record = base_preset_record(Path(run_dir)) or base_record(base)
        between = tokens_between(Path(run_dir))  # runs in the chain between preset and run
        training["tokens_seen_total"] = (
            training["tokens_seen"] + between + record["tokens_seen_total"]
        )
    save_model(
        model,
        presets_dir / name,
        metadata={"preset": name, **_meta(training)},
        dtype=WEIGHT_DTYPES[options.weights],
    )
    if model.config.tokens == "audio":
        return _save_audio_preset(model.config, name, presets_dir, options, training)
    sound = dataclasses.replace(base.sound) if base else Sound()
    if options.program is not None:
        sound.program = options.program
    if options.soundfont:
        sound.soundfont = options.soundfont
    c = model.config
    description = options.description or (
        f"Perceiver AR, {params / 1e6:.2f}M parameters, context {c.context}, "
        f"{c.latents} latents; trained {training['steps']} steps"
        + (f" from preset {base.name}" if base else "")
    )
    preset = Preset(
        name=name,
        description=description,
        model=ModelSpec(path=name, quantize=options.quantize),
        sampling=dataclasses.replace(base.sampling) if base else SamplingDefaults(),
        sound=sound,
        training=training,
    )
    path = presets_dir / f"{name}.toml"
    save_preset(preset, path)
    return path


def _save_audio_preset(config, name, presets_dir, options, training) -> Path:  # noqa: ANN001
    """An audio model's preset names the codec preset that makes and decodes its tokens."""
    from livegen.models.audio_preset import AudioPreset, Render, save_audio_preset

    render = Render()
    if options.soundfont:
        render.soundfont = options.soundfont
    if options.program is not None:
        render.program = options.program
    seconds = config.context / (config.levels * _frame_rate(config.codec))
    description = options.description or (
        f"Perceiver AR over {config.codec} tokens ({config.levels} levels), "
        f"{training['parameters'] / 1e6:.2f}M parameters, context {config.context} tokens "
        f"({seconds:.1f} s), {config.latents} latents; trained {training['steps']} steps"
    )
    preset = AudioPreset(
        name=name,
        description=description,
        model_path=name,
        codec=config.codec,
        render=render,
        quantize=options.quantize,
        training=training,
    )
    path = presets_dir / f"{name}.toml"
    save_audio_preset(preset, path)
    return path


def _frame_rate(codec: str) -> float:
    from livegen.models.codec_files import load_codec_config
    from livegen.models.codec_preset import load_codec_preset

    try:
        return load_codec_config(load_codec_preset(codec).model_dir)[0].frame_rate
    except LivegenError as error:
        raise LivegenError(f"the model's codec {codec!r}: {error}") from None


def base_preset(run_dir: Path, depth: int = 8) -> Preset | None:
    """The preset a warm-started run began from (its sampling and sound carry over), if any:
    through a chain of runs warm-started from runs (a long run, then an anneal of it)."""
    init = read_run_file(run_dir).get("init") or {}
    source = init.get("preset_file")
    if source and Path(source).is_file():
        try:
            return load_preset(source)
        except LivegenError:
            return None  # a base preset edited into nonsense since: fall back to the defaults
    parent = Path(init.get("source", ""))
    if depth > 0 and init.get("source") and (parent / "run.json").is_file():
        return base_preset(parent, depth - 1)
    return None


def base_preset_record(run_dir: Path, depth: int = 8) -> dict[str, Any] | None:
    """The base preset's record as the chain's first warm start saw it (None for runs made
    before it was recorded there: then the preset file as it is now is all there is)."""
    init = read_run_file(run_dir).get("init") or {}
    if "preset_record" in init:
        return dict(init["preset_record"])
    parent = Path(init.get("source", ""))
    if depth > 0 and init.get("source") and (parent / "run.json").is_file():
        return base_preset_record(parent, depth - 1)
    return None


def tokens_between(run_dir: Path, depth: int = 8) -> int:
    """Target tokens trained by the runs a run was warm-started from, back to the preset."""
    init = read_run_file(run_dir).get("init") or {}
    parent = Path(init.get("source", ""))
    if init.get("preset_file") or depth <= 0 or not (parent / "run.json").is_file():
        return 0
    checkpoint = Path(init.get("model", "")).parent
    seen = init.get("tokens_seen")  # recorded at the warm start: checkpoints get pruned
    if seen is None:
        seen = read_state(checkpoint).tokens_seen if (checkpoint / "state.json").is_file() else 0
    return seen + tokens_between(parent, depth - 1)


def base_record(base: Preset) -> dict[str, Any]:
    """What the weights a warm start began from had been trained on, for the new preset's
    [training.base] (kept when the base preset file is later replaced)."""
    t = base.training
    seen = int(t.get("tokens_seen_total", t.get("tokens_seen", 0)))
    keys = ("steps", "tokens_seen", "data_files", "data_tokens", "val_nll")
    record = {"preset": base.name, **{k: t[k] for k in keys if k in t}}
    record["tokens_seen_total"] = seen
    if "eval" in t and "nll" in t["eval"]:
        record["test_nll"] = t["eval"]["nll"]
    return record


def default_presets_dir(run_dir: Path) -> Path:
    """A fine-tune is the user's own preset; any other run is one this package ships."""
    from livegen.training.finetune import INFO_FILE

    return user_presets_dir() if (Path(run_dir) / INFO_FILE).is_file() else SHIPPED_DIR


def _meta(training: dict[str, Any]) -> dict[str, Any]:
    keys = ("steps", "tokens_seen", "val_nll", "data", "parameters")
    return {k: training[k] for k in keys if k in training}
