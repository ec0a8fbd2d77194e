"""Snapshots of the jam UI's screens: the stage, the help, the set-up.

Each screen is rendered at a fixed size from fixed inputs and its SVG compared with
tests/snapshots/NAME.svg. After a deliberate change to the look, regenerate them with

    LIVEGEN_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_tui_snapshots.py

and look at the new SVGs (any browser shows them) before committing. The stage is fed by
FrozenEngine, a double that returns fixed figures: the real engine's figures change every
run, and these tests are about the drawing only. The Pilot tests in test_tui_app.py drive the
real engine.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Static

from livegen.controls import Controls, JamSettings, RollNote, Stats
from livegen.settings_file import SavedSettings
from livegen.tui.app import JamApp
from livegen.tui.devices import DeviceLists
from livegen.tui.jam_screen import JamScreen
from livegen.tui.preset_info import PresetInfo
from livegen.tui.screens import HelpScreen, SetupScreen
from tests.tui_doubles import SilentEngine

SNAPSHOTS = Path(__file__).parent / "snapshots"
SIZE = (120, 40)


class FrozenEngine(SilentEngine):
    """Fixed stats, roll and log, so a screenshot is the same on every machine."""

    def __init__(self, settings: JamSettings, controls: Controls | None = None) -> None:
        super().__init__(settings, controls)
        self.log = ["engine started (frozen double)", "model: tiny, cpu float32"]

    def now(self) -> float:
        return 10.0

    def stats(self) -> Stats:
        return Stats(
            running=True,
            tokens_per_s=312.0,
            ms_per_token_p50=1.8,
            ms_per_token_p99=4.2,
            lookahead_ms=180.0,
            reaction_ms=240.0,
            input_to_context_ms=11.0,
            late_events=2,
            cpu_percent=34.0,
            recording_path="/recordings/livegen-2026-01-01-120000.mid",
            recording_seconds=83.0,
            model_speaking=True,
            problems=["no audio device found: start JACK or plug in a sound card (MIDI only)"],
        )

    def roll(self, since: float) -> list[RollNote]:
        player = [RollNote("player", p, 90, 2.0 + i * 0.5, 2.4 + i * 0.5) for i, p in
                  enumerate((60, 64, 67, 72))]  # fmt: skip
        model = [RollNote("model", p, 80, 5.0 + i * 0.6, 5.5 + i * 0.6) for i, p in
                 enumerate((71, 67, 65, 62, 60, 55))]  # fmt: skip
        return player + model + [RollNote("model", 48, 70, 8.5, None)]

    def drain_log(self) -> list[str]:
        lines, self.log = self.log, []
        return lines


def fixed_devices(api: str | None) -> DeviceLists:
    return DeviceLists(
        inputs=("Keystation 49 MIDI 1", "system:midi_capture_1"),
        outputs=("FLUID Synth", "system:midi_playback_1"),
        audio=("system (JACK Audio Connection Kit)",),
    )


def fixed_info(name: str) -> PresetInfo:
    return PresetInfo(
        name=name,
        description="solo piano, trained on the music21 corpus",
        parameters=5_300_000,
        context=1024,
        latents=256,
        trained_on="music21 corpus (no Essen), 40k steps",
    )


def make_app() -> JamApp:
    saved = SavedSettings(jam=JamSettings(preset="piano", input="none", output="virtual"))
    return JamApp(
        saved,
        engine_factory=FrozenEngine,
        lister=fixed_devices,
        describe=fixed_info,
        bench=lambda name: "keeps up: dense piano needs ~100 tokens/s, this machine delivers 250",
        presets=lambda current, folder: ["piano", "piano-small"],
        notes=["settings.toml: [controls] temperature out of range: 9.0; default used"],
        settings_file=Path("/nonexistent/settings.toml"),
    )


def check_snapshot(svg: str, name: str, tmp_path: Path) -> None:
    path = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("LIVEGEN_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(svg, encoding="utf-8")
        return
    if not path.exists():  # a renamed or new shot must not pass by writing itself
        pytest.fail(f"{path} missing: run with LIVEGEN_UPDATE_SNAPSHOTS=1 and commit it")
    if svg != path.read_text(encoding="utf-8"):
        actual = tmp_path / f"{name}.svg"
        actual.write_text(svg, encoding="utf-8")
        pytest.fail(
            f"{name} looks different from {path}; the new one is {actual}. If the change is "
            "meant, regenerate with LIVEGEN_UPDATE_SNAPSHOTS=1."
        )


async def wait_until(pilot, condition: Callable[[], bool], what: str) -> None:
    """Let the app run until `condition` holds (checked every 20 ms, for up to 10 s)."""
    deadline = time.monotonic() + 10.0
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never came: {what}")
        await pilot.pause(0.02)


def drawn(app: JamApp) -> bool:
    """What every shot waits for: the engine started and polled (the stage shows the frozen
    engine's figures), and on a set-up screen its device lists and preset bench are in."""
    if not (app.engine_state == "running" and app.roll.notes and app.stats.running):
        return False
    screen = app.screen
    if isinstance(screen, SetupScreen):
        info = str(screen.query_one("#preset-info", Static).content)
        return screen.devices == fixed_devices(None) and "keeps up" in info
    return True


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await wait_until(pilot, lambda: drawn(pilot.app), "the screen's data")
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


SHOTS = [
    # name, terminal size, keys pressed, the screen then on top
    ("stage", SIZE, "adg", JamScreen),  # the status line shows the last key played
    ("stage-80x24", (80, 24), "", JamScreen),  # the classic terminal: still readable
    ("help", SIZE, ["f1"], HelpScreen),
    ("setup", SIZE, ["f2"], SetupScreen),
]


@pytest.mark.parametrize("name,size,keys,screen", SHOTS, ids=[shot[0] for shot in SHOTS])
def test_snapshot(name: str, size: tuple[int, int], keys, screen: type, tmp_path: Path) -> None:
    asyncio.run(_snapshot(name, size, keys, screen, tmp_path))


async def _snapshot(name: str, size: tuple[int, int], keys, screen: type, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
        await settle(pilot)
        assert isinstance(app.screen, screen)
        check_snapshot(app.export_screenshot(simplify=True), name, tmp_path)
        await pilot.press("escape")  # closes a modal screen; on the stage it is panic
        await pilot.pause()
        assert len(app.screen_stack) == 1
