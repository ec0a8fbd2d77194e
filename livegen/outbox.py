"""Messages for a child process, sent by a thread of their own so the sender never blocks.

A pipe holds 64 KB. A decode worker that falls behind (a flood of player notes on a loaded
machine, a slow model) stops reading, the pipe fills, and a plain `send` would then block the
conductor: no MIDI out, no meters, no panic, until the worker catches up. The outbox takes
each message at once; its thread does the blocking. While messages wait, consecutive ones
that `coalesce` can fold (the player's events: one prefill instead of hundreds) are folded,
so a backlog stays as small as what it says.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class Outbox:
    def __init__(
        self,
        send: Callable[[object], object],
        coalesce: Callable[[object, object], object | None],
        name: str,
    ) -> None:
        """`send(message)` may block; `coalesce(older, newer)` returns one message that says
        both, or None when they must stay apart."""
        self._send, self._coalesce = send, coalesce
        self._waiting: deque[object] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, message: object) -> None:
        """Queue a message (never blocks)."""
        with self._lock:
            if self._waiting:
                merged = self._coalesce(self._waiting[-1], message)
                if merged is not None:
                    self._waiting[-1] = merged
                    return
            self._waiting.append(message)
            self._wake.notify()

    @property
    def backlog(self) -> int:
        return len(self._waiting)

    def close(self, timeout: float = 5.0) -> None:
        """Send what waits, then end the thread (gives up after `timeout` s)."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closing:
                    self._wake.wait()
                if not self._waiting:
                    return  # closing, and all was sent
                message = self._waiting.popleft()
            self._send(message)
