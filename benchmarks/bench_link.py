"""How well livegen follows Ableton Link, with a real second peer in a child process
(tests/link_peer.py) over this machine's loopback:

- join: from livegen's LinkClock being made (it waits ENABLE_DELAY before it enables) until
  it has the peer's tempo;
- tempo change: from the peer committing a new tempo until livegen's clock shows it, read
  every millisecond as the conductor would at its busiest;
- phase: livegen's beat against the peer's own at the same instant (ms at the tempo);
- imposition: how often livegen, joining a session that has only just started (two apps
  opened together), imposes its own tempo on it, enabling at once or after ENABLE_DELAY,
  side by side (--joins per kind; a session a second old was never taken over in 40 joins);
- cost: one refresh of LinkClock (capture the session state, two beatAtTime, the phase) and,
  side by side in the same run, one read of livegen's internal clock (what following Link
  adds to each use of the clock), and aalink's `beat` from a plain thread where aalink is
  installed (it is not a dependency: `pip install aalink` to compare).

    .venv/bin/python benchmarks/bench_link.py [--rounds 5] [--joins 20]

Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.link_peer

from livegen.clock import InternalClock  # noqa: E402
from livegen.link_clock import LinkClock  # noqa: E402
from tests.jam_peers import wait_until  # noqa: E402
from tests.link_peer import LinkPeer  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _poll_until(clock: LinkClock, t0: float, condition, timeout: float) -> float | None:  # noqa: ANN001
    """perf_counter time when condition() first held, refreshing every millisecond."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        clock.refresh(time.perf_counter() - t0)
        if condition():
            return time.perf_counter()
        time.sleep(0.001)
    return None


def one_round(tempo: float, changed: float) -> dict[str, float]:
    peer = LinkPeer(tempo)
    try:
        assert wait_until(lambda: peer.latest() is not None and peer.latest().peers == 0, 5.0)
        t0 = time.perf_counter()
        clock = LinkClock(120.0, t0)
        joined = _poll_until(clock, t0, lambda: abs(clock.tempo - tempo) < 0.01, 5.0)
        phase_ms = []
        for _ in range(20):
            at = time.perf_counter()
            clock.refresh(at - t0)
            assert wait_until(lambda a=at: peer.latest().at > a + 0.05, 2.0)
            error = (clock.beat_at(at - t0) - peer.beat_at(at)) % 4.0
            phase_ms.append(min(error, 4.0 - error) * 60_000 / tempo)
        count = len(peer.reports)
        peer.set_tempo(changed)
        seen = _poll_until(clock, t0, lambda: abs(clock.tempo - changed) < 0.01, 5.0)
        wait_until(lambda: any(r.tempo == changed for r in peer.reports[count:]), 2.0)
        committed = next(r.at for r in peer.reports[count:] if abs(r.tempo - changed) < 0.01)
        clock.close()
    finally:
        peer.close()
    return {
        "join_s": (joined - t0) if joined else float("nan"),
        "tempo_change_ms": (seen - committed) * 1e3 if seen else float("nan"),
        "phase_ms_max": max(phase_ms),
        "phase_ms_median": statistics.median(phase_ms),
    }


def imposed(delay: float) -> bool:
    """Join a session at 97 bpm the moment it starts, livegen asking for 120: True if the
    session ends up at livegen's tempo."""
    peer = LinkPeer(97.0)
    try:
        assert wait_until(lambda: peer.latest() is not None, 5.0)
        t0 = time.perf_counter()
        clock = LinkClock(120.0, t0, enable_delay=delay)
        _poll_until(clock, t0, lambda: clock.peers == 1, 3.0)
        time.sleep(0.5)
        count = len(peer.reports)
        assert wait_until(lambda: len(peer.reports) > count, 2.0)
        clock.close()
        return abs(peer.latest().tempo - 120.0) < 0.01
    finally:
        peer.close()


