"""Typed errors shared by every layer. The CLI turns any LivegenError into a one-line message."""

from __future__ import annotations


class LivegenError(Exception):
    """A problem the user can act on (bad file, bad name, bad setting); never a bug."""


class MidiFileError(LivegenError):
    """A MIDI file that cannot be read: missing, truncated, corrupt or not MIDI at all."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class TokenFileError(LivegenError):
    """A token file (JSON list of ids) that cannot be read."""


class ModelFileError(LivegenError):
    """Weights or a model config that cannot be loaded safely."""


class PresetError(LivegenError):
    """A preset that is missing or malformed."""


class BadValueError(LivegenError, ValueError):
    """A number out of range, not finite, or not a number at all (a setting or an option).

    Also a ValueError, so code that validates dataclasses with `except ValueError` keeps
    working while the CLI shows it as a one-line error."""


class WriteError(LivegenError):
    """A file or folder that cannot be written (read-only, full disk, no permission)."""
