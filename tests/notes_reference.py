"""A plain-Python port of Magenta note_seq's performance encoding: the tests' oracle.

Written from note_seq's algorithm (sequences_lib.apply_sustain_control_changes,
quantize_note_sequence_absolute, performance_lib.Performance) with Python objects and
Python sorts, deliberately unlike the numba kernels it checks.

note_seq quantises float seconds (``note_seq_step``), which rounds some times that lie exactly
on a half step down (0.285 s is 28.499999... steps). livegen rounds every such tie up; the
oracle does too when given ``exact_step``, which reads a time as the exact value it stands for
(a Fraction, or the nearest fraction with a denominator up to 10^6 for a float).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from livegen.kernels.vocab import NOTE_OFF, NOTE_ON, TIME_SHIFT, VELOCITY, velocity_to_bin

_SUSTAIN_ON, _SUSTAIN_OFF, _NOTE_ON, _NOTE_OFF = 0, 1, 2, 3


@dataclass(eq=False)  # identity, not value, equality: each note is its own object
class RefNote:
    start: float
    end: float
    pitch: int
    velocity: int
    group: int


def apply_sustain(notes: list[RefNote], pedals: list[tuple[float, int, int]]) -> list[RefNote]:
    """note_seq's apply_sustain_control_changes on copies; pedals are (time, group, value)."""
    notes = [RefNote(n.start, n.end, n.pitch, n.velocity, n.group) for n in notes]
    events: list[tuple[float, int, object]] = []
    events += [(n.start, _NOTE_ON, n) for n in notes]
    events += [(n.end, _NOTE_OFF, n) for n in notes]
    for time, group, value in pedals:
        events.append((time, _SUSTAIN_ON if value >= 64 else _SUSTAIN_OFF, group))
    events.sort(key=lambda e: (e[0], e[1]))

    active: dict[int, list[RefNote]] = {}
    held: dict[int, bool] = {}
    deleted: list[RefNote] = []
    time = 0.0
    for time, kind, obj in events:
        if kind == _SUSTAIN_ON:
            held[obj] = True
        elif kind == _SUSTAIN_OFF:
            held[obj] = False
            still = []
            for note in active.get(obj, []):
                if note.end < time:
                    note.end = time
                else:
                    still.append(note)
            active[obj] = still
        elif kind == _NOTE_ON:
            group = obj.group
            if held.get(group, False):
                still = []
                for note in active.get(group, []):
                    if note.pitch == obj.pitch:
                        note.end = time
                        if note.start == note.end:
                            deleted.append(note)
                    else:
                        still.append(note)
                active[group] = still
            active.setdefault(group, []).append(obj)
        else:
            group = obj.group
            if not held.get(group, False) and any(n is obj for n in active.get(group, [])):
                active[group] = [n for n in active[group] if n is not obj]
    for group_notes in active.values():
        for note in group_notes:
            note.end = time
    return [n for n in notes if not any(n is d for d in deleted)]


def note_seq_step(seconds: float) -> int:
    """note_seq's quantize_to_step (cutoff 0.5) on float seconds."""
    return int(seconds * 100 + 0.5)


def exact_value(seconds: float | Fraction) -> Fraction:
    if isinstance(seconds, Fraction):
        return seconds
    return Fraction(seconds).limit_denominator(1_000_000)


def exact_step(seconds: float | Fraction) -> int:
    """The step of the exact time: nearest, a half step up."""
    return math.floor(exact_value(seconds) * 100 + Fraction(1, 2))


def is_tie(seconds: float | Fraction) -> bool:
    """Whether the exact time lies on a half step."""
    return (exact_value(seconds) * 100 - Fraction(1, 2)).denominator == 1


def encode(
    notes: list[RefNote],
    pedals: list[tuple[float, int, int]] = (),
    quantize: Callable[[float], int] = note_seq_step,
) -> list[int]:
    """Token ids of notes (in list order) and pedal events, as note_seq produces them (with
    another rounding of times to steps, if given)."""
    sustained = apply_sustain(notes, list(pedals))
    steps = []
    for note in sustained:
        start, end = quantize(note.start), quantize(note.end)
        if end == start:
            end += 1
        steps.append((start, end))
    order = sorted(range(len(sustained)), key=lambda i: (sustained[i].start, sustained[i].pitch))
    events = []
    for idx, i in enumerate(order):
        events.append((steps[i][0], idx, False, i))
        events.append((steps[i][1], idx, True, i))
    events.sort(key=lambda e: e[:3])
    tokens: list[int] = []
    current, current_bin = 0, 0
    for step, _, is_off, i in events:
        if step > current:
            while step > current + 100:
                tokens.append(TIME_SHIFT + 99)
                current += 100
            tokens.append(TIME_SHIFT + step - current - 1)
            current = step
        note = sustained[i]
        if is_off:
            tokens.append(NOTE_OFF + note.pitch)
        else:
            velocity_bin = velocity_to_bin(note.velocity)
            if velocity_bin != current_bin:
                current_bin = velocity_bin
                tokens.append(VELOCITY + velocity_bin - 1)
            tokens.append(NOTE_ON + note.pitch)
    return tokens
