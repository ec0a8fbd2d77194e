"""The jam engine in a process of its own, behind the engine's own methods.

Why: the engine's conductor thread sends the model's notes out at their times. In the UI's
process it would share the GIL with Textual, whose redraws hold it for milliseconds at a time
(benchmarks/bench_tui.py measures how late a timing thread wakes there). In a process of its
own only the CPU is shared. The UI talks to it through a pipe: one small request and reply per
call, a fraction of a millisecond, about 15 a second while nobody plays.

EngineProcess has JamEngine's methods (start, stop, controls, set_controls, play, panic,
now, stats, roll, drain_log), so the app cannot tell the difference, and
snapshot(), which reads what a UI poll needs in one round trip. Errors the
engine raises (a wrong port name, a bad preset, a bad control) are raised again here. If the
engine process dies, the methods stop raising and the stats say so; if the UI dies, the engine
process sees its pipe close, stops the engine and finishes the recording.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import multiprocessing
import signal
import threading
import weakref
from typing import Any

from livegen.controls import Controls, JamSettings, RollNote, Stats
from livegen.kernels.errors import LivegenError

CALL_TIMEOUT = 5.0  # s: a reply slower than this means the engine process is stuck
STOP_TIMEOUT = 30.0  # s: stopping finishes the recording and joins the engine's workers
START_TIMEOUT = 180.0  # s: loading a model on a busy machine
Snapshot = tuple[Stats, float, list[RollNote], list[str], Controls]
CALLS = {"set_controls", "play", "panic", "now", "stats", "roll", "drain_log"}


_RUNNING: weakref.WeakSet[EngineProcess] = weakref.WeakSet()


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


def serve(conn, settings: JamSettings, controls: Controls) -> None:  # noqa: ANN001
    """The engine process: start the engine, then answer calls until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the UI decides when the jam ends
    from livegen.engine import JamEngine

    engine = JamEngine(settings, controls)
    try:
        engine.start()
    except BaseException as error:  # report it, whatever it is: the UI shows it
        conn.send(("raise", _picklable(error)))
        return
    conn.send(("ok", engine.controls))
    try:
        while True:
            try:
                name, args, kwargs = conn.recv()
            except (EOFError, OSError):  # the UI is gone: finish the take
                return
            if name == "stop":
                break
            try:
                if name == "controls":
                    result: Any = engine.controls
                elif name == "snapshot":  # what one UI poll reads, in one round trip
                    now = engine.now()
                    roll = engine.roll(now - args[0])
                    result = (engine.stats(), now, roll, engine.drain_log(), engine.controls)
                elif name in CALLS:
                    result = getattr(engine, name)(*args, **kwargs)
                else:
                    raise ValueError(f"no engine call {name!r}")
                conn.send(("ok", result))
            except Exception as error:
                conn.send(("raise", _picklable(error)))
    finally:
        engine.stop()
        with contextlib.suppress(OSError, ValueError):  # the UI may be gone already
            conn.send(("ok", None))


class EngineProcess:
    """JamEngine's methods, with the engine running in a child process."""

    def __init__(self, settings: JamSettings, controls: Controls | None = None) -> None:
        self.settings = settings
        self._controls = controls if controls is not None else Controls()
        self._conn = None
        self._process = None
        self._lock = threading.Lock()  # the UI thread and the app's workers both call
        self._gone: str | None = None  # why the engine process no longer answers
        self._told_gone = False
        self._last_now = 0.0
        self._stopped = False

    # ---- life -------------------------------------------------------------------------------
    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        # Not a daemon: the engine starts processes of its own (model, audio).
        self._process = context.Process(
            target=serve,
            args=(child, self.settings, self._controls),
            name="livegen-engine",
        )
        self._process.start()
        _RUNNING.add(self)
        child.close()
        self._conn = parent
        if not parent.poll(START_TIMEOUT):
            self._kill()
            raise EngineProcessError(f"the engine did not start within {START_TIMEOUT:.0f} s")
        try:
            kind, value = parent.recv()
        except (EOFError, OSError):
            self._kill()
            raise EngineProcessError("the engine process died while starting") from None
        if kind == "raise":
            self._process.join(timeout=10)
            self._kill()
            raise value
        self._controls = value

    def stop(self) -> None:
        """Stop the engine (it finishes the recording) and its process. Idempotent."""
        with self._lock:
            if self._stopped or self._process is None:
                self._stopped = True
                return
            self._stopped = True
            try:
                self._conn.send(("stop", (), {}))
                if self._conn.poll(STOP_TIMEOUT):
                    self._conn.recv()
            except (EOFError, OSError):
                pass
            self._process.join(timeout=STOP_TIMEOUT)
            if self._process.is_alive():
                self._kill()
            self._conn.close()
            _RUNNING.discard(self)

    def _kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._stopped = True
        _RUNNING.discard(self)

    # ---- calls ------------------------------------------------------------------------------
    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """One request and its reply; None when the engine process is gone or stopped."""
        with self._lock:
            if self._gone or self._stopped or self._conn is None:
                return None
            try:
                self._conn.send((name, args, kwargs))
                if not self._conn.poll(CALL_TIMEOUT):
                    self._gone = (
                        f"the engine stopped answering ({name} took over {CALL_TIMEOUT:g} s)"
                    )
                    return None
                kind, value = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                code = self._process.exitcode if self._process is not None else None
                self._gone = f"the engine process stopped (exit code {code})"
                return None
        if kind == "raise":
            raise value
        return value

    @property
    def controls(self) -> Controls:
        controls = self._call("controls")
        if controls is not None:
            self._controls = controls
        return self._controls

    def set_controls(self, **changes: Any) -> Controls:
        controls = self._call("set_controls", **changes)
        if controls is None:  # no engine to ask: validate here, keep them for a restart
            controls = self._controls.changed(**changes)
        self._controls = controls
        return controls

    def play(self, message) -> None:  # noqa: ANN001 - a mido.Message
        self._call("play", message)

    def panic(self) -> None:
        self._call("panic")

    def now(self) -> float:
        now = self._call("now")
        if now is not None:
            self._last_now = now
        return self._last_now

    def stats(self) -> Stats:
        stats = self._call("stats")
        if stats is None:
            problems = [self._gone] if self._gone else []
            return Stats(running=False, problems=problems)
        return stats

    def roll(self, since: float) -> list[RollNote]:
        return self._call("roll", since) or []

    def snapshot(self, seconds: float) -> Snapshot:
        """stats, now, the roll's last `seconds`, the new log lines and the controls: what the
        UI polls 15 times a second, in one round trip instead of five."""
        snapshot = self._call("snapshot", seconds)
        if snapshot is None:  # gone or stopped: the same answers the single calls give
            return self.stats(), self._last_now, [], self.drain_log(), self._controls
        self._last_now, self._controls = snapshot[1], snapshot[4]
        return snapshot

    def drain_log(self) -> list[str]:
        lines = self._call("drain_log")
        if lines is None and self._gone and not self._told_gone:
            self._told_gone = True
            return [self._gone]
        return lines or []

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else (self._gone or "running")
        fields = dataclasses.asdict(self.settings)
        return f"EngineProcess(pid={self.pid}, {state}, preset={fields['preset']!r})"
