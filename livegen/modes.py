"""When the model plays: the three modes as a small state machine over the player's notes.

The planner hears the player's note-ons and -offs (and call mode's phrase controller) and
says two things: whether the model must get out of the way now (`yield`: stop its notes,
forget its planned future; `cut`: forget the future but keep what sounds), and the model's
next turn (start, end, in session seconds). A turn that starts in the future (a predicted
phrase end: silence, a bar line) is generated ahead; if the player plays first, it is dropped.

- continue: when the player has released every key and stays silent for silence_seconds, the
  model plays for response_seconds; a note from the player ends its turn at once.
- call: answers each phrase, as long as the phrase was (at most response_seconds) and with
  no more notes than it had (models/turns.py: the rules `livegen-train eval-continuations
  --call` measures). A phrase ends after silence, at the phrase controller (a pedal), or at
  the first bar line after the player stops. The player interrupts an answer as in continue
  mode.
- accompany: plays along from the player's first note until response_seconds after their last
  one; the player's notes never silence it, they only make it rethink its future.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from livegen.clock import BeatClock
from livegen.controls import Controls, Mode, PhraseEnd
from livegen.kernels.midi_codes import pedal_down
from livegen.models.turns import answer_notes, answer_seconds


@dataclass(frozen=True)
class Turn:
    start: float  # session seconds
    end: float
    first_note: bool  # open the turn with a note, not a rest
    decided: float  # when the phrase end is decided (reaction is measured from here)
    max_notes: int | None = None  # call mode: the answer's note budget


class TurnPlanner:
    def __init__(self) -> None:
        self.held = 0  # keys the player holds
        self.phrase_start: float | None = None
        self.phrase_notes = 0  # note-ons in the current phrase
        self.last_activity: float | None = None
        self.last_release: float | None = None
        self.turn: Turn | None = None
        self.cc_end: float | None = None  # call mode: the phrase controller was pressed here

    def reset(self) -> None:
        self.__init__()

    # ---- what the player does -----------------------------------------------------------

    def note_on(self, t: float, controls: Controls, held: int) -> str | None:
        """The player struck a key at t; `held` keys are down now (the engine keeps the key
        table: one entry a key, so a re-strike does not count twice). Returns "yield", "cut"
        or None."""
        action = None
        if self.turn is not None:
            if controls.mode == Mode.ACCOMPANY:
                action = "cut"
            else:
                action = "yield"
                if t >= self.turn.start:
                    self.phrase_start = None  # the model had the floor: a new phrase begins
                self.turn = None
        self.held = held
        if self.phrase_start is None:
            self.phrase_start = t
            self.phrase_notes = 0
        self.phrase_notes += 1
        self.last_activity = t
        self.cc_end = None
        return action

    def note_off(self, t: float, controls: Controls, held: int) -> str | None:
        """A key was released at t; `held` keys are still down."""
        self.held = held
        self.last_activity = t
        if self.held == 0:
            self.last_release = t
        if self.turn is not None and controls.mode == Mode.ACCOMPANY:
            return "cut"
        return None

    def release_all(self, t: float) -> None:
        """The input went away: nothing is held any more."""
        if self.held:
            self.held = 0
            self.last_release = self.last_activity = t

    def controller(self, t: float, number: int, value: int, controls: Controls) -> bool:
        """A controller message; True if it ended a phrase (call mode, phrase_end "cc")."""
        if (
            controls.mode == Mode.CALL
            and controls.phrase_end == PhraseEnd.CC
            and number == controls.phrase_cc
            and pedal_down(value)
            and self.phrase_start is not None
            and self.turn is None
        ):
            self.cc_end = t
            return True
        return False

    def turn_over(self) -> None:
        self.turn = None
        self.phrase_start = None

    # ---- the model's turn -------------------------------------------------------------------

    def plan(self, now: float, controls: Controls, clock: BeatClock) -> Turn | None:
        """The turn the model should have now (None: none). Idempotent: call after each event."""
        if self.turn is not None and self.turn.end <= now:
            self.turn_over()
        if controls.mode == Mode.ACCOMPANY:
            return self._accompany(controls)
        if self.turn is not None or self.phrase_start is None:
            return self.turn
        if controls.mode == Mode.CALL and controls.phrase_end == PhraseEnd.CC:
            if self.cc_end is None:
                return None
            start = decided = self.cc_end
        else:
            if self.held or self.last_release is None:
                return None
            decided = start = self.last_release + controls.silence_seconds
            if controls.mode == Mode.CALL and controls.phrase_end == PhraseEnd.BAR:
                start = decided = clock.next_bar(self.last_release + 0.05)
        length, budget = controls.response_seconds, None
        if controls.mode == Mode.CALL:
            phrase = (self.last_release or start) - self.phrase_start
            length = answer_seconds(phrase, controls.response_seconds)
            budget = answer_notes(self.phrase_notes)
            if controls.phrase_end == PhraseEnd.BAR and clock.valid:
                bar = clock.seconds_per_beat * clock.beats_per_bar
                length = max(1, math.ceil(length / bar - 1e-6)) * bar
        self.turn = Turn(start, start + length, True, decided, budget)
        return self.turn

    def _accompany(self, controls: Controls) -> Turn | None:
        if self.phrase_start is None or self.last_activity is None:
            self.turn = None
            return None
        start = self.turn.start if self.turn is not None else self.phrase_start
        end = self.last_activity + controls.response_seconds
        self.turn = Turn(start, end, False, start)
        return self.turn
