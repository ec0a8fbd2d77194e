"""The engine's parts without ports: the decode worker's context (rollback, ownership, turns,
never writing into the past), the modes' turn planning, and the engine's contract (errors,
controls, non-blocking snapshots) with no MIDI or audio at all."""

from __future__ import annotations

import time
from pathlib import Path

import mido
import numpy as np
import pytest

from livegen.clock import InternalClock
from livegen.controls import Controls, JamSettings, Mode, PhraseEnd
from livegen.decode_worker import WorkerCore, WorkerSpec, merge_player_messages
from livegen.engine import JamEngine
from livegen.kernels.errors import LivegenError
from livegen.kernels.vocab import NOTE_OFF, NOTE_ON
from livegen.messages import Cut, ModelNote, NoPlan, Plan, TurnOver
from livegen.messages import PlayerEvent as E
from livegen.messages import PlayerEvents as P
from livegen.models.grammar import MODEL
from livegen.models.loading import load_preset_model
from livegen.models.preset import load_preset
from livegen.models.sampling import SamplingParams
from livegen.models.streaming import StreamingDecoder
from livegen.modes import TurnPlanner
from livegen.player_input import check_message
from tests.jam_peers import ManualClock, engine_preset, wait_until


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    preset = engine_preset(tmp_path_factory.mktemp("preset"))
    return load_preset_model(load_preset(preset), "cpu").model


def _core(model, clock: ManualClock, **sampling) -> tuple[WorkerCore, list]:  # noqa: ANN001
    out: list = []
    spec = WorkerSpec(preset="unused", t0=0.0, lookahead_steps=20, seed=3)
    core = WorkerCore(StreamingDecoder(model), SamplingParams(**sampling), spec, out.append, clock)
    return core, out


def _notes(out: list) -> list[ModelNote]:
    return [m for m in out if isinstance(m, ModelNote)]


def _run(core: WorkerCore, clock: ManualClock, until: float) -> None:
    while clock.t < until:
        while core.work():
            pass
        clock.t += 0.01


def test_worker_turn_opens_with_a_note_at_its_start_and_closes_every_note(model) -> None:  # noqa: ANN001
    clock = ManualClock()
    core, out = _core(model, clock, density=2.0)
    core.handle(P((E(50, True, 60, 20), E(80, False, 60)), 85))
    core.handle(Plan(150, 250, True))
    _run(core, clock, 3.0)
    events = _notes(out)
    assert events[0].step == 150 and events[0].on  # a note-on exactly at the turn's start
    assert all(150 <= e.step <= 250 for e in events)
    sounding: dict[int, int] = {}
    for e in events:
        sounding[e.pitch] = sounding.get(e.pitch, 0) + (1 if e.on else -1)
    assert not any(sounding.values())  # every model note ended by the turn's end
    assert isinstance(out[-1], TurnOver) or TurnOver(0, 250) in out


def test_worker_answer_keeps_to_its_note_budget_and_ends_early(model) -> None:  # noqa: ANN001
    clock = ManualClock()
    core, out = _core(model, clock, density=3.0)  # a busy model: it would play many notes
    core.handle(P((E(50, True, 60, 20), E(80, False, 60)), 85))
    core.handle(Plan(150, 750, True, 3))
    _run(core, clock, 8.0)
    events = _notes(out)
    assert sum(1 for e in events if e.on) == 3  # three notes, then no more
    over = [m for m in out if isinstance(m, TurnOver)]
    assert len(over) == 1 and over[0].step == max(e.step for e in events) < 750  # ended early
    assert not core.ledger.grammar.owned(MODEL)


def test_worker_follows_the_players_register_and_polyphony(model) -> None:  # noqa: ANN001
    from livegen.models.follow import FollowSettings

    clock = ManualClock()
    core, out = _core(model, clock, density=3.0)
    core.turns.follow = FollowSettings(polyphony=True, register_margin=1)
    played = [E(50, True, 60, 20), E(50, True, 64, 20)]
    played += [E(80, False, 60), E(80, False, 64)]
    core.handle(P(tuple(played), 85))
    core.handle(Plan(150, 550, True))
    _run(core, clock, 6.0)
    events = _notes(out)
    assert events and all(59 <= e.pitch <= 65 for e in events)  # the player's range +- 1
    sounding, most = set(), 0
    for e in events:
        (sounding.add if e.on else sounding.discard)(e.pitch)
        most = max(most, len(sounding))
    assert most <= 2  # the player played two notes at once


