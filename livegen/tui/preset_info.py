"""What the set-up screen says about a preset: what it is, how big, what it learnt from, and
whether this machine plays it in real time (a short run of `livegen bench`'s measurement).

Both functions import torch and read files, and the bench takes seconds: the UI calls them
from worker threads only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from livegen.kernels.errors import LivegenError
from livegen.models.preset import SHIPPED_DIR, list_presets

BENCH_TOKENS = 128  # enough for a stable p99 on a small model, about a second on a CPU


@dataclass(frozen=True)
class PresetInfo:
    name: str
    description: str = ""
    parameters: int | None = None
    context: int | None = None
    latents: int | None = None
    trained_on: str = ""
    problem: str | None = None  # why it cannot be used, when it cannot

    def lines(self) -> list[str]:
        if self.problem:
            return [f"{self.name}: {self.problem}"]
        size = (
            "size unknown"
            if self.parameters is None
            else f"{self.parameters / 1e6:.2f} M parameters"
        )
        shape = f", context {self.context}, {self.latents} latents" if self.context else ""
        return [
            self.description or "(no description)",
            f"{size}{shape}",
            f"trained on: {self.trained_on or 'not recorded'}",
        ]


def available_presets(current: str | None = None, user_dir: Path | None = None) -> list[str]:
    """Shipped preset names, the user's preset files, and the current one (a name or a path)."""
    names = list_presets(SHIPPED_DIR)
    if user_dir is not None and user_dir.is_dir():
        names += [str(p) for p in sorted(user_dir.glob("*.toml"))]
    if current and current not in names:
        names.insert(0, current)
    return names


def _trained_on(training: dict) -> str:
    for key in ("data", "dataset", "corpus"):
        if key in training:
            return str(training[key])
    return ", ".join(f"{k}: {v}" for k, v in training.items())


def describe_preset(name: str) -> PresetInfo:
    from livegen.models.checkpoint import load_config
    from livegen.models.preset import load_preset

    try:
        preset = load_preset(name)
        config, _meta = load_config(preset.model_dir)
    except LivegenError as error:
        return PresetInfo(name=name, problem=str(error))
    return PresetInfo(
        name=preset.name,
        description=preset.description,
        parameters=config.num_parameters(),
        context=config.context,
        latents=config.latents,
        trained_on=_trained_on(preset.training),
    )


def short_bench(name: str, device: str | None = None) -> str:
    """One line: does this machine keep up with the preset (and how fast it decodes)."""
    import torch

    from livegen.benchmark import run_bench
    from livegen.models.loading import load_preset_model
    from livegen.models.preset import load_preset
    from livegen.models.sampling import SamplingParams

    try:
        preset = load_preset(name)
        torch.set_num_threads(1)  # one thread is the fastest for small decode steps on a CPU
        loaded = load_preset_model(preset, device or "auto")
        result = run_bench(
            loaded.model,
            preset=preset.name,
            device_label=loaded.describe(),
            tokens=BENCH_TOKENS,
            recompute_tokens=1,
            params=SamplingParams.from_defaults(preset.sampling),
            cuda_graph=loaded.device.type == "cuda",
        )
    except LivegenError as error:
        return f"cannot bench: {error}"
    return result.verdict()
