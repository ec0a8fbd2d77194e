"""Start the jam UI from the saved settings and the command line's overrides."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from platformdirs import user_log_dir, user_music_dir

from livegen.controls import ClockSource, Mode
from livegen.link_clock import INSTALL_HINT, link_available
from livegen.settings_file import ENV_DIR, config_dir, load_settings, settings_path

LOG_NAME = "jam.log"


def default_record_dir() -> str:
    """Where sessions are recorded unless the settings say otherwise: ~/Music/livegen."""
    return str(Path(user_music_dir()) / "livegen")


def log_path() -> Path:
    """Where the engine's processes write what they print (beside the settings in tests)."""
    folder = config_dir() if os.environ.get(ENV_DIR) else Path(user_log_dir("livegen"))
    return folder / LOG_NAME


@contextmanager
def quit_on_hangup(app) -> Iterator[None]:  # noqa: ANN001 - a JamApp
    """SIGHUP (the terminal closed, ssh dropped) and SIGTERM quit the UI the way Ctrl-Q does:
    notes off, the recording finished, settings saved. The handler only asks the app's event
    loop (thread-safe, so safe from a signal handler) to run its quit action."""

    def ask_quit(signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            # The terminal is gone, and a hangup comes with SIGCONT now and then, on which
            # Textual restarts its output: a new writer thread that dies on the dead terminal,
            # and the quit's last writes then wait on it for ever. Nothing to resume into.
            # (Handlers run in signal-number order: this one before SIGCONT's.)
            signal.signal(signal.SIGCONT, signal.SIG_DFL)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not inside the loop yet (or any more): launch's finally stops
            raise KeyboardInterrupt from None
        loop.call_soon_threadsafe(app.call_next, app.action_quit)

    previous = {sig: signal.signal(sig, ask_quit) for sig in (signal.SIGHUP, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def terminal_for_ui_only(log: Path) -> Iterator[None]:
    """Keep the terminal for Textual; send everything else written to stdout/stderr (the
    decode worker's and the audio process's warnings, FluidSynth's messages) to `log`.

    Child processes inherit file descriptors 1 and 2, so those now point at the log; Textual
    draws through sys.__stderr__ and sizes itself from sys.__stdout__, which become
    duplicates of the terminal. Everything is put back on the way out."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    originals = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    term_out, term_err = os.dup(1), os.dup(2)
    with open(log, "a", encoding="utf-8") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
    out = os.fdopen(term_out, "w", encoding="utf-8", errors="replace", closefd=False)
    err = os.fdopen(term_err, "w", encoding="utf-8", errors="replace", closefd=False)
    sys.stdout = sys.__stdout__ = out
    sys.stderr = sys.__stderr__ = err
    try:
        yield
    finally:
        out.flush()
        err.flush()
        os.dup2(term_out, 1)
        os.dup2(term_err, 2)
        os.close(term_out)
        os.close(term_err)
        sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__ = originals


def launch(
    preset: str | None = None,
    midi_in: str | None = None,
    midi_out: str | None = None,
    mode: str | None = None,
    clock: str | None = None,
) -> int:
    """Run the UI until the musician quits; the overrides hold for this session only."""
    from livegen.engine_host import EngineProcess
    from livegen.tui.app import JamApp

    saved, notes = load_settings()
    overrides = {"preset": preset, "input": midi_in, "output": midi_out}
    settings = dataclasses.replace(
        saved.jam, **{k: v for k, v in overrides.items() if v is not None}
    )
    if settings.record_dir is None:
        settings = dataclasses.replace(settings, record_dir=default_record_dir())
    controls = saved.controls if mode is None else saved.controls.changed(mode=Mode(mode))
    if clock is not None:
        controls = controls.changed(clock=ClockSource(clock))
    if controls.clock is ClockSource.LINK and not link_available():  # saved, then uninstalled
        controls = controls.changed(clock=ClockSource.INTERNAL)
        notes = [*notes, f"internal clock: {INSTALL_HINT}"]
    log = log_path()
    with terminal_for_ui_only(log):
        app = JamApp(
            saved,
            engine_factory=EngineProcess,  # JamEngine, in a process of its own
            settings=settings,
            controls=controls,
            notes=notes,
            settings_file=settings_path(),
            process_log=log,
        )
        try:
            with quit_on_hangup(app):
                app.run()
        except KeyboardInterrupt:
            pass
        finally:
            if app.engine is not None:  # quit mid-start, or the UI died: still finish the take
                app.engine.stop()
    return final_word(app.stats.problems, app.return_code or 0)


def final_word(problems: list[str], code: int) -> int:
    """After the UI closes, a take that could not be written is said on the terminal, last,
    and the exit status is 1: a recording is never claimed that is not on disk."""
    failed = [problem for problem in problems if problem.startswith("recording failed")]
    if failed:
        print(f"livegen: error: {failed[-1]}", file=sys.stderr)
        return 1
    return code
