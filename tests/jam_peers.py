"""Real JACK peers for the jam engine's tests: a keyboard that plays into livegen (a JACK MIDI
client through python-rtmidi) and jack_midi_dump (jackd2's example tool, in its own process)
capturing what livegen sends."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import rtmidi

from livegen.controls import JamSettings
from livegen.midi_ports import forget_midi_clients
from tests.jack import JackServer
from tests.presets import tiny_preset

LIVEGEN_IN = "livegen in:livegen in"
LIVEGEN_OUT = "livegen out:livegen out"
_DUMP_LINE = re.compile(r"^\s*(\d+):\s+((?:[0-9a-f]{2} ?)+)")


def jack_settings(tmp_path: Path, **changes: object) -> JamSettings:
    """JamSettings for a test jam on the test's JACK server: a tiny preset, no audio device
    unless the test asks for one."""
    base = {"api": "jack", "audio_device": "none"}
    if "preset" not in changes:
        base["preset"] = str(engine_preset(tmp_path))
    return JamSettings(**{**base, **changes})


def wait_until(condition, timeout: float = 3.0) -> bool:  # noqa: ANN001
    """Poll condition() every 50 ms until it holds (True) or the timeout passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def answer_ends(engine, timeout: float = 10.0) -> bool:  # noqa: ANN001
    """Wait until the model's answer, whose first note is in the roll already, shows in the
    meters (they lag up to 50 ms behind the roll) and then is over."""
    speaking = wait_until(lambda: engine.stats().model_speaking, 2.0)
    return speaking and wait_until(lambda: not engine.stats().model_speaking, timeout)


class ManualClock:
    """A clock a test moves by hand (`clock.t = ...`): deterministic timing for callbacks."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def stop_session(engine, keyboard: Keyboard | None) -> None:  # noqa: ANN001
    """A jam test's teardown: the engine first (its notes off reach the capture), then the
    keyboard if it was opened, then the port listing's JACK client, which must not outlive
    the test's server."""
    engine.stop()
    if keyboard is not None:
        keyboard.close()
    forget_midi_clients()


def engine_preset(folder: Path) -> Path:
    """A tiny random preset with enough context that rollbacks never run out of history."""
    return tiny_preset(folder, context=256, latents=32, dim=32, layers=1)


@dataclass(frozen=True)
class Captured:
    seconds: float  # jack_midi_dump's clock (its frame counter / sample rate)
    data: tuple[int, ...]

    @property
    def kind(self) -> int:
        return self.data[0] & 0xF0

    @property
    def channel(self) -> int:
        return self.data[0] & 0x0F

    @property
    def is_on(self) -> bool:
        return self.kind == 0x90 and self.data[2] > 0

    @property
    def is_off(self) -> bool:
        return self.kind == 0x80 or (self.kind == 0x90 and self.data[2] == 0)


class MidiDump:
    """jack_midi_dump -a, connected to a port; `stop()` returns what it printed, parsed."""

    def __init__(self, jack: JackServer, name: str = "livegen-test-dump") -> None:
        import tempfile

        self.jack = jack
        self.name = name
        # Into a file: a pipe read only at the end fills up, blocks the dump's printing
        # thread, and then its ring buffer overflows and drops events.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["jack_midi_dump", "-a", name], env=jack.env, stdout=self.log, stderr=self.log
        )
        # A test that fails before stop() must not leave the dump running.
        weakref.finalize(self, self.process.kill)
        self.port = jack.wait_for_port(f"{name}:input")

    def connect(self, source: str) -> None:
        self.jack.connect(source, self.port)

    def stop(self) -> list[Captured]:
        time.sleep(0.1)  # let the last period through
        # SIGINT: jack_midi_dump closes its JACK client on it; after SIGTERM the server keeps
        # a dead client and takes seconds to shut down.
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=10)
        self.log.seek(0)
        output = self.log.read()
        self.log.close()
        assert "ringbuffer was full" not in output, "jack_midi_dump dropped events"
        events = []
        for line in output.splitlines():
            match = _DUMP_LINE.match(line)
            if match:
                data = tuple(int(b, 16) for b in match.group(2).split())
                events.append(Captured(int(match.group(1)) / self.jack.sample_rate, data))
        return events


class Listener:
    """A JACK MIDI sink in this process (python-rtmidi, JACK API) that stamps each message
    with its arrival on the session's clock (time.perf_counter) from a polling thread. Where
    jack_midi_dump stamps JACK frames, this sees what a musician hears in wall-clock time,
    which is what a non-real-time test server's late cycles must not distort."""

    def __init__(self, jack: JackServer, name: str = "test-listen") -> None:
        import threading

        self.jack, self.name, self.closed = jack, name, False
        self.input = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name, queue_size_limit=65536)
        self.input.ignore_types(sysex=True, timing=False, active_sense=True)
        self.input.open_virtual_port("in")
        self.port = f"{name}:in"
        self.events: list[tuple[float, tuple[int, ...]]] = []
        self._running = True
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        jack.clients.append(self)

    def _poll(self) -> None:
        while self._running:
            got = self.input.get_message()
            if got is None:
                time.sleep(0.0002)
            else:
                self.events.append((time.perf_counter(), tuple(got[0])))

    def connect(self, source: str) -> None:
        self.jack.connect(source, self.port)

    def close(self) -> list[tuple[float, tuple[int, ...]]]:
        self._running = False
        # Deleting the client while the poller is still inside get_message frees what it
        # reads: a CI run segfaulted so, on a loaded machine where the join gave up after 2 s
        # (livegen's own MidiInput.close guards the same way).
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            raise AssertionError("the listener's poller did not stop in 30 s")
        self.input.close_port()
        self.input.delete()
        self.closed = True
        return self.events


