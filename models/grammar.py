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
    after_velocity: bool = False  # the latest token was a VELOCITY (a note-on is due)
    # pitch -> its open notes as (owner, onset step), oldest first: a NOTE_OFF closes the
    # OLDEST open note of its pitch, as decode_tokens (and note_seq) do, so each note keeps its
    # own owner and onset and the guard measures every note from its real start.
    notes: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def open_notes(self) -> dict[int, tuple[int, int]]:
        """pitch -> (owner, onset step) of the oldest open note of that pitch."""
        return {pitch: fifo[0] for pitch, fifo in self.notes.items()}

    def update(self, token: int, owner: int) -> None:
        """Advance with one token written by `owner` (PLAYER or MODEL)."""
        self.after_velocity = VELOCITY <= token < NUM_EVENTS
        if NOTE_ON <= token < NOTE_OFF:
            self.notes.setdefault(token - NOTE_ON, []).append((owner, self.step))
        elif NOTE_OFF <= token < TIME_SHIFT:
            fifo = self.notes.get(token - NOTE_OFF)
            if fifo:  # a NOTE_OFF with nothing open is ignored, as decode_tokens ignores it
                fifo.pop(0)
                if not fifo:
                    del self.notes[token - NOTE_OFF]
        elif TIME_SHIFT <= token < VELOCITY:
            self.step += token - TIME_SHIFT + 1
        elif VELOCITY <= token < NUM_EVENTS:
            self.velocity_bin = token - VELOCITY + 1

    def extend(self, tokens: list[int], owner: int) -> None:
        for token in tokens:
            self.update(token, owner)

    def owned(self, owner: int) -> list[int]:
        """Pitches whose oldest open note belongs to owner (the note a NOTE_OFF would end)."""
        return [p for p, fifo in self.notes.items() if fifo[0][0] == owner]

    def holding(self, owner: int) -> list[int]:
        """Pitches with any open note of owner. The model may not start one of the player's:
        its note would queue behind the player's, and only the player could end that."""
        return [p for p, fifo in self.notes.items() if any(o == owner for o, _ in fifo)]

    def model_polyphony(self) -> int:
        """Model notes sounding now."""
        return sum(o == MODEL for fifo in self.notes.values() for o, _ in fifo)

    def overdue(self, max_note_steps: int) -> int | None:
        """A pitch whose oldest open note is the model's and has been open for max_note_steps
        or longer (the oldest such), else None: its NOTE_OFF is due now."""
        worst, worst_age = None, -1
        for pitch, fifo in self.notes.items():
            owner, onset = fifo[0]
            age = self.step - onset
            if owner == MODEL and age >= max_note_steps and age > worst_age:
                worst, worst_age = pitch, age
        return worst

    def steps_left(self, max_note_steps: int) -> int:
        """How far time may advance before some model note reaches its maximum length."""
        ages = [
            self.step - onset for fifo in self.notes.values() for o, onset in fifo if o == MODEL
        ]
        return max_note_steps - max(ages) if ages else max_note_steps

    def closing_tokens(self, owner: int) -> list[int]:
        """NOTE_OFFs that end every open note of owner (panic, end of a turn). A pitch whose
        oldest note is someone else's is left alone: its NOTE_OFF would end their note."""
        return [NOTE_OFF + p for p in sorted(self.owned(owner)) for _ in self.notes[p]]

    def snapshot(self) -> GrammarState:
        return copy.deepcopy(self)
