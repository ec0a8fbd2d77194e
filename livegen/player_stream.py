"""The player's side of the context: key changes in, timed note events out.

LiveEncoder turns the player's key changes (note-on, note-off, pedal: no mido message on the
way) into the offline encoder's tokens one 10 ms step behind (sustain pedal rules included).
The decode worker needs them as events with absolute times, because it interleaves them with
the model's own tokens and writes its own TIME_SHIFTs, so this wrapper walks the encoder's
tokens and yields PlayerEvents (livegen/messages.py) with their steps.

`preview(now)` says what the current, not yet final step will hold if nothing else arrives in
it (the encoder copied and advanced to the step's end): the worker writes a struck note into
the context at once, and replaces it when the step is final.
"""

from __future__ import annotations

import copy

from livegen.kernels.live_encoder import LiveEncoder
from livegen.kernels.time_steps import seconds_to_step, shift_steps, step_to_seconds
from livegen.kernels.vocab import NOTE_OFF, NOTE_ON, TIME_SHIFT, VELOCITY
from livegen.messages import PlayerEvent


class PlayerStream:
    def __init__(self) -> None:
        self.encoder = LiveEncoder()
        self.step = 0  # the encoder's step after its last token
        self.velocity_bin = 0
        self.arrivals: dict[int, float] = {}  # pitch -> arrival (perf_counter) of its last strike

    @property
    def final_step(self) -> int:
        return self.encoder.final_step

    @property
    def busy(self) -> bool:
        """Something is still waiting to become final (keep calling advance)."""
        return bool(self.encoder.pending or self.encoder.offsets_due)

    def note_on(
        self, channel: int, pitch: int, velocity: int, t: float, arrival: float = 0.0
    ) -> list[PlayerEvent]:
        if arrival:
            self.arrivals[pitch] = arrival
        return self._feed("on", channel, pitch, velocity, t)

    def note_off(self, channel: int, pitch: int, t: float) -> list[PlayerEvent]:
        return self._feed("off", channel, pitch, 0, t)

    def pedal(self, channel: int, value: int, t: float) -> list[PlayerEvent]:
        return self._feed("pedal", channel, 0, value, t)

    def _feed(
        self, kind: str, channel: int, number: int, value: int, t: float
    ) -> list[PlayerEvent]:
        return self._events(self.encoder.feed_event(kind, channel, number, value, t), commit=True)

    def advance(self, t: float) -> list[PlayerEvent]:
        return self._events(self.encoder.advance(t), commit=True)

    def preview(self, t: float) -> list[PlayerEvent]:
        """Events the current step (the one t falls in) will hold if nothing else comes."""
        ahead = copy.deepcopy(self.encoder)
        # Just past the middle of the step: everything of it is final, nothing of the next.
        return self._events(ahead.advance(step_to_seconds(seconds_to_step(t) + 0.6)), commit=False)

    def _events(self, tokens: list[int], commit: bool) -> list[PlayerEvent]:
        step, velocity_bin, events = self.step, self.velocity_bin, []
        for token in tokens:
            if token >= VELOCITY:
                velocity_bin = token - VELOCITY + 1
            elif token >= TIME_SHIFT:
                step += shift_steps(token)
            elif token >= NOTE_OFF:
                events.append(PlayerEvent(step, False, token - NOTE_OFF))
            else:
                pitch = token - NOTE_ON
                # A note's arrival goes out once (with its preview, else when final): the
                # worker times input -> context from it.
                arrival = self.arrivals.pop(pitch, 0.0)
                events.append(PlayerEvent(step, True, pitch, velocity_bin, arrival))
        if commit:
            self.step, self.velocity_bin = step, velocity_bin
        return events
