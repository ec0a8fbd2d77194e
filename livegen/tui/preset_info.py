"""What the set-up screen says about a preset: what it is, how big, what it learnt from, and
whether this machine plays it in real time (a short `livegen bench` in a child process).

describe_preset imports torch and reads files, short_bench takes seconds: the UI calls them
from worker threads only.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from livegen.kernels.errors import LivegenError
from livegen.models.preset import SHIPPED_DIR, list_presets

BENCH_TOKENS = 128  # enough for a stable p99 on a small model, about a second on a CPU
BENCH_TIMEOUT = 300.0


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
    from livegen.audio_jam import is_audio_preset
    from livegen.models.audio_preset import load_audio_preset
    from livegen.models.checkpoint import load_config
    from livegen.models.preset import load_preset

    try:  # an audio preset (a model of codec tokens) jams too: docs/AUDIO_MODEL.md#live
        preset = load_audio_preset(name) if is_audio_preset(name) else load_preset(name)
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


def verdict_line(result: dict) -> str:
    """One line from `livegen bench --json`: does it keep up, and by how much."""
    needed = float(result.get("needed_tokens_per_s", 0.0))
    delivered = result.get("delivered_tokens_per_s", result.get("delivered_tokens_per_s_p99"))
    word = "yes" if result.get("realtime") else "NO"
    speed = f"delivers {float(delivered):.0f}" if delivered is not None else "speed unknown"
    where = f"{result.get('device', '?')}, {result.get('threads', '?')} thread(s)"
    return f"real time on this machine: {word} (needs ~{needed:.0f} tokens/s, {speed}; {where})"


def short_bench(name: str, device: str | None = None) -> str:
    """One line: does this machine keep up with the preset. Runs `livegen bench` in a child
    process at the lowest CPU priority, so a bench started mid-jam yields to the jam (and
    holds no lock the UI needs)."""
    command = [sys.executable, "-m", "livegen", "bench", "--preset", name, "--json"]
    command += ["--tokens", str(BENCH_TOKENS), "--recompute-tokens", "1"]
    if device:
        command += ["--device", device]
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    except OSError as error:
        return f"cannot bench: {error}"
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not on Windows
        os.setpriority(os.PRIO_PROCESS, process.pid, 19)
    try:
        out, err = process.communicate(timeout=BENCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return f"real time: unknown (the bench took over {BENCH_TIMEOUT:.0f} s)"
    if process.returncode != 0:
        lines = err.strip().splitlines() or [f"exit code {process.returncode}"]
        return "cannot bench: " + lines[-1].removeprefix("livegen bench: error: ")
    try:
        return verdict_line(json.loads(out.strip().splitlines()[-1]))
    except (ValueError, IndexError, TypeError):
        return "cannot bench: `livegen bench` printed no result"
