"""`livegen presets`: every shipped preset with its kind, size, training data and figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HELP = "list the shipped presets (MIDI models, codecs) with what they were trained on"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    parser.add_argument("--dir", type=Path, help="a presets folder (default: the shipped one)")


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def describe(path: Path) -> dict[str, Any]:
    """One preset file as a plain object (name, kind, size, training, figures)."""
    import tomllib

    from livegen.models.preset import preset_kind

    kind = preset_kind(path)
    entry: dict[str, Any] = {"name": path.stem, "kind": kind or "unreadable", "file": str(path)}
    if not kind:
        return entry
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    model_path = (data.get("model") or {}).get("path", "")
    training = data.get("training") or {}
    entry.update(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        size_bytes=_size(path.parent / model_path) if model_path else 0,
        trained_on=str(training.get("trained_on") or training.get("data") or ""),
        figures=data.get("figures") or _midi_figures(training),
    )
    return entry


def _midi_figures(training: dict[str, Any]) -> dict[str, Any]:
    """A MIDI preset keeps its figures in [training] (steps, validation NLL...)."""
    keys = ("steps", "tokens_seen", "val_nll", "test_nll")
    return {k: training[k] for k in keys if k in training}


def run(args: argparse.Namespace) -> int:
    from livegen.models.preset import SHIPPED_DIR

    folder = args.dir or SHIPPED_DIR
    entries = [describe(p) for p in sorted(folder.glob("*.toml"))]
    if args.json:
        print(json.dumps(entries))
        return 0
    for e in entries:
        size = f"{e.get('size_bytes', 0) / 1e6:.1f} MB"
        print(f"{e['name']}  [{e['kind']}]  {size}  {e.get('description', '')}")
        if e.get("trained_on"):
            print(f"    trained on: {e['trained_on'][:160]}")
        if e.get("figures"):
            print(f"    figures: {_figures_line(e['figures'])}")
    return 0


def _figures_line(figures: dict[str, Any]) -> str:
    parts = []
    for key, value in figures.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {v}" for k, v in value.items())
            parts.append(f"{key}: {inner}")
        elif not isinstance(value, list):
            parts.append(f"{key} {value}")
    return "; ".join(parts)
