"""The jam engine in a process of its own, behind the engine's own methods.

Why: the engine's conductor thread sends the model's notes out at their times. In the UI's
process it would share the GIL with Textual, whose redraws hold it for milliseconds at a time
(benchmarks/bench_tui.py measures how late a timing thread wakes there). In a process of its
own only the CPU is shared. The UI talks to it through a pipe (livegen/child.py's Child): one
typed request and its reply per call (livegen/messages.py), a fraction of a millisecond, about
15 a second while nobody plays.

EngineHost has JamEngine's methods (start, stop, controls, set_controls, play, panic,
swap_preset, now, stats, roll, drain_log), so the app cannot tell the difference, and
snapshot(), which reads what a UI poll needs in one round trip. Errors the engine raises (a
wrong port name, a bad preset, a bad control) are raised again here. If the engine process
dies, the methods stop raising and the stats say so; if the UI dies, the engine process sees
its pipe close, stops the engine and finishes the recording.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import signal
import threading
import weakref
from typing import Any

import mido

from livegen.child import Child
from livegen.controls import Controls, JamSettings, RollNote, Stats
from livegen.kernels.errors import LivegenError
from livegen.messages import (
    DrainLog,
    GetControls,
    GetNow,
    GetRoll,
    GetSnapshot,
    GetStats,
    Panic,
    Play,
    Raised,
    Reply,
    SetControls,
    Snapshot,
    Stop,
    SwapPreset,
)

CALL_TIMEOUT = 5.0  # s: a reply slower than this means the engine process is stuck
STOP_TIMEOUT = 30.0  # s: stopping finishes the recording and joins the engine's workers
START_TIMEOUT = 180.0  # s: loading a model on a busy machine

_RUNNING: weakref.WeakSet[EngineHost] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """At exit, stop every engine still running (its take finished), before multiprocessing
    waits for its children: a UI that died of an exception must not hang on them."""
    for engine in list(_RUNNING):
        engine.stop()


class EngineProcessError(LivegenError):
    """The engine process could not start or stopped answering."""


def _picklable(error: BaseException) -> BaseException:
    """The exception itself when it crosses a pipe, else a LivegenError with its message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return LivegenError(f"{type(error).__name__}: {error}")
    return error


def _answer(engine, request: object) -> Any:  # noqa: ANN001 - a JamEngine
    """What the engine says to one request (ValueError for one it does not know)."""
    match request:
        case GetControls():
            return engine.controls
        case SetControls(changes):
            return engine.set_controls(**changes)
        case Play(data):
            return engine.play(mido.Message.from_bytes(list(data)))
        case Panic():
            return engine.panic()
        case SwapPreset(name):
            return engine.swap_preset(name)
        case GetNow():
            return engine.now()
        case GetStats():
            return engine.stats()
        case GetRoll(since):
            return engine.roll(since)
        case DrainLog():
            return engine.drain_log()
        case GetSnapshot(seconds):  # what one UI poll reads, in one round trip
            now = engine.now()
            roll = engine.roll(now - seconds)
            return Snapshot(engine.stats(), now, roll, engine.drain_log(), engine.controls)
    raise ValueError(f"no engine call {request!r}")


