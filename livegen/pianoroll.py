"""A piano-roll picture of a performance: one colour per part (prompt, continuation, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class RollPart:
    label: str
    start: np.ndarray  # seconds
    end: np.ndarray
    pitch: np.ndarray
    colour: str


def draw_piano_roll(parts: Sequence[RollPart], path: str | Path, title: str = "") -> None:
    """Write a PNG. Matplotlib's Agg backend: no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(12, 5), dpi=100)
    low, high = 127, 0
    for part in parts:
        if len(part.pitch) == 0:
            continue
        bars = [(s, max(e - s, 0.01)) for s, e in zip(part.start, part.end)]
        for (s, width), p in zip(bars, part.pitch):
            axes.broken_barh([(s, width)], (p - 0.4, 0.8), facecolors=part.colour)
        axes.plot([], [], color=part.colour, linewidth=6, label=part.label)
        low, high = min(low, int(part.pitch.min())), max(high, int(part.pitch.max()))
    if low > high:
        low, high = 48, 72
    axes.set_ylim(low - 2, high + 2)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("MIDI pitch")
    axes.set_title(title)
    axes.legend(loc="upper right")
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
