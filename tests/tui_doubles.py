"""An engine double for the jam UI's drawing: it holds controls and ignores everything else.

The snapshot tests (fixed figures) and benchmarks/bench_tui.py (busy synthetic figures)
subclass it and supply now(), stats(), roll() and drain_log(); snapshot() reads them as
EngineProcess.snapshot does. Pilot tests that check what a control does drive the real
engine, never this.
"""

from __future__ import annotations

import mido

from livegen.controls import Controls, JamSettings


class SilentEngine:
    """The engine's control surface (livegen.tui.app.Engine) with no sound and no model."""

    def __init__(self, settings: JamSettings, controls: Controls | None = None) -> None:
        self._controls = controls or Controls()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    @property
    def controls(self) -> Controls:
        return self._controls

    def set_controls(self, **changes) -> Controls:
        self._controls = self._controls.changed(**changes)
        return self._controls

    def play(self, message: mido.Message) -> None:
        pass

    def panic(self) -> None:
        pass

    def snapshot(self, seconds: float) -> tuple:
        now = self.now()
        return self.stats(), now, self.roll(now - seconds), self.drain_log(), self.controls