def serve(conn, settings: JamSettings, controls: Controls) -> None:  # noqa: ANN001
    """The engine process: start the engine, then answer requests until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the UI decides when the jam ends
    from livegen.engine import JamEngine

    engine = JamEngine(settings, controls)
    try:
        engine.start()
    except BaseException as error:  # report it, whatever it is: the UI shows it
        conn.send(Raised(_picklable(error)))
        return
    conn.send(Reply(engine.controls))
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):  # the UI is gone: finish the take
                return
            if isinstance(request, Stop):
                break
            try:
                conn.send(Reply(_answer(engine, request)))
            except Exception as error:
                conn.send(Raised(_picklable(error)))
    finally:
        engine.stop()
        with contextlib.suppress(OSError, ValueError):  # the UI may be gone already
            conn.send(Reply(None))


class EngineHost:
    """JamEngine's methods, with the engine running in a child process."""

    def __init__(self, settings: JamSettings, controls: Controls | None = None) -> None:
        self.settings = settings
        self._controls = controls if controls is not None else Controls()
        # Not a daemon: the engine starts processes of its own (model, audio).
        self._child = Child(serve, (settings, self._controls), "livegen-engine", daemon=False)
        self._lock = threading.Lock()  # the UI thread and the app's workers both call
        self._gone: str | None = None  # why the engine process no longer answers
        self._told_gone = False
        self._last_now = 0.0
        self._stopped = False

    # ---- life -------------------------------------------------------------------------------
    def start(self) -> None:
        self._child.launch()
        _RUNNING.add(self)
        try:
            first = self._child.first(START_TIMEOUT)
        except EOFError:
            self._end(0)
            raise EngineProcessError("the engine process died while starting") from None
        if first is None:
            self._end(0)
            raise EngineProcessError(f"the engine did not start within {START_TIMEOUT:.0f} s")
        if isinstance(first, Raised):
            self._end(10)
            raise first.error
        self._controls = first.value

    def stop(self) -> None:
        """Stop the engine (it finishes the recording) and its process. Idempotent."""
        with self._lock:
            if self._stopped or not self._child.started:
                self._stopped = True
                return
            self._stopped = True
            with contextlib.suppress(EOFError):
                self._child.ask(Stop(), STOP_TIMEOUT)  # its reply: the take is finished
            self._end(STOP_TIMEOUT)

    def _end(self, wait: float) -> None:
        """Wait `wait` s for the process to end, kill it if it will not, close the pipe."""
        self._child.stop(timeout=wait, ask=False)
        self._stopped = True
        _RUNNING.discard(self)

    # ---- calls ------------------------------------------------------------------------------
    def _call(self, request: object) -> Any:
        """One request and its reply; None when the engine process is gone or stopped."""
        with self._lock:
            if self._gone or self._stopped or not self._child.started:
                return None
            try:
                reply = self._child.ask(request, CALL_TIMEOUT)
            except EOFError:
                self._gone = f"the engine process stopped (exit code {self._child.exitcode})"
                return None
            if reply is None:
                name = type(request).__name__
                self._gone = f"the engine stopped answering ({name} took over {CALL_TIMEOUT:g} s)"
                return None
        if isinstance(reply, Raised):
            raise reply.error
        return reply.value

    @property
    def controls(self) -> Controls:
        controls = self._call(GetControls())
        if controls is not None:
            self._controls = controls
        return self._controls

    def set_controls(self, **changes: Any) -> Controls:
        controls = self._call(SetControls(changes))
        if controls is None:  # no engine to ask: validate here, keep them for a restart
            controls = self._controls.changed(**changes)
        self._controls = controls
        return controls

    def play(self, message: mido.Message) -> None:
        self._call(Play(tuple(message.bytes())))

    def panic(self) -> None:
        self._call(Panic())

    def swap_preset(self, name: str) -> None:
        """Another preset takes over at the next turn boundary (see JamEngine.swap_preset)."""
        self._call(SwapPreset(name))

    def now(self) -> float:
        now = self._call(GetNow())
        if now is not None:
            self._last_now = now
        return self._last_now

    def stats(self) -> Stats:
        stats = self._call(GetStats())
        if stats is None:
            problems = [self._gone] if self._gone else []
            return Stats(running=False, problems=problems)
        return stats

    def roll(self, since: float) -> list[RollNote]:
        return self._call(GetRoll(since)) or []

    def snapshot(self, seconds: float) -> Snapshot:
        """stats, now, the roll's last `seconds`, the new log lines and the controls: what the
        UI polls 15 times a second, in one round trip instead of five. Unpacks as a tuple."""
        snapshot = self._call(GetSnapshot(seconds))
        if snapshot is None:  # gone or stopped: the same answers the single calls give
            return Snapshot(self.stats(), self._last_now, [], self.drain_log(), self._controls)
        self._last_now, self._controls = snapshot.now, snapshot.controls
        return snapshot

    def drain_log(self) -> list[str]:
        lines = self._call(DrainLog())
        if lines is None and self._gone and not self._told_gone:
            self._told_gone = True
            return [self._gone]
        return lines or []

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else (self._gone or "running")
        fields = dataclasses.asdict(self.settings)
        return f"EngineHost(pid={self.pid}, {state}, preset={fields['preset']!r})"


EngineProcess = EngineHost  # the name the terminal UI knows it by