def test_worker_follows_the_players_pulse_and_key(model) -> None:  # noqa: ANN001
    """The player strikes C or G every 25 steps (a 250 ms pulse): with the rhythm follow every
    onset of the model's turn lands on that grid, and with the key steer it runs."""
    from livegen.models.follow import FollowSettings

    clock = ManualClock()
    core, out = _core(model, clock, density=3.0)
    core.turns.follow = FollowSettings(rhythm=1, key_bias=1.0)
    played = []
    for k in range(8):
        played += [
            E(50 + 25 * k, True, (60, 67)[k % 2], 20),
            E(60 + 25 * k, False, (60, 67)[k % 2]),
        ]
    core.handle(P(tuple(played), 240))
    core.handle(Plan(250, 650, True))
    _run(core, clock, 8.0)
    onsets = [e.step for e in _notes(out) if e.on]
    assert len(onsets) >= 3 and all(step % 25 == 0 for step in onsets), onsets


def test_worker_draws_its_rhythm_from_the_players(model) -> None:  # noqa: ANN001
    """The player plays single notes 20 and 30 steps apart, each 10 steps long: with the
    rhythm draw every interval between the model's onsets after its first is 20 or 30 steps,
    every onset one note, every note 10 steps long (the turn's end aside)."""
    from livegen.models.follow import FollowSettings

    clock = ManualClock()
    core, out = _core(model, clock, density=3.0, max_polyphony=16)
    core.turns.follow = FollowSettings(rhythm_draw=True)
    played, step = [], 50
    for k in range(10):
        played += [E(step, True, 60 + k % 5, 20), E(step + 10, False, 60 + k % 5)]
        step += (20, 30)[k % 2]
    core.handle(P(tuple(played), step))
    core.handle(Plan(step + 20, step + 420, True))
    _run(core, clock, 10.0)
    events = _notes(out)
    onsets = [e.step for e in events if e.on]
    assert len(onsets) >= 5, onsets
    assert set(np.diff(onsets).tolist()) <= {20, 30}, onsets
    starts: dict[int, int] = {}
    lengths = []
    for e in events:
        if e.on:
            starts[e.pitch] = e.step
        elif e.step < step + 420:
            lengths.append(e.step - starts.pop(e.pitch))
    assert lengths and set(lengths) == {10}, lengths


def test_worker_reports_its_token_rate_over_each_stats_interval(model) -> None:  # noqa: ANN001
    clock = ManualClock()
    core, _ = _core(model, clock, density=2.0)
    assert core.stats().tokens_per_s == 0.0  # nothing to measure from yet
    core.handle(Plan(10, 2000, False))
    _run(core, clock, 1.0)
    made = core.turns.tokens_made
    stats = core.stats()
    assert made > 0 and stats.tokens == made
    assert stats.tokens_per_s == pytest.approx(made / clock.t)
    clock.t += 2.0  # two idle seconds (no work done): the next rate is 0
    assert core.stats().tokens_per_s == 0.0


def test_worker_never_writes_into_the_past(model) -> None:  # noqa: ANN001
    clock = ManualClock()
    core, out = _core(model, clock, density=2.0)
    clock.t = 5.0  # the plan says 1 s, but it is 5 s already (the worker was late)
    core.handle(Plan(100, 700, True))
    _run(core, clock, 5.5)
    events = _notes(out)
    assert events and min(e.step for e in events) >= 500


