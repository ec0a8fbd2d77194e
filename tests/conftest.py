from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
import torch
from hypothesis import HealthCheck, settings

from tests.jack import JackServer, jack_session
from tests.tmux import Tmux

# Numba compiles on first call; a deadline would fail whichever example pays for it.
# On CI the examples are derandomised so a red run can be replayed exactly.
settings.register_profile(
    "dev", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=100,
    derandomize=True,
    print_blob=True,
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# The test JACK server runs without real-time scheduling, and its peers (jack_midi_dump,
# jack_rec) are ordinary threads. livegen raises its own JACK threads on such a server
# (livegen.realtime); measured under load, those real-time threads then preempt jackd's own
# ordinary thread, and the ordinary peers' timestamps drift (the MIDI clock and heard-vs-MIDI
# timing tests failed 2 of 2 runs, 0 of 2 with this set). So the suite keeps livegen's threads
# as the server made them, like the peers'; the tests of raising them unset it.
os.environ.setdefault("LIVEGEN_NO_REALTIME", "1")


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: extra intra-op threads only add contention.
    Commands under test may set their own count; every test gets the suite's back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that takes a JACK server is marked `jack` (so `-m "not jack"` leaves it
    out) from its fixtures, not from a mark each test must remember."""
    for item in items:
        if {"jack", "jack_rt", "jack512", "jack512_rt"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.jack)


@pytest.fixture
def jack() -> Iterator[JackServer]:
    """A private JACK server (dummy driver, 48 kHz, 128 frames) for the test, then stopped.

    The test process itself talks to it through JACK_DEFAULT_SERVER, which libjack reads
    when a client (python-rtmidi's JACK API, sounddevice's JACK host API) opens.
    """
    with jack_session() as server:
        yield server


@pytest.fixture
def jack_rt() -> Iterator[JackServer]:
    """Like `jack`, on a real-time server: for the timing tests, whose witness is JACK's own
    frame clock. On a non-real-time server under CPU load that clock falls behind the wall
    clock, so a 0.3 s silence measured in frames looks shorter and an answer on time looks
    early (measured at load 5: the MIDI clock and mode timing tests failed 7 of 9 runs here, 0 of 9
    on a real-time server with two spinning processes beside them)."""
    with jack_session(realtime=True) as server:
        yield server


@pytest.fixture
def jack512() -> Iterator[JackServer]:
    """Like `jack`, with 512-frame periods (10.7 ms) instead of 128. The test server is not
    real-time: on a loaded machine its 128-frame cycles run late often enough that JACK drops
    MIDI events of late clients (measured: ~40 of 10,000 lost at 128 frames, none at 512).
    Tests that count every note-off use this server (or `jack512_rt`); timing tests use
    `jack_rt`."""
    with jack_session(period=512) as server:
        yield server


@pytest.fixture
def jack512_rt() -> Iterator[JackServer]:
    """Like `jack512`, on a real-time server (as README's Sound set-up asks of a player's
    machine), so every client's process thread is real-time too. A non-real-time server drops
    the MIDI of every client late for its period, and under CPU load that is dozens of
    periods a minute, for livegen's ports and the test's witness alike (measured with the
    flood test at load 9: 39-69 late periods of "livegen out", 20-62 of the listener, in
    40 s); such a loss is JACK's, invisible to any client. Tests that count every note-off
    under load use this server, so what they count is livegen's."""
    with jack_session(period=512, realtime=True) as server:
        yield server


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    """A private tmux server for `livegen` in a real terminal (tests/tmux.py)."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (the set-up installs it for the tests)")
    server = Tmux()
    yield server
    server.kill()
