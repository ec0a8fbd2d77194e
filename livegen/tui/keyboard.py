"""The computer keyboard as a piano, for a machine with no MIDI keyboard.

Two rows, as in DAWs' "musical typing": the home row holds the white keys, the row above the
black ones, an octave and a half from C:

     w e   t y u   o p
    a s d f g h j k l ; '
    C D E F G A B C D E F

Terminals send key presses, never releases, so a note cannot end when the key comes up. The
rule: every press plays a note of a fixed length (`note_seconds`, changed with , and .).
Holding a key down makes the terminal repeat it; a repeat that comes sooner than REPEAT_GAP
after the last press of that key is taken as "still held" and lengthens the sounding note
instead of striking it again. A press after a longer gap strikes the note again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mido

from livegen.settings_file import KeyboardSettings

# key character -> semitones above the C the A key plays
KEY_OFFSETS: dict[str, int] = {
    "a": 0, "w": 1, "s": 2, "e": 3, "d": 4, "f": 5, "t": 6, "g": 7, "y": 8, "h": 9,
    "u": 10, "j": 11, "k": 12, "o": 13, "l": 14, "p": 15, ";": 16, "'": 17,
}  # fmt: skip

REPEAT_GAP = 0.12  # s: key repeats come every 30-50 ms; nobody re-strikes one key that fast
VELOCITY_STEP = 10
NOTE_LENGTHS = (0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    """MIDI pitch as a name with its octave, C4 = 60."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


@dataclass
class _Sounding:
    end: float  # when its note-off is due (session clock)
    last_press: float


@dataclass
class ComputerKeyboard:
    """Turns key presses into note-on / note-off messages on the player's channel (0)."""

    settings: KeyboardSettings = field(default_factory=KeyboardSettings)
    sounding: dict[int, _Sounding] = field(default_factory=dict)
    last_pitch: int | None = None

    def pitch_of(self, char: str) -> int | None:
        offset = KEY_OFFSETS.get(char)
        if offset is None:
            return None
        pitch = 12 * (self.settings.octave + 1) + offset
        return pitch if 0 <= pitch <= 127 else None

    def press(self, char: str, now: float) -> list[mido.Message]:
        """Messages to play for a press of `char` at `now` (empty if it is not a piano key)."""
        pitch = self.pitch_of(char)
        if pitch is None:
            return []
        held = self.sounding.get(pitch)
        length = self.settings.note_seconds
        if held is not None and now - held.last_press < REPEAT_GAP:
            held.last_press = now  # the terminal repeating a held key: keep it sounding
            held.end = max(held.end, now + length)
            return []
        messages = []
        if held is not None:  # struck again while sounding: end the old note first
            messages.append(mido.Message("note_off", note=pitch, velocity=0))
        messages.append(mido.Message("note_on", note=pitch, velocity=self.settings.velocity))
        self.sounding[pitch] = _Sounding(end=now + length, last_press=now)
        self.last_pitch = pitch
        return messages

    def due(self, now: float) -> list[mido.Message]:
        """Note-offs for the notes whose time is up."""
        ended = [p for p, s in self.sounding.items() if s.end <= now]
        for pitch in ended:
            del self.sounding[pitch]
        return [mido.Message("note_off", note=p, velocity=0) for p in ended]

    def next_due(self) -> float | None:
        return min((s.end for s in self.sounding.values()), default=None)

    def release_all(self) -> list[mido.Message]:
        messages = [mido.Message("note_off", note=p, velocity=0) for p in self.sounding]
        self.sounding.clear()
        return messages

    def shift_octave(self, step: int) -> None:
        self.settings.octave = min(8, max(0, self.settings.octave + step))

    def shift_velocity(self, step: int) -> None:
        velocity = self.settings.velocity + step * VELOCITY_STEP
        self.settings.velocity = min(127, max(1, velocity))

    def shift_length(self, step: int) -> None:
        lengths = NOTE_LENGTHS
        current = min(
            range(len(lengths)), key=lambda i: abs(lengths[i] - self.settings.note_seconds)
        )
        index = min(len(lengths) - 1, max(0, current + step))
        self.settings.note_seconds = lengths[index]

    def describe(self) -> str:
        low = 12 * (self.settings.octave + 1)
        return (
            f"A = {note_name(low)}  velocity {self.settings.velocity}"
            f"  note {self.settings.note_seconds:g} s"
        )
