"""Follow the player: sampling controls set from what was just played, not fixed per preset.

A model trained on deadpan scores plays at its own pace, thickness and register whatever it
continues. These controls take them from the prompt's last `window_seconds` (what the player
just played) instead, so a sparse phrase gets a sparse continuation:

- register: notes only within the prompt's pitch range, widened by `register_margin`;
- polyphony: at most the prompt's 90th-percentile count of sounding notes;
- note length: at most 1.5x the prompt's 90th-percentile note length;
- density: a NOTE_ON bias (the `density` control) steered every step so the model's onsets
  over the last few seconds track the prompt's rate: log2 of the shortfall times
  `density_gain` nats, within +-DENSITY_LIMIT;
- key: note-ons only in the pitch classes the prompt used (a scale lock), when it used at
  least MIN_KEY_CLASSES of them (fewer says too little about the key).

Used by the shared generation core (models/continuation.py), so `livegen continue`, the
call-mode answers and eval-continuations all follow the same way.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from livegen.kernels.time_steps import STEP_SECONDS, seconds_to_step, step_to_seconds
from livegen.kernels.tokenizer import Notes, decode_tokens
from livegen.kernels.vocab import NOTE_OFF, NOTE_ON, VOCAB_SIZE
from livegen.models.sampling import SamplingParams

DENSITY_LIMIT = 6.0  # nats either way
MIN_KEY_CLASSES = 5
RATE_WINDOW_STEPS = 300  # the model's recent rate: onsets over the last 3 s


@dataclass(frozen=True)
class FollowSettings:
    density_gain: float = 0.0  # nats per octave of rate shortfall; 0: off
    polyphony: bool = False
    note_length: bool = False
    register_margin: int = -1  # semitones around the prompt's range; < 0: off
    key: bool = False
    window_seconds: float = 8.0

    @classmethod
    def from_defaults(cls, defaults: object) -> FollowSettings:
        """From a preset's [sampling] table (its follow_* keys; absent ones: off)."""
        return cls(
            density_gain=float(getattr(defaults, "follow_density", 0.0)),
            polyphony=bool(getattr(defaults, "follow_polyphony", False)),
            note_length=bool(getattr(defaults, "follow_note_length", False)),
            register_margin=int(getattr(defaults, "follow_register", -1)),
            key=bool(getattr(defaults, "follow_key", False)),
        )

    @property
    def active(self) -> bool:
        return bool(
            self.density_gain
            or self.polyphony
            or self.note_length
            or self.register_margin >= 0
            or self.key
        )


def _sounding_counts(notes: Notes, start: float, stop: float) -> np.ndarray:
    """Sounding notes at each 10 ms step of [start, stop) where any sound."""
    steps = np.arange(seconds_to_step(start), seconds_to_step(stop))
    times = steps * STEP_SECONDS
    counts = ((notes.start[:, None] <= times) & (notes.end[:, None] > times)).sum(0)
    return counts[counts > 0]


class Follower:
    """Per-step sampling controls for a continuation of `prompt` (tokens, ending at
    `prompt_step`), starting from `base`."""

    def __init__(
        self, prompt: list[int], prompt_step: int, base: SamplingParams, settings: FollowSettings
    ) -> None:
        self.settings = settings
        self.start_step = prompt_step
        end = step_to_seconds(prompt_step)
        begin = max(0.0, end - settings.window_seconds)
        notes = decode_tokens(prompt)
        recent = notes.take(np.flatnonzero(notes.start >= begin))
        self.target_rate = len(recent) / max(end - begin, STEP_SECONDS)
        self.base = base.replace(**self._static(recent, notes, begin, end, base))
        self.onsets: deque[int] = deque()
        self.mask = self._key_mask(recent) if settings.key else None

    @staticmethod
    def _key_mask(recent: Notes) -> torch.Tensor | None:
        """Bool [V]: every token but the note-ons outside the prompt's pitch classes (None:
        too few pitch classes to tell a key)."""
        classes = np.unique(recent.pitch % 12)
        if classes.size < MIN_KEY_CLASSES:
            return None
        allowed = torch.ones(VOCAB_SIZE, dtype=torch.bool)
        outside = np.setdiff1d(np.arange(12), classes)
        pitches = np.arange(128)
        allowed[NOTE_ON + pitches[np.isin(pitches % 12, outside)]] = False
        return allowed

    def restrict(self, rules: torch.Tensor | None) -> torch.Tensor | None:
        """The caller's own rules (a turn's; None: none) with the key lock ANDed in."""
        if self.mask is None:
            return rules
        return self.mask if rules is None else rules & self.mask

    def _static(self, recent: Notes, notes: Notes, begin: float, end: float, base) -> dict:  # noqa: ANN001
        s, changes = self.settings, {}
        if not len(recent):
            return changes
        if s.register_margin >= 0:
            low = max(base.low_pitch, int(recent.pitch.min()) - s.register_margin)
            high = min(base.high_pitch, int(recent.pitch.max()) + s.register_margin)
            if low <= high:
                changes.update(low_pitch=low, high_pitch=high)
        if s.polyphony:
            counts = _sounding_counts(notes, begin, end)
            if counts.size:
                cap = math.ceil(np.percentile(counts, 90))
                changes["max_polyphony"] = max(1, min(base.max_polyphony, cap))
        if s.note_length:
            lengths = np.percentile(recent.end - recent.start, 90) * 1.5
            changes["max_note_seconds"] = float(np.clip(lengths, 0.1, base.max_note_seconds))
        return changes

    def observe(self, token: int, step: int) -> None:
        """The model wrote `token` at context step `step`."""
        if NOTE_ON <= token < NOTE_OFF:
            self.onsets.append(step)

    def params(self, step: int) -> SamplingParams:
        """The controls for the token written at context step `step`."""
        gain = self.settings.density_gain
        if not gain:
            return self.base
        while self.onsets and self.onsets[0] <= step - RATE_WINDOW_STEPS:
            self.onsets.popleft()
        span = min(max(step - self.start_step, 0), RATE_WINDOW_STEPS) + 50  # +0.5 s: no 0/0
        expected = self.target_rate * step_to_seconds(span)
        bias = gain * math.log2((expected + 1) / (len(self.onsets) + 1))
        bias = max(-DENSITY_LIMIT, min(DENSITY_LIMIT, self.base.density + bias))
        return self.base.replace(density=bias)
