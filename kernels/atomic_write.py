"""Every file livegen writes goes through here: a temporary file in the same folder, flushed
to disk, then renamed over the target. A rename is atomic, so the target is either the old
file (untouched) or the complete new one; a full or read-only disk, a missing permission or a
kill at any instant never leaves a half-written file under the user's name. Failures become
one WriteError that says which path and why, and the temporary file is removed.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from livegen.kernels.errors import WriteError

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file is too large for this disk or limit",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted (read-only or immutable)",
    errno.ENOENT: "the folder does not exist",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.EIO: "an input/output error (the device failed or went away)",
}


def reason(error: OSError) -> str:
    """Why an OSError happened, in words a user acts on."""
    return _REASONS.get(error.errno or 0, error.strerror or str(error))


def describe_os_error(error: OSError) -> str:
    """'PATH: why' for an OSError nobody caught closer to where it happened."""
    where = error.filename if error.filename is not None else "a file"
    return f"{where}: {reason(error)}"


def write_failed(path: object, error: OSError, what: str = "cannot write") -> WriteError:
    return WriteError(f"{path}: {what} ({reason(error)})")


def _temp_name(path: Path) -> Path:
    # Hidden, in the same folder (a rename across file systems is not atomic), keeping the
    # suffix: some writers (soundfile, matplotlib) choose the format from it.
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")


def fsync_folder(folder: Path) -> None:
    """Make a rename inside `folder` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without an error, it is
    fsynced and renamed over `path`. On any error the temporary file is removed and `path`
    is left as it was; an OSError becomes a WriteError naming `path`."""
    target = Path(path)
    if target.is_dir():
        raise WriteError(f"{target}: cannot write (it is a folder)")
    if not target.parent.is_dir():
        raise WriteError(f"{target}: cannot write (folder {target.parent} does not exist)")
    tmp = _temp_name(target)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
        if durable:
            fsync_folder(target.parent)
    except OSError as error:
        raise write_failed(target, error) from None
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass  # a read-only folder where the temporary file could not be made either


def write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    with atomic_path(path, durable=durable) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, *, durable: bool = True) -> Path:
    return write_bytes(path, text.encode("utf-8"), durable=durable)


def ensure_writable_folder(folder: str | os.PathLike, what: str = "folder") -> Path:
    """Create `folder` if needed and prove a file can be written in it now (a test file of a
    few bytes is written, synced and removed), or raise WriteError saying why not."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise WriteError(f"{path}: the {what} is a file, not a folder")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_failed(path, error, f"cannot create the {what}") from None
    probe = path / f".livegen-write-test-{secrets.token_hex(4)}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"livegen")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        _remove(probe)
        if created:  # leave no empty folder behind either
            with suppress(OSError):
                path.rmdir()
        raise write_failed(path, error, f"cannot write in the {what}") from None
    _remove(probe)
    return path
