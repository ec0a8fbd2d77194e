"""The piano roll's note log: strikes pair up oldest first; a window keeps what overlaps it."""

from __future__ import annotations

from livegen.roll_log import RollLog


def test_a_restruck_key_ends_its_oldest_strike_first_and_open_notes_have_no_end() -> None:
    log = RollLog()
    log.on("player", 0, 60, 90, 1.0)
    log.on("player", 0, 60, 70, 1.5)  # the same key again (the pedal holds the first)
    log.on("model", 1, 60, 50, 1.2)  # the same pitch, the model's: a note of its own
    log.off("player", 0, 60, 2.0)
    log.off("player", 0, 61, 2.0)  # never struck: nothing to end
    notes = log.since(0.0)
    assert [(n.owner, n.velocity, n.start, n.end) for n in notes] == [
        ("player", 90, 1.0, 2.0),
        ("model", 50, 1.2, None),
        ("player", 70, 1.5, None),
    ]


def test_the_window_keeps_notes_that_end_inside_it_or_still_sound() -> None:
    log = RollLog()
    for k in range(5):
        log.on("model", 1, 60 + k, 80, float(k))
        log.off("model", 1, 60 + k, k + 0.5)
    log.on("player", 0, 40, 80, 0.0)  # held since the start
    log.off("model", 1, 99, 0.1)
    assert [n.pitch for n in log.since(2.6)] == [40, 63, 64]
