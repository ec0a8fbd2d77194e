"""The engine in its own process (what `livegen` runs behind the UI): the real JamEngine, a
tiny real preset, JACK dummy ports. Errors cross the pipe as themselves; a dead engine process
is a message, not a crash; a dead UI still gets its take finished."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mido
import pytest

from livegen.controls import Controls, JamSettings
from livegen.engine_host import EngineProcess
from livegen.midi_ports import PortError
from tests.jam_peers import jack_settings, wait_until


def settings(tmp_path: Path, **changes) -> JamSettings:
    base = {"input": "none", "record_dir": str(tmp_path / "rec")}
    return jack_settings(tmp_path, **{**base, **changes})


def test_calls_reach_the_engine_and_errors_come_back(jack, tmp_path: Path) -> None:
    engine = EngineProcess(settings(tmp_path), Controls(temperature=0.8))
    engine.start()
    try:
        assert engine.controls.temperature == 0.8
        assert engine.set_controls(top_p=0.5).top_p == 0.5
        assert engine.controls.top_p == 0.5
        with pytest.raises(ValueError, match="temperature must be a finite number in 0.05..5.0"):
            engine.set_controls(temperature=50.0)
        t0 = engine.now()
        engine.play(mido.Message("note_on", note=62, velocity=80))
        engine.play(mido.Message("note_off", note=62))
        assert wait_until(
            lambda: any(n.owner == "player" and n.pitch == 62 for n in engine.roll(t0)), timeout=5
        )
        assert engine.stats().running
        assert any("recording to" in line for line in engine.drain_log())
        # one UI poll's reads in one round trip: the same answers as the single calls
        stats, now, roll, _log, controls = engine.snapshot(30.0)
        assert stats.running and now >= t0 and controls.top_p == 0.5
        assert any(n.owner == "player" and n.pitch == 62 for n in roll)
        # A preset swap goes through too; a wrong name is said, the model plays on.
        engine.swap_preset("no such preset")
        lines: list[str] = []
        assert wait_until(
            lambda: lines.extend(engine.drain_log()) or any("swap" in x for x in lines), 5
        )
        assert any("'no such preset' failed" in x for x in lines), lines
        assert engine.stats().running and engine.stats().preset == "tiny"
    finally:
        engine.stop()
    assert not engine.stats().running
    engine.stop()  # idempotent


def test_a_wrong_port_name_raises_the_engines_error(jack, tmp_path: Path) -> None:
    engine = EngineProcess(settings(tmp_path, input="no such keyboard"))
    with pytest.raises(PortError, match="no such keyboard"):
        engine.start()
    engine.stop()


def test_a_dead_engine_process_is_a_message(jack, tmp_path: Path) -> None:
    engine = EngineProcess(settings(tmp_path))
    engine.start()
    os.kill(engine.pid, signal.SIGKILL)
    assert wait_until(lambda: not engine.stats().running, timeout=10)
    stats = engine.stats()
    assert stats.problems and "engine process stopped" in stats.problems[0]
    engine.play(mido.Message("note_on", note=60))  # nothing raises
    assert engine.roll(0.0) == []
    assert engine.set_controls(temperature=1.5).temperature == 1.5  # kept for a restart
    assert engine.drain_log() == [stats.problems[0]]
    assert engine.snapshot(8.0)[0].problems == stats.problems  # a poll says so too
    engine.stop()


UI = """
import json, os, sys, time
import mido
from livegen.controls import JamSettings
from livegen.engine_host import EngineHost
engine = EngineHost(JamSettings(**json.loads(sys.argv[1])))
engine.start()
engine.play(mido.Message("note_on", note=64, velocity=90))
deadline = time.monotonic() + 10
while not any(n.pitch == 64 for n in engine.roll(0.0)) and time.monotonic() < deadline:
    time.sleep(0.01)
print(engine.pid, flush=True)
os.kill(os.getpid(), 9)  # the UI dies without a word
"""


def test_when_the_ui_dies_the_take_is_finished(jack, tmp_path: Path) -> None:
    """A real UI process is killed: its engine process (left without a parent) sees the pipe
    close, finishes the take and exits."""
    fields = dataclasses.asdict(settings(tmp_path))
    ui = subprocess.run(
        [sys.executable, "-c", UI, json.dumps(fields)],
        capture_output=True,
        text=True,
        env=jack.env,
        timeout=120,
    )
    assert ui.returncode == -signal.SIGKILL, ui.stderr
    engine_pid = int(ui.stdout.split()[-1])
    assert wait_until(lambda: not _alive(engine_pid), timeout=30)
    (take,) = (tmp_path / "rec").glob("livegen-*.mid")
    notes = [m for track in mido.MidiFile(take).tracks for m in track if m.type == "note_on"]
    assert any(m.note == 64 and m.velocity == 90 for m in notes)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
