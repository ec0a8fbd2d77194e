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

Past the gate, on the conductor thread, PlayerKeys keeps the keys that are down: re-strikes,
all-notes-off, the watchdog for a lost note-off, passthrough, and what the model hears.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from livegen.fanout import PLAYER, NoteFanout
from livegen.kernels.midi_codes import (
    ALL_NOTES_OFF,
    ALL_SOUND_OFF,
    CONTROL_CHANGE_STATUS,
    DRUM_CHANNEL,
    NOTE_OFF_STATUS,
    NOTE_ON_STATUS,
    RESET_ALL_CONTROLLERS,
    SUSTAIN_CC,
)
from livegen.midi_ports import RateLimit

ENDING_CONTROLS = (SUSTAIN_CC, ALL_SOUND_OFF, RESET_ALL_CONTROLLERS, ALL_NOTES_OFF)
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
    return kind == NOTE_OFF_STATUS or (kind == NOTE_ON_STATUS and data[2] == 0)


def ends_notes(data: list[int] | tuple[int, ...]) -> bool:
    """Input that ends notes: it must reach the conductor even when a flood fills its inbox,
    and no rate limit may drop it."""
    if is_note_off(data):
        return True
    return data[0] & 0xF0 == CONTROL_CHANGE_STATUS and data[1] in ENDING_CONTROLS


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
        if kind == NOTE_ON_STATUS and data[2] > 0:
            if self.notes.take(arrival):
                self.down.add((channel, data[1]))
                return True
        elif kind in (NOTE_ON_STATUS, NOTE_OFF_STATUS):
            key = (channel, data[1])
            if key in self.down:
                self.down.discard(key)
                return True
        elif kind == CONTROL_CHANGE_STATUS and data[1] in ENDING_CONTROLS:
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


# ---- the conductor's side: the keys that are down ------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyDown:
    """A key the model hears went down; `held` keys (drums left out) are down now."""

    channel: int
    pitch: int
    velocity: int
    t: float
    held: int


@dataclass(frozen=True, slots=True)
class KeyUp:
    channel: int
    pitch: int
    t: float
    held: int


@dataclass(frozen=True, slots=True)
class PedalMoved:
    """The sustain pedal (or a reset that lifts it) on a channel the model hears."""

    channel: int
    value: int
    t: float


@dataclass(frozen=True, slots=True)
class ControllerMoved:
    channel: int
    number: int
    value: int
    t: float


KeyChange = KeyDown | KeyUp | PedalMoved | ControllerMoved


class PlayerKeys:
    """The player's keys that are down, run on the conductor thread: every message passes on
    (NoteFanout, when `passthrough`), and what the model must hear goes to `hear`.

    One entry per key, not a count: a key struck again while down is re-struck (its sound
    ended first), so one note-off always ends it, however many note-ons a flood sent."""

    def __init__(
        self,
        fanout: NoteFanout,
        passthrough: Callable[[], bool],
        hear: Callable[[KeyChange], None],
    ) -> None:
        self.fanout = fanout
        self._passthrough = passthrough
        self._hear = hear
        self.accepted: dict[tuple[int, int], float] = {}  # (channel, pitch) -> when struck
        self.passed: set[tuple[int, int]] = set()  # those sounding through livegen
        self.dropped = 0  # note-offs of keys whose note-on was never taken

    def message(self, data: tuple[int, ...], t: float) -> None:
        kind, channel = data[0] & 0xF0, data[0] & 0x0F
        if kind == NOTE_ON_STATUS and data[2] > 0:
            self.note_on(channel, data[1], data[2], t)
        elif kind in (NOTE_OFF_STATUS, NOTE_ON_STATUS):
            self.note_off(channel, data[1], t)
        elif kind == CONTROL_CHANGE_STATUS:
            self.control(channel, data[1], data[2], t)
        else:  # program change, pitch bend, aftertouch: passed on and recorded as they are
            self.fanout.other(PLAYER, data, t, out=self._passthrough())

    def note_on(self, channel: int, pitch: int, velocity: int, t: float) -> None:
        key = (channel, pitch)
        if key in self.accepted:
            self._end_sound(key, t)  # re-struck while down: one sounding note a key
        self.accepted[key] = t
        passing = self._passthrough()
        if passing:
            self.passed.add(key)
        self.fanout.note(PLAYER, channel, pitch, velocity, t, midi=passing, synth=passing)
        if channel != DRUM_CHANNEL:
            self._hear(KeyDown(channel, pitch, velocity, t, self.held()))

    def note_off(self, channel: int, pitch: int, t: float) -> None:
        key = (channel, pitch)
        if key not in self.accepted:
            self.dropped += 1  # its note-on was never taken (flood) or never came
            return
        del self.accepted[key]
        self._end_sound(key, t)
        if channel != DRUM_CHANNEL:
            self._hear(KeyUp(channel, pitch, t, self.held()))

    def _end_sound(self, key: tuple[int, int], t: float) -> None:
        """A player's note ends: its passthrough sound off, the take and the roll told."""
        sounding = key in self.passed
        self.passed.discard(key)
        self.fanout.note(PLAYER, key[0], key[1], 0, t, midi=sounding, synth=sounding)

    def held(self) -> int:
        """The player's keys down that the model hears (drums left out)."""
        return sum(1 for channel, _ in self.accepted if channel != DRUM_CHANNEL)

    def control(self, channel: int, number: int, value: int, t: float) -> None:
        if number in (ALL_SOUND_OFF, ALL_NOTES_OFF):
            # All keys up on this channel: each held key ends on its own (so every note-off
            # reaches the output, the take and the model), then the controller passes on.
            for key in [k for k in self.accepted if k[0] == channel]:
                self.note_off(channel, key[1], t)
        self.fanout.control(PLAYER, channel, number, value, t, out=self._passthrough())
        if number in (SUSTAIN_CC, RESET_ALL_CONTROLLERS) and channel != DRUM_CHANNEL:
            # Reset-all-controllers lifts the pedal too (MIDI 1.0), so the model hears it.
            self._hear(PedalMoved(channel, value if number == SUSTAIN_CC else 0, t))
        self._hear(ControllerMoved(channel, number, value, t))

    def release_all(self, t: float) -> None:
        """The input vanished: end every note the player was holding, everywhere."""
        for channel, pitch in list(self.accepted):
            self.note_off(channel, pitch, t)

    def overdue(self, now: float, limit: float) -> list[tuple[int, int]]:
        """Keys down longer than `limit` s (0: none ever are): they surely lost their
        note-off in the MIDI system, below livegen. The caller ends them (note_off) and says."""
        if not limit:
            return []
        return [key for key, struck in self.accepted.items() if now - struck > limit]
