"""The model's rhythm from the player's: when its notes start, how many at once, how long.

A model trained on scores keeps its own pace whatever it continues (BENCHMARKS.md, issue 18:
on the player's grid it still plays 80 ms apart where the player played 80, 160 and 240 ms
apart, and masking its onsets only makes it end its notes sooner). `RhythmPlan` draws the
rhythm from what the player just played instead, one onset at a time:

- after each model onset, the interval to the next is one of the player's inter-onset
  intervals, drawn at random: until then the model may not start a note (time stops there),
  and then it must (it may end notes first);
- the onset gets as many notes as one of the player's onsets had (a chord size drawn the same
  way): the model may not move on before, nor add more;
- they last as long as one of the player's notes (one length drawn per onset): a note's
  NOTE_OFF is written when its time comes, not before.

Which notes, and how loud, stays the model's choice. Drawn one at a time, the intervals come
back in new orders: the model's rhythm has the player's proportions (inter-onset histogram,
onset rate, chord sizes, so density and polyphony) without repeating their bars. On a pulse
(models/pulse.py) an interval that lies within the pulse's tolerance of a grid point lands
on it, so the model stays in phase with the player.
"""

from __future__ import annotations

import numpy as np
import torch

from livegen.kernels.vocab import NOTE_OFF, NOTE_ON, NUM_EVENTS, TIME_SHIFT, VELOCITY, VOCAB_SIZE
from livegen.models.pulse import Pulse, tolerance

MIN_INTERVALS = 4  # fewer intervals say too little about a rhythm


def has_rhythm(starts: np.ndarray) -> bool:
    """The player's onsets (10 ms steps) are enough to draw a rhythm from."""
    return len(np.unique(starts)) > MIN_INTERVALS


class RhythmPlan:
    """Where the model's next onset, chord and note ends come, for a prompt whose recent
    notes start at `starts` and last `lengths` (10 ms steps), and whose last onset is `last`."""

    def __init__(
        self,
        starts: np.ndarray,
        lengths: np.ndarray,
        last: int,
        pulse: Pulse | None,
        seed: int,
        variation: float = 0.0,
    ) -> None:
        steps, sizes = np.unique(np.asarray(starts, dtype=np.int64), return_counts=True)
        self.intervals = np.diff(steps)
        self.variation = variation
        self.chords = sizes  # notes per onset
        self.lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
        self.pulse = pulse
        self.rng = np.random.default_rng(seed)
        self.last = last  # the latest onset, the player's or the model's
        self.chord, self.started, self.length = 0, 0, 1  # the latest model onset's
        self.ends: dict[int, int] = {}  # pitch -> step its model note is to end
        self.due = self._draw_onset(last)

    def _draw_onset(self, after: int) -> int:
        """The instant of the next onset: an interval of the player's after `after`, moved
        to the pulse's nearest grid point when it lies within the pulse's tolerance of one
        (an interval the player played off the grid stays off it)."""
        due = after + self.draw_interval()
        if self.pulse is None:
            return due
        p = self.pulse
        point = int(np.floor(p.phase + np.round((due - p.phase) / p.period) * p.period + 0.5))
        return point if abs(point - due) <= tolerance(p.period) and point > after else due

    def draw_interval(self) -> int:
        """One of the player's intervals; with probability `variation` two of them joined
        (an onset left out, a third of the time) or one halved (an onset put in): twice as
        many halves as joins keep the mean interval, so the onset rate, the player's."""
        interval = int(self.rng.choice(self.intervals))
        roll = self.rng.random()
        if roll < self.variation / 3:
            return interval + int(self.rng.choice(self.intervals))
        if roll < self.variation and interval >= 2:
            return interval // 2
        return interval

    def mask(self, step: int) -> torch.Tensor:
        """Bool [V]: what the plan allows the token at context step `step` to be."""
        allowed = torch.ones(VOCAB_SIZE, dtype=torch.bool)
        for pitch, end in self.ends.items():
            allowed[NOTE_OFF + pitch] = end <= step  # no note ends before its time,
            allowed[NOTE_ON + pitch] = False  # nor by being struck again
        ending = [end for end in self.ends.values() if end <= step]
        chord_open = step == self.last and self.started < self.chord
        onset_due = step >= self.due and step != self.last
        if ending or chord_open or onset_due:  # this instant is not finished: time stays
            allowed[TIME_SHIFT:VELOCITY] = False
        if not (chord_open or onset_due):
            allowed[NOTE_ON:NOTE_OFF] = False
            allowed[VELOCITY:NUM_EVENTS] = False
        # Time may move on only as far as the next onset or note end.
        horizon = min([self.due, *self.ends.values()])
        allowed[TIME_SHIFT + max(horizon - step, 1) : VELOCITY] = False
        return allowed

    def observe(self, token: int, step: int) -> None:
        """The model wrote `token` at context step `step`."""
        if NOTE_ON <= token < NOTE_OFF:
            if step != self.last:
                self.last, self.started = step, 0
                self.chord = int(self.rng.choice(self.chords))
                self.length = int(self.rng.choice(self.lengths))
                self.due = self._draw_onset(step)
            self.started += 1
            self.ends[token - NOTE_ON] = step + self.length
        elif NOTE_OFF <= token < TIME_SHIFT:
            self.ends.pop(token - NOTE_OFF, None)
