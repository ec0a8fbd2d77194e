"""`livegen` in a real terminal: a private tmux server (its own socket, so nothing touches a
user's sessions) holding one window, "jam", of a fixed size; keys go in with send-keys and the
screen comes back with capture-pane. The TUI tests and benchmarks/bench_tui_jam.py share it."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

COLUMNS, ROWS = 120, 40


class Tmux:
    def __init__(self, name: str = "livegen-test") -> None:
        self.socket = f"{name}-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout

    def start(self, command: str, columns: int = COLUMNS, rows: int = ROWS) -> None:
        """Run a shell command in the window "jam", `columns` x `rows`."""
        size = ("-x", str(columns), "-y", str(rows))
        self.run("new-session", "-d", "-s", "jam", *size, command)
        # no client ever attaches: pin the size, or tmux may fall back to its 80x24 default
        self.run("set-option", "-t", "jam", "window-size", "manual")
        self.run("resize-window", "-t", "jam", *size)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "jam")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "jam", *keys)

    def wait_for(self, condition: Callable[[str], bool], timeout: float, what: str) -> str:
        """The screen once condition(screen) holds; an error showing the screen if it never does."""
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


def livegen_command(livegen: Path, env: Mapping[str, str]) -> str:
    """`livegen` as a shell in the terminal starts it, with env's JACK and LIVEGEN variables.
    COLUMNS and LINES unset: under pytest they can hold a stale 80x24, which would size the UI."""
    exports = " ".join(f"{k}='{v}'" for k, v in env.items() if k.startswith(("JACK", "LIVEGEN")))
    return f"env -u COLUMNS -u LINES {exports} TERM=xterm-256color {livegen}"
