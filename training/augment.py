"""Training-time augmentation of token windows: transpose, time stretch, timing and velocity
jitter.

The music21 corpus is deadpan (one velocity, score timing), so without this the model would
learn that music never varies in touch or time. Each window is decoded to notes, changed as
notes (where "out of range after transposing" and "keep the note at least one step long" are
easy to state), and re-encoded with the same kernel as the data, so the result is always a
sequence the tokenizer itself could have produced. That costs tens of microseconds a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livegen.kernels.vocab import NUM_EVENTS, NUM_PITCHES, PAD

MIN_NOTE_SECONDS = 0.01  # one step: the encoder's shortest note


@dataclass
class AugmentConfig:
    enabled: bool = True
    transpose: int = 3  # semitones, uniform in -transpose..transpose
    stretch: float = 0.05  # time factor, uniform in 1 +- stretch
    timing_jitter: float = 0.005  # seconds, std of the noise on each note's start and end
    velocity_offset: int = 12  # MIDI velocity, uniform per window in +- this
    velocity_jitter: float = 6.0  # MIDI velocity, std of the noise per note

    @property
    def growth(self) -> float:
        """Raw tokens a crop reads per token it needs: an augmented window can come out
        shorter (notes transposed away, time squeezed), and must still fill its length."""
        return 1.1 + self.stretch if self.enabled else 1.0


@dataclass
class WindowChange:
    """What one window gets as a whole: drawn once, applied to every piece in it."""

    transpose: int
    stretch: float
    velocity_offset: int

    @classmethod
    def draw(cls, rng: np.random.Generator, config: AugmentConfig) -> WindowChange:
        return cls(
            int(rng.integers(-config.transpose, config.transpose + 1)),
            float(rng.uniform(1.0 - config.stretch, 1.0 + config.stretch)),
            int(rng.integers(-config.velocity_offset, config.velocity_offset + 1)),
        )


def augment_notes(notes, change: WindowChange, rng: np.random.Generator, config: AugmentConfig):
    """A changed copy of a tokenizer Notes object; rng draws the per-note jitter."""
    from livegen.kernels.tokenizer import Notes

    count = len(notes)
    shift, factor, offset = change.transpose, change.stretch, change.velocity_offset
    pitch = notes.pitch + shift
    start = notes.start * factor + rng.normal(0.0, config.timing_jitter, count)
    end = notes.end * factor + rng.normal(0.0, config.timing_jitter, count)
    start = np.maximum(start, 0.0)
    end = np.maximum(end, start + MIN_NOTE_SECONDS)
    velocity = notes.velocity + offset + rng.normal(0.0, config.velocity_jitter, count)
    velocity = np.clip(np.rint(velocity), 1, 127).astype(np.int64)
    keep = (pitch >= 0) & (pitch < NUM_PITCHES)  # transposed off the keyboard: dropped
    changed = Notes(start[keep], end[keep], pitch[keep], velocity[keep], notes.channel[keep])
    return changed.sorted()


def augment_tokens(
    tokens: np.ndarray, rng: np.random.Generator, config: AugmentConfig
) -> np.ndarray:
    """Augment a window of ids; special ids (BEGIN/END/PAD) stay and split it into pieces.

    Every piece of the window gets the same transposition and stretch (drawn once), so a
    window that spans a piece boundary stays consistent.
    """
    if not config.enabled:
        return tokens
    from livegen.kernels.tokenizer import decode_tokens, encode_notes

    change = WindowChange.draw(rng, config)
    out: list[np.ndarray] = []
    special = np.flatnonzero(tokens >= NUM_EVENTS)
    bounds = [-1, *special.tolist(), len(tokens)]
    for left, right in zip(bounds[:-1], bounds[1:]):
        segment = tokens[left + 1 : right]
        if segment.size:
            notes = augment_notes(decode_tokens(segment), change, rng, config)
            out.append(encode_notes(notes).astype(np.int64))
        if right < len(tokens):
            out.append(tokens[right : right + 1].astype(np.int64))
    return np.concatenate(out) if out else tokens[:0].astype(np.int64)


def fit_length(tokens: np.ndarray, length: int, pad: int = PAD) -> np.ndarray:
    """The first `length` ids, padded with PAD (never a target) when there are fewer."""
    if tokens.shape[0] >= length:
        return tokens[:length]
    return np.concatenate((tokens, np.full(length - tokens.shape[0], pad, dtype=tokens.dtype)))
