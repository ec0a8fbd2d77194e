"""Live preset swap with real parts: a JACK server (dummy driver), a keyboard and a listener on
the engine's MIDI ports, tiny real presets. Another model loads beside the playing one, takes
over at a turn boundary with the jam's context, and answers; a wrong name or a model that
cannot load is said, and the old model plays on."""

from __future__ import annotations

import os
from pathlib import Path

from livegen.controls import Controls
from livegen.engine import JamEngine
from tests.jack import JackServer
from tests.jam_peers import (
    LIVEGEN_OUT,
    Captured,
    Keyboard,
    Listener,
    answer_ends,
    jack_settings,
    stop_session,
    strictly_unmatched,
    wait_until,
)
from tests.presets import tiny_preset


def _answered(engine: JamEngine, since: float) -> bool:
    return wait_until(
        lambda: any(n.owner == "model" and n.start > since for n in engine.roll(since)), 5.0
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_another_preset_takes_over_mid_jam(jack512: JackServer, tmp_path: Path) -> None:
    other = tiny_preset(tmp_path / "b", "other", context=128, latents=16, seed=1)
    broken = tiny_preset(tmp_path / "c", "broken", seed=2)
    (broken.parent / "broken" / "model.safetensors").write_bytes(b"not a model")
    engine = JamEngine(jack_settings(tmp_path, seed=3), Controls(silence_seconds=0.3))
    keyboard = listener = None
    log: list[str] = []

    def said(words: str) -> bool:
        log.extend(engine.drain_log())
        return any(words in line for line in log)

    try:
        engine.start()
        listener = Listener(jack512)
        listener.connect(LIVEGEN_OUT)
        keyboard = Keyboard(jack512)
        keyboard.connect()
        old_pid = engine.worker.pid
        assert wait_until(lambda: engine.stats().preset == "tiny")
        # A wrong name and a model that cannot load: said, and the old model plays on.
        engine.swap_preset("no such preset")
        assert wait_until(lambda: said("preset swap to 'no such preset' failed"))
        engine.swap_preset(str(broken))
        assert wait_until(lambda: said(f"preset swap to {str(broken)!r} failed"), 30.0), log
        mark = engine.now()
        keyboard.phrase([60, 64, 67])
        assert _answered(engine, mark)
        # Mid-jam, while the model answers: the other preset loads beside it and takes over
        # when its turn is over.
        engine.swap_preset(str(other))
        assert wait_until(lambda: engine.stats().preset == "other", 30.0)
        assert wait_until(lambda: said("took over in"))
        assert wait_until(lambda: engine.stats().preset_swap_seconds is not None)
        stats = engine.stats()
        assert stats.preset_swap_seconds > 0 and stats.preset_swap is None
        assert not stats.problems, stats.problems
        assert engine.worker.pid != old_pid
        assert wait_until(lambda: not _alive(old_pid), 10.0)  # the old worker ended
        # The new model answers the player, with what was played before in its context.
        mark = engine.now()
        keyboard.phrase([62, 65, 69])
        assert _answered(engine, mark)
        assert answer_ends(engine)
        # No note left sounding on "livegen out", before any stop.
        heard = lambda: [Captured(t, tuple(d)) for t, d in list(listener.events)]  # noqa: E731
        assert wait_until(lambda: strictly_unmatched(heard()) == {}), (
            strictly_unmatched(heard()),
            [(e.seconds, e.data) for e in heard() if e.channel == 1],
            log + engine.drain_log(),
        )
    finally:
        stop_session(engine, keyboard)
        if listener is not None:
            listener.close()
