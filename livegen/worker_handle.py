"""The engine's handle on a model worker (the decode worker, the audio model's worker).

Both run the same way: a Child (livegen/child.py) in a process of its own, or a thread for
measurements; it greets once with WorkerReady or Failed; after that a reader thread hands each
reply to `on_message`, then WorkerExited when the worker is gone. Sends go through an Outbox
(livegen/outbox.py), so the conductor never blocks on a worker that fell behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from livegen.child import Child
from livegen.kernels.errors import LivegenError
from livegen.messages import Failed, WorkerExited, WorkerReady
from livegen.outbox import Outbox


class WorkerError(LivegenError):
    """A worker could not start (its model did not load) or died."""


def _apart(older: object, newer: object) -> None:
    return None  # no two messages say what one would


class WorkerHandle:
    """launch, wait_ready, send, stop. `run(conn, spec)` is the worker's loop in a thread;
    `entry(conn, spec)` the same in a process of its own. `what` names the worker in errors
    ("the decode worker"); `coalesce` folds messages that wait to be sent (see Outbox)."""

    def __init__(
        self,
        spec: Any,
        on_message: Callable[[object], None],
        *,
        run: Callable[..., None],
        entry: Callable[..., None],
        name: str,
        what: str,
        mode: str = "process",
        coalesce: Callable[[object, object], object | None] = _apart,
    ) -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"worker mode must be 'process' or 'thread', got {mode!r}")
        self.spec, self.on_message, self.what = spec, on_message, what
        thread = mode == "thread"
        self._child = Child(run if thread else entry, (spec,), name, thread=thread)
        self._outbox = Outbox(self._child.send, coalesce, f"{name}-tx")

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def launch(self) -> None:
        """Start loading (returns at once; wait_ready waits)."""
        self._child.launch()

    def wait_ready(self, timeout: float = 120.0) -> WorkerReady:
        """Wait until the model is loaded; returns what the worker says of itself (device,
        sizes). WorkerError with the worker's reason."""
        try:
            first = self._child.first(timeout)
        except EOFError:
            raise WorkerError(f"{self.what} exited while loading the model") from None
        if first is None:
            self.stop()
            raise WorkerError(f"{self.what} did not load the model within {timeout:.0f} s")
        if not isinstance(first, WorkerReady):
            self.stop()
            reason = first.reason if isinstance(first, Failed) else repr(first)
            raise WorkerError(f"the model could not be loaded: {reason}")
        self._child.read(self.on_message, on_end=lambda: self.on_message(WorkerExited()))
        return first

    def send(self, message: object) -> None:
        """Never blocks (see Outbox); a worker that is gone says so: WorkerExited."""
        self._outbox.put(message)

    def stop(self) -> None:
        self._outbox.close()
        self._child.stop()
