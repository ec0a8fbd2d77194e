"""Start the jam UI from the saved settings and the command line's overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from platformdirs import user_music_dir

from livegen.controls import Mode
from livegen.settings_file import load_settings, settings_path


def default_record_dir() -> str:
    """Where sessions are recorded unless the settings say otherwise: ~/Music/livegen."""
    return str(Path(user_music_dir()) / "livegen")


def launch(
    preset: str | None = None,
    midi_in: str | None = None,
    midi_out: str | None = None,
    mode: str | None = None,
) -> int:
    """Run the UI until the musician quits; the overrides hold for this session only."""
    from livegen.engine import JamEngine
    from livegen.tui.app import JamApp

    saved, notes = load_settings()
    overrides = {"preset": preset, "input": midi_in, "output": midi_out}
    settings = dataclasses.replace(
        saved.jam, **{k: v for k, v in overrides.items() if v is not None}
    )
    if settings.record_dir is None:
        settings = dataclasses.replace(settings, record_dir=default_record_dir())
    controls = saved.controls if mode is None else saved.controls.changed(mode=Mode(mode))
    app = JamApp(
        saved,
        engine_factory=JamEngine,
        settings=settings,
        controls=controls,
        notes=notes,
        settings_file=settings_path(),
    )
    try:
        app.run()
    finally:
        if app.engine is not None:  # quit mid-start, or the UI died: still finish the take
            app.engine.stop()
    return app.return_code or 0
