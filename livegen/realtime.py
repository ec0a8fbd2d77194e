"""Real-time scheduling for livegen's own JACK threads, and what the audio server allows.

A JACK server started without real-time scheduling (`jackd --no-realtime`, or one whose
user has no rtprio limit) runs every client's process thread as an ordinary thread: then
anything else that wants a CPU just then (the terminal UI redrawing, the model decoding, a
compiler) can make a 2.7 ms cycle late. livegen's own process threads (the audio callback's,
and the MIDI ports' that python-rtmidi opens) are made SCHED_FIFO here when the server left
them ordinary and the system allows it (root, or an rtprio limit as the `audio` group of a
JACK set-up has). Threads the server already made real-time are left as they are.

Linux only: elsewhere schedule() says "unknown" and nothing is reported.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

# Used only where the server left a thread ordinary (so none of its own is real-time): above
# every ordinary thread and the audio process's GIL holder (10), below the kernel's threaded
# interrupts (50).
CLIENT_PRIORITY = 20
# Set (to anything) to leave livegen's threads as the audio server made them: what livegen did
# before it raised them, for measuring (benchmarks/bench_tui_jam.py) or where real-time
# threads are unwanted.
OPT_OUT = "LIVEGEN_NO_REALTIME"


def thread_ids() -> set[int]:
    """The ids of this process's threads (empty where /proc is missing)."""
    try:
        return {int(name) for name in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def is_realtime(tid: int = 0) -> bool:
    """Whether a thread (0: the calling one) runs under a real-time policy."""
    try:
        return os.sched_getscheduler(tid) in (os.SCHED_FIFO, os.SCHED_RR)
    except (AttributeError, OSError):
        return False


def make_realtime(tid: int = 0, priority: int = CLIENT_PRIORITY) -> bool:
    """SCHED_FIFO for a thread (0: the calling one) unless it is real-time already. True when
    it is real-time afterwards; False where the system does not allow it (no rtprio)."""
    if is_realtime(tid):
        return True
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError):
        return False
    return True


class NewThreads:
    """What new_threads_realtime found: set `wanted` False inside the block to leave the new
    threads alone (they are not a JACK client's); `states` holds, afterwards, one of
    "server", "livegen" or "ordinary" per new thread (see schedule())."""

    def __init__(self) -> None:
        self.wanted = True
        self.states: list[str] = []


@contextlib.contextmanager
def new_threads_realtime(priority: int = CLIENT_PRIORITY) -> Iterator[NewThreads]:
    """Make real-time the threads that appear in this process inside the block (a JACK
    client's process and notification threads, opened by a library that does not say which
    they are)."""
    before = thread_ids()
    found = NewThreads()
    try:
        yield found
    finally:
        if found.wanted:
            # Not a Python thread that another thread started meanwhile: those run Python
            # code, and a real-time one that spins would starve the rest.
            python = {thread.native_id for thread in threading.enumerate()}
            new = sorted(thread_ids() - before - python)
            found.states = [schedule(tid, priority) for tid in new]
            for state in found.states:
                SEEN[state] = SEEN.get(state, 0) + 1


def schedule(tid: int = 0, priority: int = CLIENT_PRIORITY) -> str:
    """Make a thread (0: the calling one) real-time unless it is already. Returns who made it
    real-time: "server" (the audio server did), "livegen" (we did), "ordinary" (not
    allowed: any busy thread on the machine can make it late); "unknown" off Linux (macOS'
    audio threads are time-constraint threads, which POSIX's calls do not see)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "sched_getscheduler"):
        return "unknown"
    if is_realtime(tid):
        return "server"
    if os.environ.get(OPT_OUT):
        return "ordinary"
    return "livegen" if make_realtime(tid, priority) else "ordinary"


# How many JACK threads of this process new_threads_realtime found in each state.
SEEN: dict[str, int] = {}


def realtime_allowed() -> bool:
    """Whether this process may make a thread real-time (root with CAP_SYS_NICE, or an rtprio
    limit): tried on a throwaway thread, since limits, capabilities and containers all have a
    say."""
    allowed: list[bool] = []

    def attempt() -> None:
        allowed.append(make_realtime(0, 1))

    thread = threading.Thread(target=attempt, name="livegen-rt-check")
    thread.start()
    thread.join()
    return bool(allowed and allowed[0])


README_HINT = "README: Sound set-up"


def scheduling_report(audio: str | None, midi: dict[str, int]) -> str | None:
    """What to tell the musician when the audio server did not run the sound's threads
    real-time (`audio`: the callback thread's state, see schedule(); `midi`: how many of the
    JACK MIDI clients' threads are in each state, SEEN): one line, or None when the server
    gave them real-time scheduling."""
    states = {audio} | {state for state, count in midi.items() if count}
    if "ordinary" in states:
        return (
            "no real-time scheduling for the sound: the audio server runs livegen's threads "
            f"as ordinary ones and livegen may not raise them (no rtprio limit, or {OPT_OUT} "
            "set), so a busy machine (this UI included) makes xruns. Run JACK with real-time "
            f"scheduling and give your user an rtprio limit ({README_HINT})"
        )
    if "livegen" in states:
        return (
            "JACK runs without real-time scheduling: livegen made its own audio and MIDI "
            "threads real-time, but JACK's own can still be late on a busy machine (xruns). "
            f"Start JACK with real-time scheduling, e.g. jackd -R ({README_HINT})"
        )
    return None
