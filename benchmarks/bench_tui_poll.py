"""What one poll of the jam UI costs on the UI thread: idle (the same snapshot every time),
ticking (idle, but the stats move as a real engine's do) and busy (bench_tui's BusyEngine:
notes at 12/s, meters that move), in CPU time.

    .venv/bin/python benchmarks/bench_tui_poll.py [--polls 3000] [--frames 300]

It measures the checkout in the current directory (run it from a repository root): the same
script, run from an older checkout with that checkout's .venv, gives the before figures.

The real JamApp, headless (Textual's run_test, 120x40), polled by this script instead of its
timer so each poll's snapshot is known. "idle poll": the snapshot read into the stage, with no
redraw due (issue 20: an idle UI must cost the sound nothing). "ticking poll": nobody plays,
but the recording's length and the CPU figure change at every poll, as a real idle engine's
do (the meters' text, m:ss, changes once a second), each poll drawn. "busy poll": a moving
roll and meters; "busy poll + draw": that poll and the frame Textual then draws. Only
public names of the app are used, so the script runs unchanged on older checkouts. Prints
figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the checkout measured (see above)

from benchmarks.bench_tui import BusyEngine  # noqa: E402 - the checkout's path first
from livegen.controls import Stats  # noqa: E402
from livegen.settings_file import SavedSettings  # noqa: E402
from livegen.tui.app import JamApp  # noqa: E402
from livegen.tui.devices import DeviceLists  # noqa: E402
from tests.tui_doubles import SilentEngine  # noqa: E402


class IdleEngine(SilentEngine):
    """Running, nobody playing: the clock moves, nothing else does."""

    def now(self) -> float:
        return time.monotonic()

    def stats(self) -> Stats:
        return Stats(running=True)

    def roll(self, since: float) -> list:
        return []

    def drain_log(self) -> list[str]:
        return []


class TickingEngine(IdleEngine):
    """Idle, but its stats change at every poll, as a real engine's do."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - SilentEngine's
        super().__init__(*args, **kwargs)
        self.polls = 0

    def stats(self) -> Stats:
        self.polls += 1
        cpu = 3.0 + 0.1 * (self.polls % 3)
        take, seconds = "/recordings/take.mid", self.polls / 15
        return Stats(running=True, cpu_percent=cpu, recording_path=take, recording_seconds=seconds)


def make_app(engine_factory) -> JamApp:  # noqa: ANN001 - an engine class
    return JamApp(
        SavedSettings(),
        engine_factory=engine_factory,
        lister=lambda api: DeviceLists(),
        bench=None,
        settings_file=Path("/nonexistent/settings.toml"),
        poll_hz=0.01,  # its own timer all but off: the script polls
    )


async def measure(engine_factory, polls: int, draw: bool) -> tuple[float, float]:
    """Mean CPU ms of one poll, and of one poll plus the frame drawn after it."""
    app = make_app(engine_factory)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.engine is None:
            await pilot.pause(0.05)
        app.poll()
        await pilot.pause()
        in_poll = 0.0
        start = time.process_time()
        for i in range(polls):
            t = time.process_time()
            app.poll()
            in_poll += time.process_time() - t
            if draw or i % 50 == 0:
                await pilot.pause()  # the frame Textual draws for what changed
        total = time.process_time() - start
    return 1e3 * in_poll / polls, 1e3 * total / polls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=3000, help="idle polls")
    parser.add_argument("--frames", type=int, default=300, help="busy polls, each drawn")
    args = parser.parse_args()
    idle_ms, _ = asyncio.run(measure(IdleEngine, args.polls, draw=False))
    tick_ms, tick_drawn_ms = asyncio.run(measure(TickingEngine, args.frames, draw=True))
    busy_ms, busy_drawn_ms = asyncio.run(measure(BusyEngine, args.frames, draw=True))
    print(f"idle poll            {1e3 * idle_ms:8.1f} us CPU  (mean of {args.polls})")
    print(f"ticking poll         {1e3 * tick_ms:8.1f} us CPU  (mean of {args.frames})")
    print(f"ticking poll + draw  {1e3 * tick_drawn_ms:8.1f} us CPU")
    print(f"busy poll            {1e3 * busy_ms:8.1f} us CPU  (mean of {args.frames})")
    print(f"busy poll + draw     {1e3 * busy_drawn_ms:8.1f} us CPU")
    result = {
        "bench": "tui_poll",
        "idle_poll_us": round(1e3 * idle_ms, 1),
        "ticking_poll_us": round(1e3 * tick_ms, 1),
        "ticking_poll_and_draw_us": round(1e3 * tick_drawn_ms, 1),
        "busy_poll_us": round(1e3 * busy_ms, 1),
        "busy_poll_and_draw_us": round(1e3 * busy_drawn_ms, 1),
        "polls": args.polls,
        "frames": args.frames,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
