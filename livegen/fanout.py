"""One note to every place it goes: MIDI out, the recording, the piano roll and the synth.

Both the player's notes and the model's take this one path, so a note that starts somewhere
ends in the same places. The parts are optional (no MIDI system, no sound card, no recording):
an absent one is skipped.
"""

from __future__ import annotations

from collections.abc import Callable

from livegen.kernels.midi_codes import CONTROL_CHANGE_STATUS, NOTE_OFF_STATUS, NOTE_ON_STATUS
from livegen.recorder import MODEL_TRACK, PLAYER_TRACK
from livegen.roll_log import RollLog

PLAYER, MODEL = "player", "model"
_TRACKS = {PLAYER: PLAYER_TRACK, MODEL: MODEL_TRACK}


class NoteFanout:
    def __init__(self, roll: RollLog, recording: Callable[[], bool]) -> None:
        """`recording()`: whether the take is recording now (a live control)."""
        self.roll = roll
        self._recording = recording
        self.midi_out = None  # livegen.midi_ports.MidiOutput
        self.audio = None  # livegen.audio_out.AudioOut
        self.recorder = None  # livegen.recorder.Recorder

    def note(
        self,
        owner: str,
        channel: int,
        pitch: int,
        velocity: int,
        t: float,
        *,
        midi: bool = True,
        synth: bool = True,
    ) -> None:
        """A note-on (velocity 0: its note-off) at session time t: out (unless midi=False),
        to the synth (unless synth=False: it had it ahead of time), recorded and rolled."""
        data = (
            [NOTE_ON_STATUS | channel, pitch, velocity]
            if velocity
            else [NOTE_OFF_STATUS | channel, pitch, 0]
        )
        if midi:
            self.send(data)
        if synth:
            self.synth_note(t, channel, pitch, velocity)
        self.record(owner, t, data)
        if velocity:
            self.roll.on(owner, channel, pitch, velocity, t)
        else:
            self.roll.off(owner, channel, pitch, t)

    def control(self, owner: str, channel: int, number: int, value: int, t: float, *, out: bool):
        """A controller: out and to the synth if `out`, recorded either way."""
        data = [CONTROL_CHANGE_STATUS | channel, number, value]
        if out:
            self.send(data)
            if self.audio is not None:
                self.audio.control(t, channel, number, value)
        self.record(owner, t, data)

    def other(self, owner: str, data: tuple[int, ...], t: float, *, out: bool) -> None:
        """Program change, pitch bend, aftertouch: passed on (if `out`) and recorded as is."""
        if out:
            self.send(list(data))
        self.record(owner, t, data)

    def synth_note(
        self, t: float, channel: int, pitch: int, velocity: int, *, cancellable: bool = False
    ) -> None:
        if self.audio is not None:
            self.audio.note(t, channel, pitch, velocity, cancellable=cancellable)

    def synth(self, message: object) -> None:
        """A message for the synth alone (livegen/messages.py: CancelAfter, Silence, ...)."""
        if self.audio is not None:
            self.audio.send(message)

    def send(self, data: list[int]) -> None:
        """MIDI out only (clock, panic's controllers)."""
        if self.midi_out is not None:
            self.midi_out.send(data)

    def record(self, owner: str, t: float, data: tuple | list) -> None:
        if self.recorder is not None and self._recording():
            self.recorder.add(_TRACKS[owner], t, data)
