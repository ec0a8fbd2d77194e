"""Musical time: following MIDI clock (tempo through jitter, start/stop/song position, the grid,
bar lines), and the engine following jack-midi-clock through JACK: the tempo it estimates,
model onsets on the grid, a call-mode answer that starts on a bar line."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import numpy as np

from livegen.clock import CLOCK, SONG_POSITION, START, STOP, InternalClock, MidiClockFollower
from livegen.controls import ClockSource, Controls, Mode, PhraseEnd
from livegen.engine import JamEngine
from livegen.midi_ports import forget_midi_clients
from tests.jack import JackServer
from tests.jam_peers import LIVEGEN_OUT, Keyboard, Listener, jack_settings


def _ticks(follower: MidiClockFollower, bpm: float, n: int, jitter: float, t0: float = 0.0):
    rng = random.Random(7)
    period = 60.0 / bpm / 24
    for k in range(n):
        follower.feed(CLOCK, (), t0 + k * period + rng.uniform(0, jitter))
    return t0 + (n - 1) * period


def test_follower_estimates_tempo_through_jitter() -> None:
    follower = MidiClockFollower()
    follower.feed(START, (), 0.0)
    last = _ticks(follower, 123.0, 96, jitter=0.004)  # up to 4 ms late, every tick
    assert follower.valid
    assert abs(follower.tempo_bpm - 123.0) < 0.5
    # Phase: beat 4 is 96 ticks after start; the estimate is within a millisecond.
    assert abs(follower.time_of_beat(4) - (last + 60 / 123 / 24)) < 0.001
    follower.touch(last + 1.0)
    assert not follower.valid and follower.tempo_bpm is None  # the clock stopped coming


def test_follower_start_stop_song_position_grid_and_bars() -> None:
    follower = MidiClockFollower()
    follower.feed(START, (), 10.0)
    _ticks(follower, 120.0, 48, jitter=0.0, t0=10.0)  # two beats at 120 bpm
    assert follower.running and follower.beat == 1
    follower.feed(STOP, (), 11.0)
    assert not follower.running
    follower.feed(SONG_POSITION, (SONG_POSITION, 16, 0), 11.1)  # bar 2 (16 sixteenths)
    assert follower.position == 96
    follower.feed(0xFB, (), 11.2)  # continue
    _ticks(follower, 120.0, 24, jitter=0.0, t0=12.0)
    assert follower.running and follower.beat == 4
    # Grid and bars follow the new phase: tick 96 was at 12.0 s.
    assert abs(follower.quantize(12.0 + 0.13, 4) - 12.125) < 1e-6
    assert abs(follower.next_bar(12.1) - 14.0) < 1e-6


def test_internal_clock_keeps_the_beat_through_a_tempo_change() -> None:
    clock = InternalClock(120.0)
    assert clock.next_bar(0.1) == 2.0
    clock.set_tempo(60.0, now=1.0)  # beat 2 at 1.0 s stays beat 2
    assert abs(clock.beat_at(1.0) - 2.0) < 1e-9
    assert abs(clock.time_of_beat(3) - 2.0) < 1e-9
    assert abs(clock.tick_time(24 * 3) - 2.0) < 1e-9


def test_engine_follows_jack_midi_clock(jack_rt: JackServer, tmp_path: Path) -> None:
    """jack_midi_clock at 200 bpm; a call-mode phrase; the answer starts on the next bar line
    and every model onset sits on the sixteenth grid of the incoming clock.

    A listener in this process hears both jack_midi_clock and livegen through JACK, stamped
    in wall-clock time: on a loaded machine the server's cycles run late, so JACK's frame
    clock falls behind the wall clock the engine lives in.

    JACK drops a cycle's MIDI for a client late for that cycle (measured on the test servers:
    tests/conftest.py `jack512`), and a lost tick shifts the count of whoever lost it by one
    from then on, livegen's follower and this listener alike (a follower counts ticks; none
    can know of one it never got). Two CI runs failed so, every onset one tick (10.7 and
    13.3 ms, whole JACK periods) from the listener's grid. The two counts, compared at the
    engine's last tick, say who lost how many, and the grid is counted as the engine's."""
    jack = jack_rt
    bpm = 200.0
    clock_tool = subprocess.Popen(
        ["jack_midi_clock", "-b", str(bpm)], env=jack.env, stdout=subprocess.DEVNULL
    )
    clock_port = jack.wait_for_port("jack_midi_clock:")
    settings = jack_settings(tmp_path, clock_in="jack_midi_clock", seed=2)
    controls = Controls(
        mode=Mode.CALL,
        clock=ClockSource.MIDI,
        phrase_end=PhraseEnd.BAR,
        quantize=True,
        quantize_division=4,
        response_seconds=1.2,
    )
    engine = JamEngine(settings, controls)
    keyboard = listener = None
    try:
        engine.start()
        listener = Listener(jack)
        listener.connect(LIVEGEN_OUT)
        listener.connect(clock_port)
        keyboard = Keyboard(jack)
        keyboard.connect()
        transport = jack.run_tool("bash", "-c", "echo play | jack_transport")
        assert transport.returncode == 0, transport.stderr
        time.sleep(0.3)
        # Eight notes: an answer gets no more notes than its phrase, and the grid check below
        # needs six onsets or more.
        keyboard.phrase([60, 62, 64, 65, 67, 69, 71, 72], length=0.1, gap=0.05)
        time.sleep(1.0)
        tempo, asked = engine.stats().tempo_bpm, time.perf_counter()  # after a second of ticks
        time.sleep(2.0)  # the answer starts at the next bar line (up to 1.2 s) and lasts a bar
    finally:
        engine.stop()
        jack.run_tool("bash", "-c", "echo stop | jack_transport")
        clock_tool.terminate()
        clock_tool.wait(timeout=5)
        if keyboard is not None:
            keyboard.close()
        events = listener.close() if listener is not None else []
        forget_midi_clients()
    start = next(t for t, data in events if data == (START,))
    ticks = [t for t, data in events if data == (CLOCK,) and t >= start]
    # The engine's estimate agrees with the tempo of the same stretch of ticks as heard here
    # (through JACK's late cycles it wanders by a percent or so around the nominal 200).
    recent = [(k, t) for k, t in enumerate(ticks) if asked - 1.2 <= t <= asked]
    heard = 60 / (np.polyfit(*zip(*recent), 1)[0] * 24)
    assert tempo is not None and abs(tempo - heard) < 3.0, (tempo, heard)
    assert abs(tempo - bpm) < 0.1 * bpm  # the test server's own clock drifts under load
    lost = ticks_lost_by_engine(ticks, engine.clock.follower, engine.t0)
    # Sixteenths are 6 ticks, bars 96, counted from the first tick after Start as the engine
    # counted them: after a tick the engine lost (lost > 0) or the listener lost (< 0), the
    # listener's tick i is the engine's i - lost.
    grid = ticks[lost % 6 :: 6]
    bars = ticks[lost % 96 :: 96]
    model = [t for t, data in events if data[0] == 0x91 and data[2] > 0]
    release = max(t for t, data in events if data[0] in (0x80, 0x90) and data[2] == 0)
    assert len(model) >= 6, events
    # The answer opens on the first bar line after the phrase (a beat is 300 ms: within 40 ms
    # is that bar line, predicted from a tempo that wanders with the test server's cycles)...
    next_bar = min(b for b in bars if b > release)
    assert abs(model[0] - next_bar) <= 0.040, (model[0] - next_bar, release)
    # ...and its onsets are on the grid: a sixteenth is 75 ms, so onsets at random would miss
    # it by 19 ms on average (a mean over 6+ onsets below 10 ms by chance: ~1%). Typically
    # 3-5 ms: livegen's MIDI goes out at the JACK period after it is sent (2.7 ms each); a
    # stalled cycle of the test server (not real-time, on a loaded machine) adds more now
    # and then, which the engine cannot foresee.
    misses = sorted(min(abs(onset - g) for g in grid) for onset in model)
    shown = " ".join(f"{1000 * miss:.1f}" for miss in misses)
    shown += f" ms; ticks lost by the engine: {lost}; {engine.stats()}"
    assert sum(misses) / len(misses) <= 0.010, shown


def ticks_lost_by_engine(heard: list[float], follower: MidiClockFollower, t0: float) -> int:
    """How many more ticks since Start the listener heard (stamped at `heard`, perf_counter)
    than the engine's follower counted: negative when the listener lost some. Both stamp a
    tick as their poller drains it from the same JACK cycle, a millisecond or two apart
    (ticks are 12.5 ms apart at 200 bpm): the median, over the engine's last ticks, of the
    difference between the listener's index of the nearest tick heard and the engine's."""
    times = np.asarray(heard)
    shifts = [int(np.argmin(abs(times - (t + t0)))) - k for k, t in follower.recent_ticks]
    return int(np.median(shifts))


def tick_period(times: list[float], span: int = 24) -> float:
    """Seconds per tick: the median over the window of (time of tick i + span - time of tick
    i) / span. The engine's conductor is an ordinary thread: on a busy machine it runs late
    now and then and sends the ticks it owes in a burst. The mean interval, (last - first) /
    count, is off by several percent when a burst sits at either end of the window; the median
    of one-beat spans ignores spans that a burst distorts."""
    ticks = np.asarray(times)
    return float(np.median(ticks[span:] - ticks[:-span]) / span)


def test_engine_sends_midi_clock_when_it_leads(jack: JackServer, tmp_path: Path) -> None:
    settings = jack_settings(tmp_path, input="none", send_clock=True)
    engine = JamEngine(settings, Controls(tempo_bpm=150.0))
    listener = None
    try:
        engine.start()
        listener = Listener(jack)
        listener.connect(LIVEGEN_OUT)
        time.sleep(1.0)
        engine.set_controls(tempo_bpm=100.0)  # live: the ticks follow
        time.sleep(1.0)
    finally:
        engine.stop()
        events = listener.close() if listener is not None else []
        forget_midi_clients()
    ticks = [t for t, data in events if data == (CLOCK,)]
    assert events[-1][1] == (STOP,) or (STOP,) in [d for _, d in events[-40:]]
    changed = min(range(len(ticks)), key=lambda i: abs(ticks[i] - (ticks[0] + 1.0)))
    before = tick_period(ticks[2 : changed - 2]) * 24
    after = tick_period(ticks[changed + 2 : -2]) * 24
    assert abs(60 / before - 150.0) < 3 and abs(60 / after - 100.0) < 3, (60 / before, 60 / after)
