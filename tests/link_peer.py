"""A real Ableton Link peer for the tests, in its own process (as another app on the network
would be): `LinkPeer(tempo)` starts it; it reports its own beat timeline ten times a second,
stamped with time.perf_counter() (the same clock in every process on this machine), so a
test can ask what beat the peer was on when livegen's notes were heard; `set_tempo` changes
the session's tempo as a musician would on the other app.

Run as `python -m tests.link_peer TEMPO [ENABLE_DELAY]`; on stdin, `tempo BPM` or `quit`.
`python -m tests.link_peer probe SECONDS` prints how many peers a fresh peer sees.
"""

from __future__ import annotations

import bisect
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPORT_EVERY = 0.1
QUANTUM = 4.0


@dataclass(frozen=True)
class Report:
    at: float  # perf_counter
    beat: float  # the peer's beat at that moment
    tempo: float
    peers: int


class LinkPeer:
    def __init__(self, tempo: float, enable_delay: float = 0.0) -> None:
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.link_peer", str(tempo), str(enable_delay)],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.reports: list[Report] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            at, beat, tempo, peers = line.split()
            self.reports.append(Report(float(at), float(beat), float(tempo), int(peers)))

    def latest(self) -> Report | None:
        return self.reports[-1] if self.reports else None

    def set_tempo(self, tempo: float) -> None:
        self.process.stdin.write(f"tempo {tempo}\n")
        self.process.stdin.flush()

    def beat_at(self, at: float) -> float:
        """The peer's beat at perf_counter time `at`, between the two reports around it (its
        timeline is a straight line between tempo changes)."""
        times = [r.at for r in self.reports]
        i = min(max(1, bisect.bisect(times, at)), len(times) - 1)
        a, b = self.reports[i - 1], self.reports[i]
        return a.beat + (b.beat - a.beat) * (at - a.at) / (b.at - a.at)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=2)


def _report(session, clock) -> None:  # noqa: ANN001
    before = time.perf_counter()
    micros = clock.micros()
    after = time.perf_counter()
    state = session.captureAppSessionState()
    beat = state.beatAtTime(micros, QUANTUM)
    print(f"{(before + after) / 2:.6f} {beat:.6f} {state.tempo():.4f} {session.numPeers()}")
    sys.stdout.flush()


def _read_commands(commands) -> None:  # noqa: ANN001
    for line in sys.stdin:
        commands.put(line)
    commands.put("quit")  # stdin closed: the test that started this peer is gone


def _serve(tempo: float, enable_delay: float) -> None:
    import queue

    import link

    time.sleep(enable_delay)  # as livegen does: the Link object is made when it is enabled
    session = link.Link(tempo)
    clock = session.clock()
    session.enabled = True
    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_commands, args=(commands,), daemon=True).start()
    while True:
        _report(session, clock)
        try:
            words = commands.get(timeout=REPORT_EVERY).split()
        except queue.Empty:
            continue
        if words == ["quit"]:
            session.enabled = False
            return
        state = session.captureAppSessionState()
        state.setTempo(float(words[1]), clock.micros())
        session.commitAppSessionState(state)
        # The report right after a change stamps when it was made (benchmarks/bench_link.py).


def other_sessions(seconds: float = 1.5) -> int:
    """How many Link peers a fresh peer sees within `seconds` (0: the network is ours). Run in
    a process of its own, so the tests' process holds no Link state before they make theirs."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.link_peer", "probe", str(seconds)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the Link probe failed: {done.stderr[-500:]}")
    return int(done.stdout.split()[-1])


def _probe(seconds: float) -> None:
    import link

    session = link.Link(60.0)
    session.enabled = True
    deadline = time.perf_counter() + seconds
    while session.numPeers() == 0 and time.perf_counter() < deadline:
        time.sleep(0.02)
    print(session.numPeers())
    session.enabled = False


if __name__ == "__main__":
    if sys.argv[1] == "probe":
        _probe(float(sys.argv[2]))
    else:
        _serve(float(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
