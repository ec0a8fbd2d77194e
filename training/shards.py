"""Token shards: int16 arrays on disk, memory-mapped for training, with a JSON index.

    DATA/index.json          pieces (name, hash, split, shard, offset, length), shards, summary
    DATA/train-000.tokens    raw little-endian int16: BEGIN piece END BEGIN piece END ...
    DATA/val-000.tokens
    DATA/test-000.tokens

The split is by piece and decided by the hash of the file's bytes, so it never changes when
files are added, and identical files (the same piece twice) always land in the same split:
nothing leaks from train into validation or test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from livegen.kernels.atomic_write import write_failed, write_text
from livegen.kernels.errors import LivegenError
from livegen.kernels.time_steps import step_to_seconds
from livegen.kernels.vocab import BEGIN, END, NOTE_OFF, NOTE_ON, TIME_SHIFT, VELOCITY

INDEX_FILE = "index.json"
INDEX_VERSION = 1
SPLITS = ("train", "val", "test")
TOKEN_DTYPE = np.dtype("<i2")
DEFAULT_SHARD_TOKENS = 1 << 27  # 256 MB of int16 per shard


@dataclass
class Piece:
    name: str  # where it came from, relative to its input folder
    hash: str  # sha1 of the file's bytes
    split: str
    tokens: int  # without BEGIN/END
    notes: int
    seconds: float
    shard: str = ""
    offset: int = 0  # of its BEGIN token in the shard


@dataclass
class Shard:
    file: str
    split: str
    tokens: int


@dataclass
class DataIndex:
    pieces: list[Piece]
    shards: list[Shard]
    summary: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def split_shards(self, split: str) -> list[Shard]:
        return [s for s in self.shards if s.split == split]


def split_of(digest: str, val_fraction: float, test_fraction: float) -> str:
    """train / val / test from a hex digest: a stable, uniform draw per piece."""
    u = int(digest[:12], 16) / float(1 << 48)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def assign_splits(pieces: list[Piece], val_fraction: float, test_fraction: float) -> None:
    """Set each piece's split by hash; a tiny corpus still gets a piece in every split.

    The fallback moves the largest-hash piece of the biggest split, so it is deterministic too.
    """
    for piece in pieces:
        piece.split = split_of(piece.hash, val_fraction, test_fraction)
    wanted = ["train"] + [s for s, f in (("val", val_fraction), ("test", test_fraction)) if f > 0]
    for split in wanted:
        counts = {s: sum(1 for p in pieces if p.split == s) for s in SPLITS}
        donor = max(SPLITS, key=lambda s: counts[s])
        if counts[split] == 0 and counts[donor] > 1:
            moved = max((p for p in pieces if p.split == donor), key=lambda p: p.hash)
            moved.split = split


def token_stats(tokens: np.ndarray) -> tuple[int, float]:
    """(notes, seconds) of a piece's tokens."""
    notes = int(np.count_nonzero((tokens >= NOTE_ON) & (tokens < NOTE_OFF)))
    shifts = tokens[(tokens >= TIME_SHIFT) & (tokens < VELOCITY)].astype(np.int64)
    seconds = step_to_seconds(float((shifts - TIME_SHIFT + 1).sum()))
    return notes, seconds


def write_shards(
    out_dir: Path,
    pieces: list[Piece],
    token_of: Any,
    max_shard_tokens: int = DEFAULT_SHARD_TOKENS,
    frame: tuple[int, int] = (BEGIN, END),
) -> list[Shard]:
    """Write each split's pieces (in name order) as BEGIN tokens END into shard files.

    token_of(piece) -> int16 array; frame: the (begin, end) ids of the token language. Sets piece.shard / piece.offset. Files are written under
    temporary names and renamed, so a half-written shard is never taken for a finished one;
    a failed write (disk full) removes them and raises a WriteError.
    """
    try:
        return _write_shards(out_dir, pieces, token_of, max_shard_tokens, frame)
    except OSError as error:
        for tmp in Path(out_dir).glob("*.tokens.tmp"):
            tmp.unlink(missing_ok=True)
        raise write_failed(out_dir, error, "cannot write the token shards") from None


