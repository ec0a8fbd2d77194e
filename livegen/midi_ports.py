"""MIDI ports through python-rtmidi (mido parses the bytes), and the device lists pickers show.

- `list_midi_inputs(api)`, `list_midi_outputs(api)`: port names, cached per API; livegen's own
  ports ("livegen in", "livegen out") are left out so nobody wires livegen into itself.
- `prefetch_device_lists()`: warms those lists and the audio devices' (livegen/audio_devices.py).
- `resolve_port(wanted, available)`: exact name, else a unique (case-insensitive) substring;
  otherwise a PortError that lists what exists.
- MidiInput / MidiOutput: one port each, virtual or connected to a named port, that notice when
  the port they are connected to disappears and reconnect when it is back.

Input is POLLED from a thread of ours rather than taken in rtmidi's callback: with JACK, the
callback runs in JACK's process thread, which would then wait for this process's GIL and could
stall the whole JACK cycle (audio included).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from livegen.audio_devices import list_audio_devices
from livegen.kernels.errors import LivegenError

APIS = {"alsa": "API_LINUX_ALSA", "jack": "API_UNIX_JACK", "coremidi": "API_MACOSX_CORE"}
APIS["winmm"] = "API_WINDOWS_MM"
VIRTUAL_IN = "livegen in"
VIRTUAL_OUT = "livegen out"
VIRTUAL_CLOCK = "livegen clock"
OWN_CLIENTS = (VIRTUAL_IN, VIRTUAL_OUT, VIRTUAL_CLOCK)
# Messages rtmidi buffers between two polls; beyond, it drops them (printing "message queue
# limit reached" to stderr, which no API reports). A flood of 37,000 messages/s overflowed
# 4096 while the GIL was busy elsewhere and lost note-offs below livegen's own limiter, so the
# ring holds seconds of a flood (65536 slots: about 2 MB).
INPUT_QUEUE_LIMIT = 65536


class PortError(LivegenError):
    """A MIDI port or API that does not exist (the message lists what does)."""


class MidiUnavailable(LivegenError):
    """No MIDI system can be opened (no ALSA sequencer, no JACK server, ...)."""


def _rtmidi():  # noqa: ANN202 - the module has no types
    import rtmidi

    return rtmidi


def api_names() -> list[str]:
    """The APIs this python-rtmidi was built with, by livegen's names."""
    rtmidi = _rtmidi()
    compiled = set(rtmidi.get_compiled_api())
    return [name for name, attr in APIS.items() if getattr(rtmidi, attr) in compiled]


def api_id(api: str | None) -> int:
    """rtmidi's id of an API name (None: rtmidi's default for the platform)."""
    rtmidi = _rtmidi()
    if api is None:
        return rtmidi.API_UNSPECIFIED
    if api not in APIS:
        raise PortError(f"unknown MIDI API {api!r}; use one of {', '.join(APIS)}")
    if api not in api_names():
        raise PortError(
            f"MIDI API {api!r} is not available in this build; available: "
            + (", ".join(api_names()) or "none")
        )
    return getattr(rtmidi, APIS[api])


def _open_client(kind: str, api: str | None, client_name: str):  # noqa: ANN202
    """An rtmidi MidiIn/MidiOut; with no API given, each compiled API in turn (Linux: ALSA,
    then JACK), so a machine with JACK but no ALSA sequencer still works."""
    rtmidi = _rtmidi()
    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    candidates = [api] if api is not None else [None, *api_names()]
    errors = []
    for name in candidates:
        try:
            return _realtime_client(cls, name, client_name)
        except rtmidi.SystemError as error:
            errors.append(f"{name or 'default'}: {error}")
    raise MidiUnavailable(
        "no MIDI system could be opened (" + "; ".join(errors) + "). On Linux load the ALSA "
        "sequencer (modprobe snd-seq) or start a JACK server and use --api jack"
    )


def _realtime_client(cls, api: str | None, client_name: str):  # noqa: ANN001, ANN202
    """An rtmidi client whose JACK process thread is real-time even when the JACK server is
    not (livegen.realtime): an ordinary thread there is late whenever the machine is busy
    (the terminal UI redrawing), and JACK then logs an xrun for the whole graph."""
    from livegen import realtime

    extra = {"queue_size_limit": INPUT_QUEUE_LIMIT} if cls is _rtmidi().MidiIn else {}
    with realtime.new_threads_realtime() as threads:
        client = cls(api_id(api), client_name, **extra)
        threads.wanted = client.get_current_api() == _rtmidi().API_UNIX_JACK
    return client


