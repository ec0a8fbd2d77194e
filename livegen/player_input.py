"""The player's MIDI at the door: what of it the conductor must see.

A flood (tens of thousands of messages a second) must not reach the conductor message by
message: its queue and the GIL time it costs would let rtmidi's own input queue overflow, and
that queue drops note-offs without a word. So the input thread itself checks every message's
bytes and applies the rate limits, and only what matters goes on:

- junk (truncated, undefined, out-of-range bytes, sysex) is dropped here;
- note-ons past NOTE_RATE, and controllers, bends and aftertouch past OTHER_RATE, are dropped;
- a note-off goes on only for a key whose note-on went on (the others end nothing);
- what ends notes is never rate-limited: note-offs, the sustain pedal, all-notes-off,
  all-sound-off and reset-all-controllers.

Every drop is counted. The gate is used by the MIDI input thread and by the computer
keyboard's thread; the GIL makes its set and counter updates safe, and a race on the rate
limiter's level costs at most one message's worth of budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from livegen.midi_ports import RateLimit

SUSTAIN, ALL_SOUND_OFF, RESET_CONTROLLERS, ALL_NOTES_OFF = 64, 120, 121, 123
ENDING_CONTROLS = (SUSTAIN, ALL_SOUND_OFF, RESET_CONTROLLERS, ALL_NOTES_OFF)
NOTE_OFF, NOTE_ON, CONTROL = 0x80, 0x90, 0xB0
_CHANNEL_LENGTH = {0x80: 3, 0x90: 3, 0xA0: 3, 0xB0: 3, 0xC0: 2, 0xD0: 2, 0xE0: 3}


@dataclass(frozen=True)
class InputLimits:
    note_rate: float = 300.0  # player note-ons a second the engine takes
    note_burst: float = 64.0
    other_rate: float = 500.0  # controllers, bends, aftertouch a second
    other_burst: float = 100.0


def check_message(data: list[int] | tuple[int, ...]) -> bool:
    """A complete, well-formed channel message (status byte, right length, 7-bit data)."""
    if not data or not 0x80 <= data[0] < 0xF0:
        return False
    if len(data) != _CHANNEL_LENGTH[data[0] & 0xF0]:
        return False
    return all(0 <= b < 0x80 for b in data[1:])


def is_note_off(data: list[int] | tuple[int, ...]) -> bool:
    kind = data[0] & 0xF0
    return kind == NOTE_OFF or (kind == NOTE_ON and data[2] == 0)


def ends_notes(data: list[int] | tuple[int, ...]) -> bool:
    """Input that ends notes: it must reach the conductor even when a flood fills its inbox,
    and no rate limit may drop it."""
    if is_note_off(data):
        return True
    return data[0] & 0xF0 == CONTROL and data[1] in ENDING_CONTROLS


class InputGate:
    """Decides, per channel message, whether the conductor sees it (see the module doc)."""

    def __init__(self, limits: InputLimits | None = None) -> None:
        limits = limits or InputLimits()
        self.notes = RateLimit(limits.note_rate, limits.note_burst)
        self.others = RateLimit(limits.other_rate, limits.other_burst)
        self.down: set[tuple[int, int]] = set()  # keys whose note-on went on, not yet ended
        self.dropped = 0

    def admit(self, data: list[int] | tuple[int, ...], arrival: float) -> bool:
        """True if the conductor must see this well-formed channel message."""
        kind, channel = data[0] & 0xF0, data[0] & 0x0F
        if kind == NOTE_ON and data[2] > 0:
            if self.notes.take(arrival):
                self.down.add((channel, data[1]))
                return True
        elif kind in (NOTE_ON, NOTE_OFF):
            key = (channel, data[1])
            if key in self.down:
                self.down.discard(key)
                return True
        elif kind == CONTROL and data[1] in ENDING_CONTROLS:
            if data[1] in (ALL_SOUND_OFF, ALL_NOTES_OFF):
                self.down = {key for key in self.down if key[0] != channel}
            return True
        elif self.others.take(arrival):
            return True
        self.dropped += 1
        return False

    def forget(self) -> None:
        """The conductor ended every key (the input vanished, a panic): none is down here."""
        self.down = set()