def _write_shards(out_dir: Path, pieces: list[Piece], token_of: Any, max_shard_tokens: int, frame):
    shards: list[Shard] = []
    for split in SPLITS:
        members = sorted((p for p in pieces if p.split == split), key=lambda p: p.name)
        number, handle, written, tmp = 0, None, 0, None
        for piece in members:
            size = piece.tokens + 2
            if handle is None or (written and written + size > max_shard_tokens):
                if handle is not None:
                    shards.append(_finish(handle, tmp, out_dir, split, number, written))
                    number += 1
                tmp = out_dir / f"{split}-{number:03d}.tokens.tmp"
                handle, written = open(tmp, "wb"), 0  # noqa: SIM115 - closed in _finish
            piece.shard, piece.offset = f"{split}-{number:03d}.tokens", written
            body = np.asarray(token_of(piece), dtype=TOKEN_DTYPE)
            framed = np.concatenate(([frame[0]], body, [frame[1]])).astype(TOKEN_DTYPE)
            handle.write(framed.tobytes())
            written += size
        if handle is not None:
            shards.append(_finish(handle, tmp, out_dir, split, number, written))
    return shards


def _finish(handle, tmp: Path, out_dir: Path, split: str, number: int, tokens: int) -> Shard:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    name = f"{split}-{number:03d}.tokens"
    tmp.replace(out_dir / name)
    return Shard(name, split, tokens)


def write_index(out_dir: Path, index: DataIndex) -> None:
    data = {
        "version": INDEX_VERSION,
        "summary": index.summary,
        "shards": [asdict(s) for s in index.shards],
        "pieces": [asdict(p) for p in index.pieces],
        "skipped": index.skipped,
    }
    write_text(out_dir / INDEX_FILE, json.dumps(data, indent=1) + "\n")


def read_index(data_dir: Path) -> DataIndex:
    path = Path(data_dir) / INDEX_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LivegenError(f"{path}: missing; build the data with `livegen-train data`") from None
    except (OSError, ValueError) as error:
        raise LivegenError(f"{path}: unreadable: {error}") from None
    if data.get("version") != INDEX_VERSION:
        raise LivegenError(f"{path}: index version {data.get('version')!r} is not supported")
    return DataIndex(
        pieces=[Piece(**p) for p in data["pieces"]],
        shards=[Shard(**s) for s in data["shards"]],
        summary=data.get("summary", {}),
        skipped=data.get("skipped", []),
    )


class TokenShards:
    """The shards of one split, memory-mapped (nothing is read until a window is sliced)."""

    def __init__(self, data_dir: Path, split: str, index: DataIndex | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.data_dir = Path(data_dir)
        self.split = split
        index = index or read_index(self.data_dir)
        self.arrays: list[np.ndarray] = []
        for shard in index.split_shards(split):
            path = self.data_dir / shard.file
            if not path.is_file() or path.stat().st_size != shard.tokens * TOKEN_DTYPE.itemsize:
                raise LivegenError(f"{path}: missing or not the size the index says")
            self.arrays.append(np.memmap(path, dtype=TOKEN_DTYPE, mode="r"))

    @property
    def total_tokens(self) -> int:
        return sum(int(a.shape[0]) for a in self.arrays)

    def __len__(self) -> int:
        return len(self.arrays)

    def window(self, shard: int, start: int, length: int) -> np.ndarray:
        return np.asarray(self.arrays[shard][start : start + length], dtype=np.int64)


def summarize(pieces: Iterable[Piece], skipped: int, duplicates: int) -> dict[str, Any]:
    pieces = list(pieces)
    per_split = {s: sum(1 for p in pieces if p.split == s) for s in SPLITS}
    tokens = {s: sum(p.tokens + 2 for p in pieces if p.split == s) for s in SPLITS}
    return {
        "files": len(pieces),
        "notes": sum(p.notes for p in pieces),
        "tokens": sum(tokens.values()),
        "hours": round(sum(p.seconds for p in pieces) / 3600.0, 3),
        "skipped": skipped,
        "duplicates": duplicates,
        "pieces_per_split": per_split,
        "tokens_per_split": tokens,
    }