def is_own_port(name: str) -> bool:
    return any(name.startswith(client) for client in OWN_CLIENTS)


class _Lister:
    """One long-lived rtmidi client per (API, direction): listing through it costs ~0.3 ms,
    where opening a client (what mido.get_input_names does each time) costs ~30 ms on JACK."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str | None, str], object] = {}
        self._lock = threading.Lock()

    def ports(self, api: str | None, kind: str) -> list[str]:
        with self._lock:
            client = self._clients.get((api, kind))
            if client is None:
                client = _open_client(kind, api, "livegen-list")
                self._clients[(api, kind)] = client
            try:
                names = client.get_ports()
            except Exception:  # the MIDI system went away under us: open afresh next time
                self._clients.pop((api, kind), None)
                raise
        return [n for n in names if not is_own_port(n)]

    def forget(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.delete()
            self._clients.clear()


_LISTER = _Lister()


def list_ports(api: str | None, kind: str) -> list[str]:
    """Ports of one API ("in": sources, "out": destinations); raises MidiUnavailable/PortError
    where list_midi_inputs/outputs return an empty list."""
    return _LISTER.ports(api, kind)


def list_midi_inputs(api: str | None = None) -> list[str]:
    """Ports livegen can listen to (sources). Empty when no MIDI system is available."""
    try:
        return _LISTER.ports(api, "in")
    except (MidiUnavailable, PortError):
        return []


def list_midi_outputs(api: str | None = None) -> list[str]:
    """Ports livegen can play to (destinations). Empty when no MIDI system is available."""
    try:
        return _LISTER.ports(api, "out")
    except (MidiUnavailable, PortError):
        return []


def forget_midi_clients() -> None:
    """Close the listing clients (tests do, before their JACK server stops)."""
    _LISTER.forget()


def resolve_port(wanted: str, available: list[str], what: str) -> str:
    """The one port `wanted` names: exactly, else by a unique case-insensitive substring."""
    if wanted in available:
        return wanted
    matches = [name for name in available if wanted.lower() in name.lower()]
    if len(matches) == 1:
        return matches[0]
    listing = "\n  ".join(available) if available else "(none)"
    if matches:
        raise PortError(
            f"{what} {wanted!r} is ambiguous; it matches: {', '.join(matches)}. "
            f"Available {what}s:\n  {listing}"
        )
    raise PortError(f"no {what} matches {wanted!r}. Available {what}s:\n  {listing}")


def prefetch_device_lists(api: str | None = None) -> threading.Thread:
    """Warm the MIDI and audio lists in a background thread (a UI calls this at start-up)."""

    def warm() -> None:
        list_midi_inputs(api)
        list_midi_outputs(api)
        list_audio_devices()

    thread = threading.Thread(target=warm, name="livegen-prefetch", daemon=True)
    thread.start()
    return thread


# ---- ports -----------------------------------------------------------------------------------


class _Port:
    """What MidiInput and MidiOutput share: open a virtual port or connect to a named one,
    watch that it still exists, reconnect when it is back."""

    kind = "in"
    virtual_name = VIRTUAL_IN
    what = "MIDI input"

    def __init__(self, wanted: str, api: str | None = None) -> None:
        self.wanted = wanted  # "virtual" or a name (exact or unique substring)
        self.api = api
        self.virtual = wanted == "virtual"
        self.name: str | None = None  # the resolved port name ("livegen in" when virtual)
        self.connected = False
        self._client = None

    def open(self) -> None:
        """Open the port; PortError (listing the ports) when the name matches none."""
        self._client = _open_client(self.kind, self.api, self.virtual_name)
        if self.virtual:
            self._client.open_virtual_port(self.virtual_name)
            self.name = self.virtual_name
            self.connected = True
            return
        available = self._available()
        self.name = resolve_port(self.wanted, available, self.what)
        self._connect(available)

    def _available(self) -> list[str]:
        return [n for n in self._client.get_ports() if not is_own_port(n)]

    def _connect(self, available: list[str]) -> None:
        self._client.open_port(available.index(self.name), self.virtual_name)
        self.connected = True

    def check(self) -> str | None:
        """Is the port still there? Reconnects when it is back. Returns "lost" or "back" when
        that changed, else None. Cheap (one port listing); call it a few times a second."""
        if self.virtual or self._client is None:
            return None
        try:
            available = self._available()
        except Exception:  # the MIDI system itself went away
            available = []
        present = self.name in available
        if self.connected and not present:
            self._client.close_port()
            self.connected = False
            return "lost"
        if not self.connected and present:
            try:
                self._connect(available)
            except Exception:  # it vanished again between the listing and the connect
                return None
            return "back"
        return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close_port()
            self._client.delete()
            self._client = None
        self.connected = False


class MidiInput(_Port):
    """Player input: a thread polls the port (every `poll_interval` s) and hands each raw
    message with its arrival time (time.perf_counter()) to `on_message`."""

    def __init__(
        self,
        wanted: str,
        on_message: Callable[[list[int], float], None],
        api: str | None = None,
        *,
        on_change: Callable[[str], None] | None = None,
        poll_interval: float = 0.0005,
        check_interval: float = 0.5,
    ) -> None:
        super().__init__(wanted, api)
        self.on_message = on_message
        self.on_change = on_change
        self.poll_interval = poll_interval
        self.check_interval = check_interval
        self._running = False
        self._thread: threading.Thread | None = None
        # Drains that found rtmidi's queue full: it may have dropped messages we never saw.
        self.overflows = 0

    def open(self) -> None:
        super().open()
        # Receive sysex, timing (clock) and active sensing: the engine decides what to skip.
        self._client.ignore_types(sysex=False, timing=False, active_sense=True)
        self._running = True
        self._thread = threading.Thread(target=self._poll, name="livegen-midi-in", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        client, sleep, clock = self._client, time.sleep, time.perf_counter
        next_check = clock() + self.check_interval
        full = INPUT_QUEUE_LIMIT - 1  # rtmidi's ring keeps one slot free
        while self._running:
            drained = self._drain(client, clock)
            if drained >= full:
                self.overflows += 1
            now = clock()
            if now >= next_check:
                next_check = now + self.check_interval
                change = self.check()
                if change and self.on_change is not None:
                    self.on_change(change)
            sleep(self.poll_interval)

    def _drain(self, client, clock) -> int:  # noqa: ANN001 - rtmidi has no types
        """Hand on every message waiting; returns how many came in one go (a drain as long as
        the queue means it was full)."""
        count, on_message = 0, self.on_message
        got = client.get_message()
        while got is not None and self._running:
            on_message(got[0], clock())
            count += 1
            got = client.get_message()
        return count

    def close(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=2)
            if self._thread.is_alive():
                # Still inside a handler: deleting the client under it would crash the
                # process (rtmidi frees what get_message reads). Leave it to the exit.
                self._client, self.connected = None, False
                return
            self._thread = None
        super().close()


class RateLimit:
    """A token bucket: `take()` is True while the long-run rate stays under `rate`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.level, self.last = burst, time.perf_counter()

    def take(self, now: float) -> bool:
        self.level = min(self.burst, self.level + (now - self.last) * self.rate)
        self.last = now
        if self.level >= 1.0:
            self.level -= 1.0
            return True
        return False


