"""Tiny real MIDI folders and models for the livegen-train tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from livegen.kernels.tokenizer import Notes, write_midi

TINY_CONFIG = """
[model]
context = 48
latents = 16
dim = 32
heads = 2
layers = 1

[train]
steps = {steps}
batch_size = 4
lr = 3e-3
warmup_steps = 2
eval_interval = 3
eval_windows = 4
checkpoint_interval = 3
log_interval = 1
prefix_keep = {prefix_keep}
seed = 0

[train.augment]
enabled = {augment}
"""


def melody(seed: int, count: int = 40) -> Notes:
    """A random little tune: steps of 0.1-0.3 s, some two-note chords, varied velocity."""
    rng = np.random.default_rng(seed)
    gaps = rng.choice([0.1, 0.2, 0.3], size=count)
    start = np.cumsum(gaps) - gaps[0]
    pitch = 60 + np.cumsum(rng.integers(-3, 4, size=count))
    pitch = np.clip(pitch, 40, 90)
    velocity = rng.integers(40, 110, size=count)
    end = start + gaps * 0.9
    chord = rng.random(count) < 0.2  # a third on top of some notes
    start = np.concatenate((start, start[chord]))
    end = np.concatenate((end, end[chord]))
    pitch = np.concatenate((pitch, pitch[chord] + 4))
    velocity = np.concatenate((velocity, velocity[chord]))
    notes = Notes(start, end, pitch, velocity, np.zeros(len(start), dtype=np.int64))
    return notes.sorted()


def midi_folder(root: Path, pieces: int = 8, bad: bool = True) -> Path:
    """pieces real MIDI files, plus (when bad) a corrupt one and an empty one."""
    folder = root / "midi"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(pieces):
        where = folder / "sub" if i % 3 == 0 else folder
        write_midi(where / f"piece{i}.mid", [("piano", melody(i))])
    if bad:
        (folder / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02")
        (folder / "empty.mid").write_bytes(b"")
    return folder


def tiny_config(
    path: Path, steps: int = 6, prefix_keep: float = 1.0, augment: bool = False
) -> Path:
    text = TINY_CONFIG.format(steps=steps, prefix_keep=prefix_keep, augment=str(augment).lower())
    path.write_text(text, encoding="utf-8")
    return path
