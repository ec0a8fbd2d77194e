"""The jam engine end to end through a real JACK graph, in each mode.

A JACK MIDI client (python-rtmidi) plays phrases into "livegen in"; jack_midi_dump, a real
peer in its own process, records everything "livegen out" sends: the player's notes passed
through on channel 0 and the model's on channel 1. Times below are jack_midi_dump's.
"""

from __future__ import annotations

import time
from pathlib import Path

from livegen.controls import Controls, Mode
from livegen.engine import JamEngine
from tests.jack import JackServer
from tests.jam_peers import (
    LIVEGEN_OUT,
    Keyboard,
    MidiDump,
    answer_ends,
    jack_settings,
    stop_session,
    strictly_unmatched,
    wait_until,
)

MODEL_CHANNEL = 1
SLACK = 0.03  # JACK periods (2.7 ms), the input poll, the conductor's wake-up


def _session(jack: JackServer, tmp_path: Path, controls: Controls, play) -> list:  # noqa: ANN001
    """Start an engine, wire the peers, run `play(keyboard, engine)`, stop; the capture."""
    settings = jack_settings(tmp_path, record_dir=str(tmp_path / "rec"), seed=1)
    engine = JamEngine(settings, controls)
    dump = keyboard = None
    try:
        engine.start()
        dump = MidiDump(jack)
        dump.connect(LIVEGEN_OUT)
        keyboard = Keyboard(jack)
        keyboard.connect()
        # Not a condition to wait on: a new JACK connection carries events only from a later
        # graph cycle, and jack_midi_dump gives no sign when it does (without this pause its
        # capture missed a phrase's first notes under load).
        time.sleep(0.2)
        play(keyboard, engine)
    finally:
        stop_session(engine, keyboard)
    stats = engine.stats()
    assert stats.late_events == 0, stats
    assert not stats.problems, stats.problems
    return dump.stop()


def _model_playing(engine: JamEngine, since: float) -> bool:
    """Wait until a model note starts after `since` (the player's phrase)."""
    return wait_until(
        lambda: any(n.owner == "model" and n.start > since for n in engine.roll(since)), 5.0
    )


def _model_ons(events: list) -> list:
    return [e for e in events if e.channel == MODEL_CHANNEL and e.is_on]


def _player(events: list, on: bool) -> list:
    return [e for e in events if e.channel == 0 and (e.is_on if on else e.is_off)]


def test_continue_takes_over_after_silence_and_yields_at_once(
    jack_rt: JackServer, tmp_path: Path
) -> None:
    controls = Controls(mode=Mode.CONTINUE, silence_seconds=0.3, response_seconds=1.5)

    def play(keyboard: Keyboard, engine: JamEngine) -> None:
        keyboard.phrase([60, 62, 64, 65])
        since = engine.now()
        # After the silence the model plays, a while (half a second of its turn).
        assert wait_until(
            lambda: any(
                n.owner == "model" and n.start > since and engine.now() - n.start >= 0.5
                for n in engine.roll(since)
            ),
            5.0,
        )
        keyboard.phrase([67], length=0.2)  # the player comes back: the model stops at once
        assert _model_playing(engine, engine.now())  # and takes over again after the silence
        assert wait_until(lambda: engine.stats().model_speaking)  # the meters lag the roll

    events = _session(jack_rt, tmp_path, controls, play)
    offs, ons = _player(events, on=False), _player(events, on=True)
    assert len(ons) == 5 and len(offs) == 5, events
    first_release, comeback, second_release = offs[3].seconds, ons[4].seconds, offs[4].seconds
    model = _model_ons(events)
    first_turn = [e for e in model if e.seconds < comeback]
    second_turn = [e for e in model if e.seconds > comeback]
    assert first_turn and second_turn, model
    # The model waits for the silence, and opens its turn with a note right then.
    assert first_turn[0].seconds >= first_release + 0.3 - SLACK
    assert first_turn[0].seconds <= first_release + 0.3 + SLACK
    # It yields at once: whatever it was playing ends when the player strikes, and it starts
    # nothing new until the player has been silent again.
    upto = [e for e in events if e.seconds <= comeback + SLACK]
    assert not [k for k in strictly_unmatched(upto) if k[0] == MODEL_CHANNEL], upto
    assert not [e for e in model if comeback + SLACK < e.seconds < second_release + 0.3 - SLACK]
    assert second_turn[0].seconds >= second_release + 0.3 - SLACK
    # After stop every note-on has its own note-off, and all-notes-off went out on every
    # channel.
    assert strictly_unmatched(events) == {}, events
    assert {e.channel for e in events if e.kind == 0xB0 and e.data[1] == 123} == set(range(16))


def test_call_answers_each_phrase_as_long_as_it_was(jack_rt: JackServer, tmp_path: Path) -> None:
    controls = Controls(mode=Mode.CALL, silence_seconds=0.25, response_seconds=4.0)

    def play(keyboard: Keyboard, engine: JamEngine) -> None:
        keyboard.phrase([60, 64, 67], length=0.15, gap=0.05)  # a 0.6 s phrase
        assert _model_playing(engine, engine.now())
        assert answer_ends(engine)

    events = _session(jack_rt, tmp_path, controls, play)
    offs, ons = _player(events, on=False), _player(events, on=True)
    release = offs[-1].seconds
    phrase = release - ons[0].seconds
    model = [e for e in events if e.channel == MODEL_CHANNEL]
    assert _model_ons(events), events
    answer_start = _model_ons(events)[0].seconds
    assert abs(answer_start - (release + 0.25)) <= SLACK
    # The answer lasts as long as the phrase: every model note is over by then.
    last_model = max(e.seconds for e in model if e.is_off)
    assert last_model <= answer_start + phrase + SLACK, (answer_start, phrase, model)
    assert strictly_unmatched(events) == {}


def test_accompany_plays_along_in_its_register(jack_rt: JackServer, tmp_path: Path) -> None:
    controls = Controls(
        mode=Mode.ACCOMPANY, low_pitch=36, high_pitch=55, response_seconds=0.5, lookahead_ms=100
    )

    def play(keyboard: Keyboard, engine: JamEngine) -> None:
        keyboard.phrase([72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72], length=0.12, gap=0.08)
        assert wait_until(lambda: not engine.stats().model_speaking, 5.0)  # it stopped along

    events = _session(jack_rt, tmp_path, controls, play)
    ons, offs = _player(events, on=True), _player(events, on=False)
    model = _model_ons(events)
    during = [e for e in model if ons[0].seconds < e.seconds < offs[-1].seconds]
    assert during, "the model did not play along"
    assert all(36 <= e.data[1] <= 55 for e in model), model
    # It stops response_seconds after the player's last note.
    assert all(e.seconds <= offs[-1].seconds + 0.5 + SLACK for e in model)
    assert strictly_unmatched(events) == {}
