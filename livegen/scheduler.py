"""The model's notes waiting for their time, and what has sounded.

The decode worker writes ahead of the clock; its note events wait here until they are due.
A cut (the player played) drops every event not yet sent, by moving to a new epoch: events
still in flight from the worker carry the old epoch and are ignored when they land.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass(order=True)
class ModelEvent:
    due: float  # session seconds
    seq: int
    epoch: int = field(compare=False)
    position: int = field(compare=False)  # the token's position in the context
    on: bool = field(compare=False)
    pitch: int = field(compare=False)
    velocity: int = field(compare=False)
    late: bool = field(compare=False, default=False)  # already counted late on arrival
    # Quantised events wait here until shortly before their time, then snap to the grid with
    # the clock's estimate of that moment (not the one from when the worker wrote them):
    # while `raw` is set, `due` is when to snap and the event has not been sent.
    raw: float | None = field(compare=False, default=None)


class ModelScheduler:
    def __init__(self) -> None:
        self.epoch = 0
        self._heap: list[ModelEvent] = []
        self._seq = 0
        self.last_sent_position = 0  # the context position of the last model event sent

    def add(self, event: ModelEvent) -> bool:
        """Queue an event; False (dropped) if it belongs to an epoch that was cut."""
        if event.epoch != self.epoch:
            return False
        self._seq += 1
        event.seq = self._seq
        heapq.heappush(self._heap, event)
        return True

    def next_due(self) -> float | None:
        return self._heap[0].due if self._heap else None

    def pop_due(self, now: float) -> list[ModelEvent]:
        out = []
        while self._heap and self._heap[0].due <= now:
            event = heapq.heappop(self._heap)
            if event.raw is None:  # a snap is not a send
                self.last_sent_position = max(self.last_sent_position, event.position)
            out.append(event)
        return out

    def cut(self) -> int:
        """Drop everything not yet sent; returns the new epoch."""
        self._heap.clear()
        self.epoch += 1
        return self.epoch