def test_cut_rolls_back_to_what_sounded_and_the_player_is_heard(model) -> None:  # noqa: ANN001
    clock = ManualClock()
    core, out = _core(model, clock, density=3.0)
    core.handle(Plan(10, 2000, False))
    _run(core, clock, 0.9)  # it writes 200 ms ahead: up to step 110
    events = _notes(out)
    sent = [e for e in events if e.step <= 90]  # what the engine had sent by 0.9 s
    last_sent = sent[-1].number if sent else 0
    ledger = core.ledger
    keep = ledger.note_positions[last_sent] if sent else 0  # that note's token
    assert ledger.session_step() > 90 and ledger.position > keep + 1  # written ahead
    core.handle(Cut(1, last_sent, 90, 90))  # the player struck at step 90: the model yields
    assert core.turns.plan is None
    assert not ledger.grammar.owned(MODEL)  # the model's sounding notes were closed
    core.handle(P((E(90, True, 64, 20),), 90))
    assert ledger.grammar.open_notes[64][0] == 0  # the player's note, in the context
    # After the kept position: closing NOTE_OFFs, a TIME_SHIFT, the player's velocity and note.
    tail = [int(ledger.decoder.tokens[p]) for p in range(keep + 1, ledger.position)]
    assert tail[-1] == NOTE_ON + 64
    assert all(t >= NOTE_OFF for t in tail[:-1]), tail
    assert ledger.session_step() == 90


def test_a_cut_that_cannot_go_back_far_enough_sends_the_kept_notes_again(model) -> None:  # noqa: ANN001
    """The turn ended at step 60, its closing note-offs written (and announced) ahead of
    time; the engine had sent the notes due by step 45 when the player struck at 50, which
    the worker appends after those note-offs. The engine's cut drops the note-offs it had not
    sent, yet the worker cannot roll back past the player's note: they stay in its context.
    It announces them again under the cut's epoch, or the notes they end sound on (found in
    accompany mode, where every key cuts: notes left on until the engine's guard)."""
    clock = ManualClock()
    core, out = _core(model, clock, density=3.0)
    core.handle(Plan(10, 60, False))
    _run(core, clock, 0.5)
    assert isinstance(out[-1], TurnOver)
    sent = [e for e in _notes(out) if e.step <= 45]  # what the engine had sent
    ringing = _sounding(sent)
    assert ringing, "no model note sounding at the cut: nothing to test"
    core.handle(P((E(50, True, 72, 20),), 50))
    core.handle(Cut(1, sent[-1].number))
    again = [e for e in _notes(out) if e.epoch == 1]
    assert not _sounding(sent + again)  # every note the engine sounded has its end again
    assert not core.ledger.grammar.owned(MODEL)


def test_a_turn_taken_back_ends_the_notes_a_cut_left_sounding(model) -> None:  # noqa: ANN001
    """A cut that lets the model's notes sound on (accompany mode) leaves their ends to the
    rest of the turn. If the engine then takes the turn back (NoPlan: the turn's time ran out
    before a busy worker wrote that far), the worker ends them at once, as the turn's end
    would have: with no turn left, nothing else would."""
    clock = ManualClock()
    core, out = _core(model, clock, density=3.0)
    core.handle(Plan(10, 2000, False))
    _run(core, clock, 0.5)
    sent = [e for e in _notes(out) if e.step <= 45]
    core.handle(Cut(1, sent[-1].number))
    assert core.ledger.grammar.owned(MODEL), "no model note sounding: nothing to test"
    core.handle(NoPlan())
    again = [e for e in _notes(out) if e.epoch == 1]
    assert not _sounding(sent + again) and not core.ledger.grammar.owned(MODEL)
    assert all(e.step >= 50 for e in again)  # now (0.5 s) and later, never in the past


def _sounding(events: list[ModelNote]) -> dict[int, int]:
    """Pitch -> note-ons without their note-offs yet, over `events` in order."""
    count: dict[int, int] = {}
    for e in events:
        count[e.pitch] = count.get(e.pitch, 0) + (1 if e.on else -1)
    return {pitch: n for pitch, n in count.items() if n}


