"""What the jam UI costs the engine's process: how late a timing thread wakes while it redraws.

    .venv/bin/python benchmarks/bench_tui.py [--seconds S] [--size 120x40] [--json]

The engine's conductor thread (MIDI out, the model's due events) lives in the UI's process,
so every millisecond the UI holds the GIL can delay it. This runs a probe thread that asks to
sleep 1 ms over and over and records how much later than asked it wakes -- first alone, then
while the jam UI (headless Textual, full rendering) draws a busy piano roll and changing meters
at its 15 Hz poll, with Python's default GIL switch interval (5 ms) and with 1 ms, and,
last, with the probe in a process of its own (sharing the CPU, not the GIL). Also prints the mean time of one poll (snapshots + widget updates) and frames drawn.
The engine behind the UI is a synthetic source of notes and figures (this measures the UI,
not the model). Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livegen.benchmark import percentile  # noqa: E402
from livegen.controls import Controls, JamSettings, RollNote, Stats  # noqa: E402
from livegen.settings_file import SavedSettings  # noqa: E402
from livegen.tui.app import JamApp  # noqa: E402
from livegen.tui.devices import DeviceLists  # noqa: E402
from tests.tui_doubles import SilentEngine  # noqa: E402


class BusyEngine(SilentEngine):
    """Notes at about 12 per second from both sides, meters that change every poll."""

    def __init__(self, settings: JamSettings, controls: Controls | None = None) -> None:
        super().__init__(settings, controls)
        self.t0 = time.perf_counter()
        self.rng = random.Random(0)
        self.lines = 0

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def stats(self) -> Stats:
        now = self.now()
        return Stats(
            running=True,
            tokens_per_s=200 + 50 * self.rng.random(),
            ms_per_token_p50=1.5,
            ms_per_token_p99=3.0 + self.rng.random(),
            lookahead_ms=150 + 50 * self.rng.random(),
            cpu_percent=40 * self.rng.random(),
            recording_path="/tmp/livegen-bench.mid",
            recording_seconds=now,
            model_speaking=True,
        )

    def roll(self, since: float) -> list[RollNote]:
        now = self.now()
        notes = []
        start = max(0.0, since) - since % 0.08
        t = start
        while t < now:  # a note every 80 ms, half each side, lasting 0.3 s
            step = int(t / 0.08)
            owner = "player" if step % 2 else "model"
            pitch = 48 + (step * 7) % 36
            end = t + 0.3
            notes.append(RollNote(owner, pitch, 80, t, None if end > now else end))
            t += 0.08
        return notes

    def drain_log(self) -> list[str]:
        self.lines += 1
        return [f"line {self.lines}"] if self.lines % 15 == 0 else []


def probe(seconds: float, stop: threading.Event | None = None) -> list[float]:
    """Milliseconds each 1 ms sleep overran, for `seconds`."""
    late = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and not (stop and stop.is_set()):
        t = time.perf_counter()
        time.sleep(0.001)
        late.append((time.perf_counter() - t - 0.001) * 1e3)
    return late


def summary(late: list[float]) -> dict[str, float]:
    ordered = sorted(late)
    return {
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
        "max_ms": ordered[-1],
        "n": len(ordered),
    }


def _probe_child(seconds: float, queue) -> None:  # noqa: ANN001 - a multiprocessing queue
    queue.put(probe(seconds))


async def with_ui(
    seconds: float, size: tuple[int, int], in_process: bool = True
) -> tuple[list[float], float, int]:
    app = JamApp(
        SavedSettings(),
        engine_factory=BusyEngine,
        lister=lambda api: DeviceLists(),
        bench=None,
        settings_file=Path("/nonexistent/settings.toml"),
    )
    polls: list[float] = []
    original = app.poll

    def timed_poll() -> None:
        t = time.perf_counter()
        original()
        polls.append(time.perf_counter() - t)

    app.poll = timed_poll  # type: ignore[method-assign]
    frames = 0
    async with app.run_test(size=size) as pilot:
        while app.engine is None:
            await pilot.pause(0.05)
        result: list[list[float]] = []
        if in_process:  # where the engine's conductor thread runs today
            thread = threading.Thread(target=lambda: result.append(probe(seconds)))
            thread.start()
            while thread.is_alive():
                await pilot.pause(0.05)
                frames += 1
            thread.join()
        else:  # a process of its own: only the CPU is shared, not the GIL
            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            child = context.Process(target=_probe_child, args=(seconds, queue))
            child.start()
            while child.is_alive() and queue.empty():
                await pilot.pause(0.05)
            result.append(queue.get())
            child.join()
    mean_poll_ms = 1e3 * sum(polls) / max(1, len(polls))
    return result[0], mean_poll_ms, len(polls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", default="120x40")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    results: dict[str, object] = {"size": args.size, "seconds": args.seconds}

    results["alone"] = summary(probe(args.seconds))
    for label, interval, in_process in (
        ("ui_switch_5ms", 0.005, True),
        ("ui_switch_1ms", 0.001, True),
        ("ui_other_process", 0.005, False),
    ):
        sys.setswitchinterval(interval)
        late, poll_ms, polls = asyncio.run(with_ui(args.seconds, (width, height), in_process))
        results[label] = {**summary(late), "poll_ms": poll_ms, "polls": polls}
    sys.setswitchinterval(0.005)

    if not args.json:
        print(f"1 ms sleeps, how late they woke (ms), {args.seconds:g} s each, UI {args.size}")
        print(f"{'':16} {'p50':>7} {'p99':>7} {'max':>7} {'poll ms':>8} {'polls':>6}")
        for key in ("alone", "ui_switch_5ms", "ui_switch_1ms", "ui_other_process"):
            r = results[key]
            extra = f"{r.get('poll_ms', 0):8.2f} {r.get('polls', 0):6d}" if "poll_ms" in r else ""
            print(f"{key:16} {r['p50_ms']:7.3f} {r['p99_ms']:7.3f} {r['max_ms']:7.3f} {extra}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
