"""The input gate: what of a flood reaches the conductor, and that nothing ending a note is lost."""

from __future__ import annotations

import time

from livegen.player_input import InputGate, InputLimits


def test_a_flood_is_cut_to_the_rate_but_every_note_that_went_on_can_end() -> None:
    gate = InputGate(InputLimits(note_rate=100.0, note_burst=10.0))
    admitted_on, admitted_off = [], []
    t = time.perf_counter()  # the limiter's clock
    for i in range(10_000):  # 10,000 on/off pairs in one second: 20,000 messages/s
        t += 0.0001
        pitch = 21 + i % 88
        if gate.admit([0x90, pitch, 90], t):
            admitted_on.append(pitch)
        if gate.admit([0x80, pitch, 0], t):
            admitted_off.append(pitch)
    assert 10 <= len(admitted_on) <= 10 + 100 + 1  # the burst, then the rate for one second
    assert admitted_off == admitted_on  # each key that went on gets its note-off through
    assert gate.dropped == 20_000 - 2 * len(admitted_on)
    assert not gate.down


def test_what_ends_notes_is_never_limited_and_all_notes_off_clears_the_channel() -> None:
    gate = InputGate(InputLimits(note_rate=1.0, note_burst=3.0, other_rate=1.0, other_burst=1.0))
    t = time.perf_counter()
    assert gate.admit([0x90, 60, 90], t) and gate.admit([0x91, 62, 90], t)
    assert gate.admit([0x90, 64, 90], t)
    assert not gate.admit([0x90, 65, 90], t)  # past the burst
    assert gate.admit([0xB0, 7, 100], t) and not gate.admit([0xB0, 7, 90], t)  # volume: limited
    for _ in range(50):  # the pedal, all-sound-off, reset, all-notes-off: never limited
        for number in (64, 120, 121, 123):
            assert gate.admit([0xB0, number, 0], t)
    assert gate.down == {(1, 62)}  # channel 1's keys were ended by all-notes-off
    assert gate.admit([0x91, 62, 0], t)  # a note-on with velocity 0 is a note-off
    assert not gate.admit([0x80, 60, 0], t)  # already ended by all-notes-off