def test_a_preview_stands_while_only_the_clock_moves(model) -> None:  # noqa: ANN001
    """While the engine holds the model back it reports the clock to the worker with empty
    player messages; a preview whose step is not final yet must survive them (it used to be
    rolled back and prefilled again when the step came out as previewed)."""
    clock = ManualClock()
    core, _ = _core(model, clock)
    core.handle(P((E(50, True, 60, 20), E(80, False, 60)), 85))
    core.handle(P((), 99, (E(100, True, 64, 20),)))  # struck, step 100 not final
    ledger = core.ledger
    with_preview = ledger.position
    rollbacks: list[int] = []
    rollback = ledger.decoder.rollback
    ledger.decoder.rollback = lambda position: (rollbacks.append(position), rollback(position))
    for final in (99, 99, 99):
        core.handle(P((), final))
    assert ledger.position == with_preview and rollbacks == []
    core.handle(P((E(100, True, 64, 20),), 100))  # final, as previewed
    assert ledger.position == with_preview and rollbacks == []
    assert ledger.grammar.open_notes[64][0] == 0  # the player's note is in the context
    core.handle(P((), 101, (E(102, True, 67, 20),)))
    core.handle(P((E(102, True, 65, 20),), 102))  # came out otherwise
    assert rollbacks and 65 in ledger.grammar.open_notes and 67 not in ledger.grammar.open_notes


def test_player_messages_merge_in_order() -> None:
    messages = [
        P((E(1, True, 60, 20),), 1, (E(1, True, 61, 20),)),
        P((E(2, False, 60),), 2),
        Cut(1, 5),
        P((E(3, True, 62, 20),), 3),
    ]
    merged = merge_player_messages(messages)
    assert [type(m) for m in merged] == [P, Cut, P]
    assert merged[0].events == (E(1, True, 60, 20), E(2, False, 60))
    assert merged[0].final_step == 2 and merged[0].tentative == ()  # final events supersede
    # Only the clock moved (the engine's tick in the loop that took a note-on): the preview
    # of the note stands, or the worker would hear the note a whole step later.
    preview = (E(4, True, 64, 20, 1.0),)
    tick = merge_player_messages([P((), 3, preview), P((), 3)])
    assert tick == [P((), 3, preview)]
    newer = (E(4, True, 65, 20, 1.0),)
    assert merge_player_messages([P((), 3, preview), P((), 3, newer)])[0].tentative == newer


def test_planner_continue_call_accompany() -> None:
    clock = InternalClock(120.0)
    planner, c = TurnPlanner(), Controls(silence_seconds=0.5, response_seconds=3.0)
    assert planner.note_on(1.0, c, 1) is None
    assert planner.plan(1.1, c, clock) is None  # a key is held
    planner.note_off(1.4, c, 0)
    turn = planner.plan(1.5, c, clock)
    assert (turn.start, turn.end, turn.first_note) == (1.9, 4.9, True)
    assert planner.note_on(1.8, c, 1) == "yield" and planner.plan(1.8, c, clock) is None
    call = Controls(mode=Mode.CALL, silence_seconds=0.5, response_seconds=3.0)
    planner = TurnPlanner()
    planner.note_on(1.0, call, 1)
    planner.note_on(1.5, call, 2)
    planner.note_off(1.8, call, 1)
    planner.note_off(2.0, call, 0)
    turn = planner.plan(2.0, call, clock)
    assert turn.end == pytest.approx(2.5 + 1.0)  # as long as the call
    assert turn.max_notes == 2  # and no more notes than it had
    bars = Controls(mode=Mode.CALL, phrase_end=PhraseEnd.BAR, response_seconds=3.0)
    planner = TurnPlanner()
    planner.note_on(1.0, bars, 1)
    planner.note_off(2.3, bars, 0)
    turn = planner.plan(2.3, bars, clock)
    assert turn.start == 4.0 and turn.end == 6.0  # the next bar line; one bar (2 s at 120)
    cc = Controls(mode=Mode.CALL, phrase_end=PhraseEnd.CC, phrase_cc=67)
    planner = TurnPlanner()
    planner.note_on(1.0, cc, 1)
    planner.note_off(1.2, cc, 0)
    assert planner.plan(3.0, cc, clock) is None  # silence alone does not end it
    assert planner.controller(3.1, 67, 127, cc)
    assert planner.plan(3.1, cc, clock).start == 3.1
    along = Controls(mode=Mode.ACCOMPANY, response_seconds=2.0)
    planner = TurnPlanner()
    planner.note_on(1.0, along, 1)
    turn = planner.plan(1.0, along, clock)
    assert turn.start == 1.0 and not turn.first_note
    assert planner.note_on(1.5, along, 1) == "cut"  # rethink, do not stop
    assert planner.plan(1.5, along, clock).end == 3.5


