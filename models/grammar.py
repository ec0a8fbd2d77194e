"""What the token stream means right now: time, open notes and who owns them.

The live jam interleaves two authors in one token stream: the player (their notes arrive
through the live encoder) and the model (what it samples). GrammarState follows that stream
token by token and answers the questions the sampler's masks need:

- which pitches are sounding, and whose they are (ownership: the model may only end notes it
  started and may not start a pitch the player holds);
- how long each model note has been open (the grammar guard: no model note outlives
  `max_note_steps`, so there are no stuck notes, ever);
- how many model notes sound at once (max polyphony) and the current velocity bin.

It is a small, copyable value: the engine snapshots it where it may roll back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from livegen.kernels.vocab import (
    NOTE_OFF,
    NOTE_ON,
    NUM_EVENTS,
    TIME_SHIFT,
    VELOCITY,
)

PLAYER = 0
MODEL = 1


@dataclass
class GrammarState:
    step: int = 0  # time so far, in 10 ms steps (sum of TIME_SHIFTs)
    velocity_bin: int = 0  # 0 until a VELOCITY token was seen
    # pitch -> (owner, onset step) of the OLDEST open note of that pitch, as decode_tokens
    # closes the oldest first; `depth` counts the open notes per pitch.
    open_notes: dict[int, tuple[int, int]] = field(default_factory=dict)
    depth: dict[int, int] = field(default_factory=dict)
    model_onsets: list[int] = field(default_factory=list)  # steps of recent model onsets

    def update(self, token: int, owner: int) -> None:
        """Advance with one token written by `owner` (PLAYER or MODEL)."""
        if NOTE_ON <= token < NOTE_OFF:
            pitch = token - NOTE_ON
            if pitch not in self.open_notes:
                self.open_notes[pitch] = (owner, self.step)
            self.depth[pitch] = self.depth.get(pitch, 0) + 1
            if owner == MODEL:
                self.model_onsets.append(self.step)
                if len(self.model_onsets) > 256:
                    del self.model_onsets[:128]
        elif NOTE_OFF <= token < TIME_SHIFT:
            pitch = token - NOTE_OFF
            left = self.depth.get(pitch, 0) - 1
            if left <= 0:
                self.open_notes.pop(pitch, None)
                self.depth.pop(pitch, None)
            else:
                # The next open note of this pitch keeps the same owner (re-strikes are
                # one author's) and, conservatively, the current step as its onset.
                owner_, _ = self.open_notes[pitch]
                self.open_notes[pitch] = (owner_, self.step)
                self.depth[pitch] = left
        elif TIME_SHIFT <= token < VELOCITY:
            self.step += token - TIME_SHIFT + 1
        elif VELOCITY <= token < NUM_EVENTS:
            self.velocity_bin = token - VELOCITY + 1

    def extend(self, tokens: list[int], owner: int) -> None:
        for token in tokens:
            self.update(token, owner)

    def owned(self, owner: int) -> list[int]:
        """Pitches whose oldest open note belongs to owner."""
        return [p for p, (o, _) in self.open_notes.items() if o == owner]

    def model_polyphony(self) -> int:
        return sum(self.depth[p] for p in self.owned(MODEL))

    def overdue(self, max_note_steps: int) -> int | None:
        """A model pitch open for max_note_steps or longer (the oldest such), else None."""
        worst, worst_age = None, -1
        for pitch, (owner, onset) in self.open_notes.items():
            age = self.step - onset
            if owner == MODEL and age >= max_note_steps and age > worst_age:
                worst, worst_age = pitch, age
        return worst

    def steps_left(self, max_note_steps: int) -> int:
        """How far time may advance before some model note reaches its maximum length."""
        ages = [self.step - onset for o, onset in self.open_notes.values() if o == MODEL]
        return max_note_steps - max(ages) if ages else max_note_steps

    def closing_tokens(self, owner: int) -> list[int]:
        """NOTE_OFFs that end every open note of owner (panic, end of a turn)."""
        return [NOTE_OFF + p for p in sorted(self.owned(owner)) for _ in range(self.depth[p])]

    def snapshot(self) -> GrammarState:
        return copy.deepcopy(self)
