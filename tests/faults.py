"""Real faults for tests: a disk that is full and a folder that is read-only.

full_disk: the kernel's file-size limit (RLIMIT_FSIZE) set to `limit` bytes for this process,
SIGXFSZ ignored, so every write that would make a file larger fails with EFBIG, exactly where
a full disk fails with ENOSPC (mid-write, after the file was created). Any user can set it,
so it runs everywhere (a real full tmpfs was also tried by hand: docs/FAULTS.md).

read_only: as root, permission bits mean nothing, so the folder is made immutable (chattr +i,
EPERM for root too); as any other user, chmod 555.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def full_disk(limit: int = 0) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def disk_limit_in_child(limit: int):  # noqa: ANN201 - a preexec_fn
    """For subprocess.Popen(preexec_fn=...): the child's files may grow to `limit` bytes."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

    return apply


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    done = chattr and subprocess.run([chattr, "+i", str(folder)], capture_output=True)
    if not done or done.returncode:
        pytest.skip("read-only folder for root needs chattr +i, which this file system refuses")
    try:
        yield folder
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)