class Keyboard:
    """A JACK MIDI source (python-rtmidi, JACK API) wired to livegen's input."""

    def __init__(self, jack: JackServer, name: str = "test-keys") -> None:
        self.jack, self.name, self.closed = jack, name, False
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
        self.out.open_virtual_port("out")
        self.port = f"{name}:out"
        jack.clients.append(self)

    def connect(self, destination: str = LIVEGEN_IN) -> None:
        self.jack.connect(self.port, destination)

    def send(self, data: list[int]) -> None:
        self.out.send_message(data)

    def phrase(self, pitches: list[int], length: float = 0.12, gap: float = 0.05) -> None:
        for pitch in pitches:
            self.send([0x90, pitch, 90])
            time.sleep(length)
            self.send([0x80, pitch, 0])
            time.sleep(gap)

    def close(self) -> None:
        self.out.close_port()
        self.out.delete()
        self.closed = True


def unmatched_notes(events: list[Captured]) -> dict[tuple[int, int], int]:
    """(channel, pitch) -> note-ons without a later note-off (all-notes-off CC 123 ends all)."""
    open_notes: dict[tuple[int, int], int] = {}
    for event in events:
        if event.kind == 0xB0 and event.data[1] == 123:
            for key in [k for k in open_notes if k[0] == event.channel]:
                del open_notes[key]
            continue
        key = (event.channel, event.data[1]) if len(event.data) > 1 else None
        if event.is_on:
            open_notes[key] = open_notes.get(key, 0) + 1
        elif event.is_off and open_notes.get(key):
            open_notes[key] -= 1
            if not open_notes[key]:
                del open_notes[key]
    return open_notes


def strictly_unmatched(events: list[Captured]) -> dict[tuple[int, int], int]:
    """As unmatched_notes, but all-notes-off does not count: every on needs its own off."""
    return unmatched_notes([e for e in events if not (e.kind == 0xB0 and e.data[1] == 123)])


def flood(server: str, destination: str, seconds: float, rate: int, kind: str = "junk") -> None:
    """Send `rate` messages a second for `seconds` to `destination`, then what a player's
    panic sends: all-notes-off on every channel and a note-off for every key. Run in its own
    process (see flood_process).

    kind "junk": random notes on all 16 channels (some left held for the panic to end),
    controllers, sysex, clock and junk (data bytes with no status, truncated messages,
    undefined status bytes, out-of-range data). kind "loop": well-formed on/off pairs only,
    cycling through the keys of channel 1."""
    import random

    os.environ["JACK_DEFAULT_SERVER"] = server
    os.environ["JACK_NO_START_SERVER"] = "1"
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "test-flood")
    out.open_virtual_port("out")
    subprocess.run(["jack_connect", "test-flood:out", destination], check=True)
    time.sleep(0.2)
    rng = random.Random(5)
    junk = [
        [0x12, 0x34],  # data bytes with no status
        [0x90, 60],  # truncated note-on
        [0xF4],  # undefined system common
        [0xFD],  # undefined realtime
        [0x90, 200 & 0xFF, 100],  # data byte out of range
        [0xF0] + [rng.randrange(128) for _ in range(60)] + [0xF7],  # sysex
        [0xB0, 7, 100],  # a controller
        [0xF8],  # clock
        [0xE0, 0, 64],  # pitch bend
    ]
    loop = [m for p in range(21, 109) for m in ([0x90, p, 90], [0x80, p, 0])]

    def junk_message() -> list[int]:
        roll = rng.random()
        if roll < 0.4:
            return [0x90 | rng.randrange(16), rng.randrange(21, 109), rng.randrange(1, 128)]
        if roll < 0.75:
            return [0x80 | rng.randrange(16), rng.randrange(21, 109), 0]
        return rng.choice(junk)

    batch = max(1, rate // 200)
    start, sent = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for _ in range(batch):
            out.send_message(loop[sent % len(loop)] if kind == "loop" else junk_message())
            sent += 1
        due = start + sent / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    # The player's panic: all notes off, then each key up, paced like a real panic button.
    for channel in range(16):
        out.send_message([0xB0 | channel, 123, 0])
        for pitch in range(128):
            out.send_message([0x80 | channel, pitch, 0])
        time.sleep(0.01)
    time.sleep(0.2)
    out.close_port()
    out.delete()
    print(sent, flush=True)


def flood_process(  # noqa: ANN201
    jack: JackServer, destination: str, seconds: float, rate: int, kind: str = "junk"
):
    """flood() in a child process (so its sending does not steal this process's GIL)."""
    import sys

    code = (
        "from tests.jam_peers import flood; "
        f"flood({jack.name!r}, {destination!r}, {seconds!r}, {rate!r}, {kind!r})"
    )
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=root, env=jack.env, stdout=subprocess.PIPE, text=True
    )
