"""A child the engine talks to over a pipe: the decode worker and the audio process.

Both are started the same way: spawned, a fresh interpreter that does not inherit the
engine's threads and MIDI clients. Each greets once when it is ready (or says why it cannot
be), then its messages go to a reader thread. Sends take a lock: the conductor sends, and
stop() may run from another thread (the engine's, or the reader's). "stop" asks the child
to end (Stop); one that will not is killed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from livegen.messages import Stop


class Child:
    def __init__(
        self,
        target: Callable[..., None],
        args: tuple,
        name: str,
        thread: bool = False,
        daemon: bool = True,
    ) -> None:
        """`target(conn, *args)` runs in a new process, or in a thread of this one (the
        decode worker's thread mode, for measurements). A child that starts processes of its
        own (the engine's) must not be a daemon; it ends when its pipe closes instead."""
        self.target, self.args, self.name, self.thread = target, args, name, thread
        self.daemon = daemon
        self._conn: Any = None
        self._host: Any = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def launch(self) -> None:
        """Start it (returns at once; `first` waits for its greeting)."""
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        host = threading.Thread if self.thread else context.Process
        self._host = host(
            target=self.target, args=(theirs, *self.args), name=self.name, daemon=self.daemon
        )
        self._host.start()
        if not self.thread:
            theirs.close()  # the child's end lives in the child: its exit closes the pipe
        self._conn = ours

    def first(self, timeout: float) -> Any:
        """Its first message, or None if none came within `timeout` s. EOFError: it exited."""
        if not self._conn.poll(timeout):
            return None
        return self._conn.recv()

    def ask(self, message: object, timeout: float) -> Any:
        """Send and wait for the reply (the caller keeps one question at a time): None if none
        came within `timeout`; EOFError if the child is gone."""
        with self._lock:
            if self._conn is None:
                raise EOFError("not started")
            try:
                self._conn.send(message)
                if not self._conn.poll(timeout):
                    return None
                return self._conn.recv()
            except (OSError, ValueError) as error:
                raise EOFError(str(error)) from None

    def read(self, on_message: Callable[[Any], bool | None], on_end=None) -> None:  # noqa: ANN001
        """Hand each later message to `on_message` on a reader thread, until it returns False
        or the pipe closes; then `on_end()`, if given (not after a False)."""
        conn = self._conn

        def loop() -> None:
            while True:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break
                if on_message(message) is False:
                    return
            if on_end is not None:
                on_end()

        self._reader = threading.Thread(target=loop, name=f"{self.name}-rx", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        """The child process' id (None in thread mode, or before launch)."""
        return None if self.thread or self._host is None else self._host.pid

    @property
    def started(self) -> bool:
        """Launched and not stopped."""
        return self._conn is not None

    @property
    def exitcode(self) -> int | None:
        """The process' exit code once it ended (None while it runs, or in thread mode)."""
        return None if self.thread or self._host is None else self._host.exitcode

    def send(self, message: object) -> bool:
        """False if it was not sent: not started, stopped, or the child is gone."""
        with self._lock:
            if self._conn is None:
                return False
            try:
                self._conn.send(message)
            except (OSError, ValueError):
                return False
        return True

    def stop(self, timeout: float = 5.0, *, ask: bool = True) -> None:
        """Ask it to stop (unless `ask` is False: it was asked already), wait (kill a process
        that will not), then its last messages are read and the pipe closed. Safe to call
        twice, and from the reader thread."""
        if self._conn is None:
            return
        if ask:
            self.send(Stop())
        host = self._host
        if host is not None:
            host.join(timeout=timeout)
            if not self.thread and host.is_alive():
                host.kill()
                host.join(timeout=2)
        reader = self._reader
        ended = host is None or not host.is_alive()  # a stuck thread keeps its end open
        if reader is not None and reader is not threading.current_thread() and ended:
            reader.join(timeout=timeout)  # it ends with the child's last words
        with self._lock:
            conn, self._conn = self._conn, None
        with contextlib.suppress(OSError):
            conn.close()
