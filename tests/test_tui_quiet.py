"""The stage redraws only what changed (issue 20: redraws of an idle UI made the sound late).

The real app and its real widgets, fed by an engine double whose snapshot the test sets (the
drawing is what is tested; test_tui_app.py drives the real engine). Each stage widget's
refresh() is counted: a poll that brings the same snapshot must refresh nothing, and a poll
that changes one figure refreshes the widget that shows it and no other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable

from textual.widget import Widget

from livegen.controls import Controls, JamSettings, RollNote, Stats
from livegen.settings_file import SavedSettings
from livegen.tui.app import JamApp
from livegen.tui.controls_panel import ControlsPanel
from livegen.tui.meters import Meters
from livegen.tui.pianoroll import PianoRoll
from livegen.tui.status import Legend, ProblemsBanner, StatusLine
from tests.tui_doubles import SilentEngine

STAGE_WIDGETS: tuple[type[Widget], ...] = (
    StatusLine,
    ProblemsBanner,
    PianoRoll,
    Legend,
    Meters,
    ControlsPanel,
)


class SetEngine(SilentEngine):
    """Its snapshot is whatever the test put in `stats`, `time` and `notes`."""

    def __init__(self, settings: JamSettings, controls: Controls | None = None) -> None:
        super().__init__(settings, controls)
        self.figures = Stats(running=True, tokens_per_s=100.0)
        self.time = 10.0
        self.notes: list[RollNote] = []

    def now(self) -> float:
        return self.time

    def stats(self) -> Stats:
        return self.figures

    def roll(self, since: float) -> list[RollNote]:
        return list(self.notes)

    def drain_log(self) -> list[str]:
        return []


async def wait_until(pilot, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10.0
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never came: {what}")
        await pilot.pause(0.02)


def count_refreshes(app: JamApp) -> Counter[str]:
    """Counts each stage widget's refresh() calls from now on, by widget class."""
    counts: Counter[str] = Counter()
    for kind in STAGE_WIDGETS:
        widget = app.jam_screen.query_one(kind)
        original = widget.refresh

        def counted(*args, _original=original, _name=kind.__name__, **kwargs):  # noqa: ANN002
            counts[_name] += 1
            return _original(*args, **kwargs)

        widget.refresh = counted  # type: ignore[method-assign]
    return counts


def test_a_poll_redraws_only_what_changed() -> None:
    asyncio.run(_only_what_changed())


async def _only_what_changed() -> None:
    # poll_hz tiny: the test calls poll() itself, so it knows what each poll brought
    app = JamApp(SavedSettings(jam=JamSettings(input="none")), engine_factory=SetEngine,
                 bench=None, poll_hz=0.01)  # fmt: skip
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.engine_state == "running", "the engine")
        engine = app.engine
        assert isinstance(engine, SetEngine)
        app.poll()
        await pilot.pause()
        counts = count_refreshes(app)

        async def poll() -> Counter[str]:
            counts.clear()
            app.poll()
            await pilot.pause()
            return Counter(counts)

        # idle: the same figures, an empty roll while the session clock runs on
        for _ in range(5):
            engine.time += 1 / 15
            assert await poll() == Counter(), "an unchanged snapshot redrew the stage"
        # a figure the meters round away (100.2 tok/s shows as 100): still nothing
        engine.figures = dataclasses.replace(engine.figures, tokens_per_s=100.2)
        assert await poll() == Counter()
        # a figure that shows: the meters alone
        engine.figures = dataclasses.replace(engine.figures, tokens_per_s=250.0)
        assert set(await poll()) == {"Meters"}
        assert "250 tok/s" in app.jam_screen.query_one(Meters).shown.plain
        # a note: the roll alone; while it sounds, each poll moves the roll on
        engine.notes = [RollNote("model", 60, 80, start=engine.time - 0.5, end=None)]
        assert set(await poll()) == {"PianoRoll"}
        engine.time += 1 / 15
        assert set(await poll()) == {"PianoRoll"}
        # a control changed by a key: the panel; the status line too for the mode
        counts.clear()
        await pilot.press("2")
        await pilot.pause()
        assert engine.controls.temperature == 1.05
        assert set(counts) == {"ControlsPanel"}
        counts.clear()
        await pilot.press("m")
        await pilot.pause()
        assert set(counts) == {"ControlsPanel", "StatusLine"}  # the meters' text is the same
        # a problem: the banner appears, and takes a row from the roll (resized: redrawn)
        engine.notes = []
        app.poll()
        engine.figures = dataclasses.replace(engine.figures, problems=["no audio device found"])
        assert set(await poll()) == {"ProblemsBanner", "PianoRoll"}
        assert "no audio device found" in app.jam_screen.query_one(ProblemsBanner).render().plain
