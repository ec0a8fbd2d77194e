"""Where a command's output files may go: never over its input, never over another output,
into a folder that exists, and over an existing file only when the user said so (--force)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from livegen.kernels.errors import LivegenError


class OutputError(LivegenError):
    """An output path a command refuses to write."""


def check_outputs(source: Path, outputs: Sequence[Path | None], *, force: bool = True) -> None:
    """Before any work: no output may be the input (or another output), its folder must
    exist, and an existing file is replaced only when `force` (a command's --force)."""
    given = [path for path in outputs if path is not None]
    for n, path in enumerate(given):
        if _same_file(path, source):
            raise OutputError(f"{path}: is the input; livegen never overwrites its input")
        if any(_same_file(path, other) for other in given[:n]):
            raise OutputError(f"{path}: given as two outputs")
        if not path.parent.is_dir():
            raise OutputError(f"{path}: folder {path.parent} does not exist")
        if path.is_dir():
            raise OutputError(f"{path}: is a folder")
        if path.exists() and not force:
            raise OutputError(f"{path}: already exists (--force replaces it)")


def _same_file(a: Path, b: Path) -> bool:
    """The same file: one path resolved like the other, or (links) the same inode."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False
