"""Real-time scheduling of livegen's own JACK threads on a server that gives none (the test
server runs `jackd --no-realtime`): the MIDI clients' threads and the audio callback's are
raised where the system allows it, Python threads never are, and the musician is told."""

from __future__ import annotations

import threading
import time

import pytest

from livegen import realtime
from livegen.audio_out import AudioOut, AudioSpec
from livegen.midi_ports import MidiOutput
from livegen.models.preset import DEFAULT_SOUNDFONT
from tests.jack import JackServer

ALLOWED = realtime.realtime_allowed()
RAISED = "livegen" if ALLOWED else "ordinary"  # what a thread the server left ordinary becomes


@pytest.fixture(autouse=True)
def raising(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite keeps livegen's threads ordinary (conftest.py); these tests are of raising."""
    monkeypatch.delenv(realtime.OPT_OUT, raising=False)


def test_a_jack_midi_clients_threads_become_realtime_where_allowed(jack: JackServer) -> None:
    python = {thread.native_id for thread in threading.enumerate()}
    before = realtime.thread_ids()
    seen = dict(realtime.SEEN)
    port = MidiOutput("virtual", api="jack")
    port.open()
    try:
        new = realtime.thread_ids() - before - python
        assert new, "opening a JACK client started no thread"
        assert all(realtime.is_realtime(tid) == ALLOWED for tid in new)
        assert realtime.SEEN.get(RAISED, 0) - seen.get(RAISED, 0) == len(new)
        assert jack.ports(), "the client is in the graph"
    finally:
        port.close()


def test_python_threads_started_meanwhile_are_left_alone() -> None:
    go = threading.Event()
    worker = threading.Thread(target=go.wait, name="a Python thread")
    with realtime.new_threads_realtime() as found:
        worker.start()
    go.set()
    worker.join()
    assert found.states == []


def test_the_opt_out_leaves_threads_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(realtime.OPT_OUT, "1")
    states: list[tuple[str, bool]] = []

    def check() -> None:
        states.append((realtime.schedule(), realtime.is_realtime()))

    thread = threading.Thread(target=check)
    thread.start()
    thread.join()
    assert states == [("ordinary", False)]


def test_the_audio_callback_thread_is_raised_and_says_so(jack: JackServer) -> None:
    audio = AudioOut(AudioSpec(t0=time.perf_counter(), soundfont=DEFAULT_SOUNDFONT))
    audio.launch()
    try:
        assert audio.wait_ready() is None, audio.problem
        deadline = time.monotonic() + 10
        while audio.latest is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert audio.latest.scheduling == RAISED, audio.latest
    finally:
        audio.stop()


@pytest.mark.parametrize(
    ("audio", "midi", "words"),
    [
        ("server", {"server": 2}, None),
        ("livegen", {"livegen": 2}, "JACK runs without real-time scheduling"),
        ("server", {"ordinary": 1}, "no real-time scheduling for the sound"),
        ("ordinary", {}, "rtprio"),
        (None, {"livegen": 1}, "jackd -R"),
    ],
)
def test_the_musician_is_told_what_the_server_lacks(
    audio: str | None, midi: dict[str, int], words: str | None
) -> None:
    line = realtime.scheduling_report(audio, midi)
    if words is None:
        assert line is None
    else:
        assert line is not None and words in line and "README" in line
