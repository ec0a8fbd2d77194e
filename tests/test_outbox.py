"""The outbox: a sender that never blocks on a child that stopped reading."""

from __future__ import annotations

import threading
import time

from livegen.outbox import Outbox


def test_put_never_blocks_on_a_stalled_child_and_folds_what_waits() -> None:
    sent: list[tuple] = []
    reading = threading.Event()

    def slow_send(message: tuple) -> None:  # a child whose pipe is full until it reads
        reading.wait(5.0)
        sent.append(message)

    def fold(older: tuple, newer: tuple) -> tuple | None:
        return ("n", older[1] + newer[1]) if older[0] == newer[0] == "n" else None

    outbox = Outbox(slow_send, fold, "test-tx")
    start = time.perf_counter()
    outbox.put(("n", 1))  # taken by the thread, which now waits on the child
    time.sleep(0.05)
    for _ in range(10_000):
        outbox.put(("n", 1))
    outbox.put(("cut",))
    outbox.put(("n", 5))
    assert time.perf_counter() - start < 1.0  # nothing waited for the child
    assert outbox.backlog == 3  # 10,000 folded into one, then the cut, then one more
    reading.set()
    outbox.close()
    assert sent == [("n", 1), ("n", 10_000), ("cut",), ("n", 5)]  # order kept, nothing lost