def read_costs(n: int = 20_000) -> dict[str, float]:
    t0 = time.perf_counter()
    clock, internal = LinkClock(120.0, t0, enable_delay=0.0), InternalClock(120.0)
    costs: dict[str, list[float]] = {"link_refresh_us": [], "internal_beat_us": []}
    for _ in range(n):
        a = time.perf_counter()
        clock.refresh(a - t0)
        b = time.perf_counter()
        internal.beat_at(b - t0)
        c = time.perf_counter()
        costs["link_refresh_us"].append((b - a) * 1e6)
        costs["internal_beat_us"].append((c - b) * 1e6)
    clock.close()
    result = {}
    for name, values in costs.items():
        result[f"{name}_p50"] = _percentile(values, 0.5)
        result[f"{name}_p99"] = _percentile(values, 0.99)
    result.update(_aalink_cost(n))
    return result


def _aalink_cost(n: int) -> dict[str, float | str]:
    """aalink read from a plain thread, as the conductor is: without a running asyncio loop
    it cannot be made at all; with the (deprecated) loop argument, its beat reads."""
    try:
        import aalink
    except ImportError:
        return {"aalink": "not installed"}
    out: dict[str, float | str] = {}

    def plain_thread() -> None:
        try:
            aalink.Link(120.0)
            out["aalink"] = "made without a loop"
        except RuntimeError as error:
            out["aalink"] = f"without a running loop: {error}"
        import asyncio
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            session = aalink.Link(120.0, asyncio.new_event_loop())
        session.enabled = True
        costs = []
        for _ in range(n):
            a = time.perf_counter()
            session.beat  # noqa: B018 - the read is what is measured
            session.phase  # noqa: B018
            costs.append((time.perf_counter() - a) * 1e6)
        session.enabled = False
        out["aalink_beat_phase_us_p50"] = _percentile(costs, 0.5)
        out["aalink_beat_phase_us_p99"] = _percentile(costs, 0.99)

    thread = threading.Thread(target=plain_thread)
    thread.start()
    thread.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--joins", type=int, default=20, help="imposition trials per kind")
    args = parser.parse_args()
    joins = {}
    for delay in (0.0, 0.5):
        joins[delay] = sum(imposed(delay) for _ in range(args.joins))
    rounds = [one_round(97.0 + 3 * i, 140.0 + 3 * i) for i in range(args.rounds)]
    summary: dict[str, object] = {
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}",
        "rounds": args.rounds,
    }
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        summary[f"{key}_median"] = statistics.median(values)
        summary[f"{key}_max"] = max(values)
    summary.update(read_costs())
    summary["imposed_enabling_at_once"] = joins[0.0]
    summary["imposed_enabling_after_500ms"] = joins[0.5]
    summary["joins"] = args.joins
    print(f"machine: {summary['machine']}")
    print(
        f"join (incl. the {0.5:.1f} s enable delay): median {summary['join_s_median']:.3f} s, "
        f"max {summary['join_s_max']:.3f} s over {args.rounds} rounds"
    )
    print(
        f"tempo change followed: median {summary['tempo_change_ms_median']:.1f} ms, "
        f"max {summary['tempo_change_ms_max']:.1f} ms"
    )
    print(
        f"phase vs the peer: median {summary['phase_ms_median_median']:.3f} ms, "
        f"worst {summary['phase_ms_max_max']:.3f} ms"
    )
    print(
        f"one LinkClock refresh: p50 {summary['link_refresh_us_p50']:.2f} us, "
        f"p99 {summary['link_refresh_us_p99']:.2f} us; internal clock read: p50 "
        f"{summary['internal_beat_us_p50']:.2f} us"
    )
    print(
        f"livegen imposed its tempo on a session just started: {joins[0.0]} of {args.joins} joins "
        f"enabling at once, {joins[0.5]} of {args.joins} enabling after 500 ms"
    )
    if "aalink_beat_phase_us_p50" in summary:
        print(
            f"aalink beat+phase read (deprecated loop argument): p50 "
            f"{summary['aalink_beat_phase_us_p50']:.2f} us; {summary['aalink']}"
        )
    else:
        print(f"aalink: {summary['aalink']}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
