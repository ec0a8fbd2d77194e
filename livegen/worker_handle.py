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


def _in_process(conn, run: Callable[..., None], spec: Any) -> None:  # noqa: ANN001
    """A worker's process: Ctrl-C is the engine's to handle, then the worker's loop."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run(conn, spec)


class WorkerHandle:
    """launch, wait_ready, send, stop. A kind of worker says `run(conn, spec)`, its loop (in
    a process of its own, or a thread in `mode="thread"`), `name` (its process and threads)
    and `what` (in errors: "the decode worker"); `coalesce` folds messages that wait to be
    sent (see Outbox)."""

    run: Callable[..., None]
    name: str
    what: str

    @staticmethod
    def coalesce(older: object, newer: object) -> object | None:
        return None  # no two messages say what one would

    def __init__(
        self, spec: Any, on_message: Callable[[object], None], mode: str = "process"
    ) -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"worker mode must be 'process' or 'thread', got {mode!r}")
        self.spec, self.on_message = spec, on_message
        thread = mode == "thread"
        target, args = (self.run, (spec,)) if thread else (_in_process, (self.run, spec))
        self._child = Child(target, args, self.name, thread=thread)
        self._outbox = Outbox(self._child.send, self.coalesce, f"{self.name}-tx")

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