class MidiOutput(_Port):
    """Output, paced: at most `rate` messages a second, in bursts of at most `burst`. JACK
    gives a MIDI port one buffer per period (512 bytes at 128 frames: ~35 messages) and
    drops what does not fit, so a burst (a backlog after a stall, a panic) must be spread
    over periods. Below the rate a message goes out at once; above, it waits its turn (call
    `pump()` often; `backlog` says how many wait)."""

    kind = "out"
    virtual_name = VIRTUAL_OUT
    what = "MIDI output"

    def __init__(
        self, wanted: str, api: str | None = None, rate: float = 4000.0, burst: float = 16.0
    ) -> None:
        super().__init__(wanted, api)
        self._pace = RateLimit(rate, burst)
        self._queue: deque[list[int] | bytes] = deque()
        self.failed = 0  # messages rtmidi refused (the port vanished mid-send)

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def send(self, data: list[int] | bytes) -> None:
        """Queue one raw message and send what the pace allows. Dropped if the port is gone."""
        if not self.connected or self._client is None:
            return
        self._queue.append(data)
        self.pump()

    def pump(self) -> int:
        """Send queued messages while the budget lasts; returns how many still wait."""
        now, queue = time.perf_counter(), self._queue
        while queue and self._pace.take(now):
            data = queue.popleft()
            if not self.connected or self._client is None:
                continue
            try:
                self._client.send_message(data)
            except Exception:  # rtmidi raises when the port vanished mid-send
                self.failed += 1
        return len(queue)

    def close(self) -> None:
        """Send what waits (the last note-offs), then close."""
        deadline = time.perf_counter() + 2.0
        while self.pump() and time.perf_counter() < deadline:
            time.sleep(0.001)
        time.sleep(0.02)  # JACK takes the last ones at its next periods
        super().close()
