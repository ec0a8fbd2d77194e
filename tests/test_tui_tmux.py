"""Smoke test of the real thing: `livegen` in a real terminal (tmux) on a JACK dummy server,
played from the computer keyboard (send-keys), read back from the screen (capture-pane).

No mocks anywhere: the installed entry point, the real engine with a tiny real preset, real
JACK MIDI and audio ports, the real recorder. The settings file carries one bad value, which
must be reported on screen while everything else still works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import mido
import pytest

from tests.presets import tiny_preset

LIVEGEN = Path(sys.executable).parent / "livegen"
START_TIMEOUT = 90.0


class Tmux:
    """One private tmux server (its own socket), so nothing touches a user's sessions."""

    def __init__(self) -> None:
        self.socket = f"livegen-test-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "jam")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "jam", *keys)

    def wait_for(self, condition: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                size = self.run("display", "-p", "-t", "jam", "#{window_width}x#{window_height}")
                raise AssertionError(f"timed out waiting for {what}; the {size} screen:\n{screen}")
            time.sleep(0.2)

    def kill(self) -> None:
        self.run("kill-server")


@pytest.fixture
def tmux():
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (the set-up installs it for the tests)")
    server = Tmux()
    yield server
    server.kill()


def test_livegen_in_a_terminal_jams_with_the_computer_keyboard(jack, tmux, tmp_path: Path):
    preset = tiny_preset(tmp_path / "presets")
    config = tmp_path / "config"
    config.mkdir()
    recordings = tmp_path / "recordings"
    (config / "settings.toml").write_text(
        "[jam]\n"
        f'preset = "{preset}"\n'
        'input = "none"\n'  # a fresh machine: no MIDI keyboard, the computer keyboard plays
        'output = "virtual"\n'
        'api = "jack"\n'
        f'record_dir = "{recordings}"\n'
        "[keyboard]\n"
        "octave = 99\n",  # a bad value: reported, the default used
        encoding="utf-8",
    )
    env = {
        **jack.env,
        "LIVEGEN_CONFIG_DIR": str(config),
        "TERM": "xterm-256color",
        "PATH": os.environ.get("PATH", ""),
    }
    exports = " ".join(f"{k}='{v}'" for k, v in env.items() if k.startswith(("JACK", "LIVE")))
    # -u COLUMNS/LINES: under pytest they can hold a stale 80x24, which would size the UI
    unset = "-u COLUMNS -u LINES"
    command = f"env {unset} {exports} TERM=xterm-256color {LIVEGEN}; echo LIVEGEN-EXIT=$?; sleep 60"
    tmux.run("new-session", "-d", "-s", "jam", "-x", "120", "-y", "40", command)
    # no client ever attaches: pin the size, or tmux may fall back to its 80x24 default
    tmux.run("set-option", "-t", "jam", "window-size", "manual")
    tmux.run("resize-window", "-t", "jam", "-x", "120", "-y", "40")

    screen = tmux.wait_for(
        lambda s: " running" in s.split("╭")[0],
        START_TIMEOUT,
        "the engine to run",
    )
    words = " ".join(screen.split())  # the banner wraps long lines
    assert (
        "[keyboard] octave must be an integer in 0..8, got 99; default used" in words
    )  # said plainly
    assert "in computer keyboard" in screen and "out livegen out (virtual)" in screen
    # MIDI out exists for a DAW to take: a real JACK port
    assert any("livegen out" in port for port in jack.ports())

    for key, name in (("a", "C4"), ("d", "E4"), ("g", "G4")):  # each played before the next
        tmux.keys(key)
        screen = tmux.wait_for(lambda s, n=name: f"last key {n}" in s, 10.0, f"{name} played")
    roll = [line for line in screen.splitlines() if line.startswith("│") and "│" in line[1:]]
    assert any(("▀" in line or "▄" in line) for line in roll), screen  # notes on the roll
    assert "● REC livegen-" in screen  # recording, with its file named on screen

    tmux.keys("2")  # a control while playing: temperature up
    tmux.wait_for(lambda s: "temperature 1.05" in s, 5.0, "the temperature to change")
    tmux.keys("F1")
    tmux.wait_for(lambda s: "Terminals report key presses" in s, 5.0, "the help screen")
    tmux.keys("Escape")
    tmux.keys("C-q")
    tmux.wait_for(lambda s: "LIVEGEN-EXIT=0" in s, 30.0, "livegen to quit cleanly")

    # the take: the player's three notes on the player's track
    (take,) = recordings.glob("livegen-*.mid")
    played = {
        msg.note
        for track in mido.MidiFile(take).tracks
        for msg in track
        if msg.type == "note_on" and msg.velocity > 0 and msg.channel == 0
    }
    assert {60, 64, 67} <= played
    # the settings file it could not read whole was kept aside before quitting rewrote it
    assert "octave = 99" in (config / "settings.toml.bak").read_text(encoding="utf-8")
    saved = (config / "settings.toml").read_text(encoding="utf-8")
    assert "temperature = 1.05" in saved and "octave = 4" in saved


def _exited(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie has finished; only its parent's wait is missing


def test_closing_the_terminal_ends_the_jam_like_quitting(jack, tmux, tmp_path: Path):
    """The terminal goes away mid-jam (tmux killed: the pane's process gets SIGHUP): the UI
    quits the way Ctrl-Q does: the take finished with the notes played, the settings saved
    (a control changed while playing is in the file), the process gone."""
    preset = tiny_preset(tmp_path / "presets")
    config = tmp_path / "config"
    config.mkdir()
    recordings = tmp_path / "recordings"
    (config / "settings.toml").write_text(
        f'[jam]\npreset = "{preset}"\ninput = "none"\noutput = "none"\napi = "jack"\n'
        f'record_dir = "{recordings}"\n',
        encoding="utf-8",
    )
    env = {**jack.env, "LIVEGEN_CONFIG_DIR": str(config)}
    exports = " ".join(f"{k}='{v}'" for k, v in env.items() if k.startswith(("JACK", "LIVE")))
    pid_file = tmp_path / "pid"
    command = f"echo $$ > {pid_file}; exec env -u COLUMNS -u LINES {exports} TERM=xterm-256color {LIVEGEN}"
    tmux.run("new-session", "-d", "-s", "jam", "-x", "120", "-y", "40", command)
    tmux.run("set-option", "-t", "jam", "window-size", "manual")
    tmux.run("resize-window", "-t", "jam", "-x", "120", "-y", "40")
    tmux.wait_for(lambda s: " running" in s.split("╭")[0], START_TIMEOUT, "the engine to run")
    pid = int(pid_file.read_text())
    for key, name in (("a", "C4"), ("d", "E4")):  # each played before the next
        tmux.keys(key)
        tmux.wait_for(lambda s, n=name: f"last key {n}" in s, 10.0, f"{name} played")
    tmux.keys("2")  # temperature up: saved on the way out
    tmux.wait_for(lambda s: "temperature 1.05" in s, 5.0, "the temperature to change")
    tmux.kill()  # the terminal is gone: SIGHUP
    deadline = time.monotonic() + 60
    while not _exited(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _exited(pid), "livegen kept running after its terminal closed"
    (take,) = recordings.glob("livegen-*.mid")
    played = [
        msg.note
        for msg in mido.MidiFile(take).tracks[0]
        if msg.type == "note_on" and msg.velocity > 0
    ]
    assert played == [60, 64], played
    assert "temperature = 1.05" in (config / "settings.toml").read_text(encoding="utf-8")