def test_check_message_rejects_junk() -> None:
    assert check_message([0x90, 60, 100]) and check_message([0xC0, 5])
    for junk in ([0x12, 0x34], [0x90, 60], [0x90, 200, 1], [0xF0, 1, 0xF7], [0xC0, 5, 5], []):
        assert not check_message(junk), junk


def test_engine_errors_name_what_exists(tmp_path: Path) -> None:
    engine = JamEngine(JamSettings(preset="no-such-preset", input="none", output="none"))
    with pytest.raises(LivegenError, match="no preset named 'no-such-preset'"):
        engine.start()
    engine.stop()  # idempotent after a failed start
    with pytest.raises(ValueError, match="temperature"):
        JamEngine(JamSettings()).set_controls(temperature=99.0)
    with pytest.raises(ValueError, match="unknown controls"):
        JamEngine(JamSettings()).set_controls(loudness=3)


def test_engine_without_ports_or_sound_plays_from_the_computer_keyboard(tmp_path: Path) -> None:
    """No MIDI ports and an audio device that is not there (a problem, not an error): play()
    feeds the model, the roll, the log and the recording fill, snapshots come back at once,
    controls change live, and stop() ends every note."""
    settings = JamSettings(
        preset=str(engine_preset(tmp_path)),
        input="none",
        output="none",
        audio_device="no-such-device",
        record_dir=str(tmp_path / "takes"),
    )
    engine = JamEngine(settings, Controls(silence_seconds=0.2, response_seconds=0.6))
    engine.start()
    try:
        for pitch in (60, 64, 67):
            engine.play(mido.Message("note_on", note=pitch, velocity=90))
            assert wait_until(lambda p=pitch: any(n.pitch == p for n in engine.roll(0.0)))
            engine.play(mido.Message("note_off", note=pitch))
        # The model's turn after the silence: its first note.
        assert wait_until(lambda: any(n.owner == "model" for n in engine.roll(0.0)), 5.0)
        started = time.perf_counter()
        stats, roll, log = engine.stats(), engine.roll(0.0), engine.drain_log()
        assert time.perf_counter() - started < 0.005  # cheap enough for a 20 Hz UI
        assert [n.pitch for n in roll if n.owner == "player"] == [60, 64, 67]
        assert any(n.owner == "model" for n in roll), roll
        assert stats.running and stats.recording_path
        assert len(stats.problems) == 1 and "no sound" in stats.problems[0], stats.problems
        assert "no-such-device" in stats.problems[0]
        assert any("model's turn" in line for line in log), log
        engine.set_controls(mode=Mode.ACCOMPANY, temperature=0.8)
        assert engine.controls.mode == Mode.ACCOMPANY
        engine.set_controls(recording=False)
        assert wait_until(lambda: engine.stats().recording_path is None)
        # Paused, a note is heard but not recorded (the take below holds only the three).
        engine.play(mido.Message("note_on", note=72, velocity=90))
        assert wait_until(lambda: any(n.pitch == 72 for n in engine.roll(0.0)), timeout=2)
        engine.play(mido.Message("note_off", note=72))
        assert wait_until(
            lambda: any(n.pitch == 72 and n.end is not None for n in engine.roll(0.0)), 2.0
        )
    finally:
        engine.stop()
        engine.stop()
    assert all(n.end is not None for n in engine.roll(0.0))  # nothing left sounding
    assert not engine.stats().running
    take = mido.MidiFile(next((tmp_path / "takes").glob("*.mid")))
    played = [m.note for m in take.tracks[0] if m.type == "note_on" and m.velocity > 0]
    assert played == [60, 64, 67]
    assert any(m.type == "note_on" for m in take.tracks[1])  # the model's track


def test_only_note_endings_wait_for_room_in_a_full_inbox():
    from livegen.player_input import ends_notes

    assert ends_notes([0x80, 60, 0]) and ends_notes([0x93, 60, 0])  # note-off, on with vel 0
    assert ends_notes([0xB0, 64, 0]) and ends_notes([0xB1, 64, 127])  # the sustain pedal
    assert not ends_notes([0x90, 60, 100]) and not ends_notes([0xB0, 1, 0])
    assert not ends_notes([0xE0, 0, 64])
