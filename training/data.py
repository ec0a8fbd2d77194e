"""`livegen-train data`: MIDI folders -> token shards, in parallel, cached, never crashing.

Each file is read once to hash it; its tokens are cached under DATA/cache/ by that hash, so a
re-run encodes only new or changed files (renaming a file costs nothing). Files that cannot
be read, or hold no notes, are skipped and listed in DATA/skipped.txt with the reason; files
with absurd gaps or unclosed notes are repaired and listed in DATA/repaired.txt (the rule:
training/repair.py). The shards and index are then rewritten from the cache, which takes
seconds even for the whole music21 corpus. Every file is written to a temporary name and
renamed, so a full disk leaves the previous data folder's files whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livegen.kernels.atomic_write import atomic_path, ensure_writable_folder, write_text
from livegen.kernels.errors import LivegenError, MidiFileError
from livegen.kernels.vocab import ENCODING_REVISION
from livegen.training.repair import (
    DEFAULT_MAX_GAP_SECONDS,
    REPAIRED_FILE,
    Repair,
    cap_gaps,
    repair_report,
)
from livegen.training.shards import (
    DEFAULT_SHARD_TOKENS,
    DataIndex,
    Piece,
    assign_splits,
    summarize,
    token_stats,
    write_index,
    write_shards,
)

MIDI_SUFFIXES = {".mid", ".midi", ".smf", ".kar"}
CACHE_DIR = "cache"
SKIPPED_FILE = "skipped.txt"


@dataclass
class DataOptions:
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    workers: int = 1
    include_drums: bool = False
    max_shard_tokens: int = DEFAULT_SHARD_TOKENS
    progress: bool = True
    max_gap_seconds: float = DEFAULT_MAX_GAP_SECONDS  # longer silences are shortened


@dataclass
class Encoded:
    name: str
    digest: str
    tokens: np.ndarray | None  # None when skipped
    reason: str = ""
    unclosed: int = 0  # note-ons with no note-off (left out)


def find_midi_files(folders: Iterable[Path]) -> list[tuple[str, Path]]:
    """(name, path) of every MIDI file under the folders; name = folder name / relative path."""
    return find_files(folders, MIDI_SUFFIXES)


def find_files(folders: Iterable[Path], suffixes: set[str]) -> list[tuple[str, Path]]:
    """(name, path) of every file with one of the suffixes under the folders."""
    found: list[tuple[str, Path]] = []
    seen_names: set[str] = set()
    for number, folder in enumerate(folders):
        folder = Path(folder)
        if not folder.is_dir():
            raise LivegenError(f"{folder}: not a folder")
        label = folder.resolve().name or f"input{number}"
        if label in seen_names:  # two inputs with the same folder name
            label = f"{label}#{number}"
        seen_names.add(label)
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in suffixes and path.is_file():
                found.append((f"{label}/{path.relative_to(folder).as_posix()}", path))
    return found


def _cache_path(cache: Path, digest: str, suffix: str) -> Path:
    # One folder per encoding revision: tokens cached by an older encoder are not reused.
    return cache / f"rev{ENCODING_REVISION}" / digest[:2] / f"{digest}{suffix}"


def _read_cached(cache: Path, name: str, digest: str, key: str) -> Encoded | None:
    # .npz: the tokens and what the encoding dropped (older caches' .npy are encoded again)
    tokens_file = _cache_path(cache, key, ".npz")
    if tokens_file.is_file():
        try:
            with np.load(tokens_file) as saved:
                return Encoded(name, digest, saved["tokens"], unclosed=int(saved["unclosed"]))
        except (OSError, ValueError, KeyError, EOFError):
            return None  # a damaged cache entry is encoded again
    skip_file = _cache_path(cache, key, ".skip")
    if skip_file.is_file():
        return Encoded(name, digest, None, skip_file.read_text(encoding="utf-8"))
    return None


def _write_cached(cache: Path, result: Encoded, key: str) -> None:
    suffix = ".npz" if result.tokens is not None else ".skip"
    target = _cache_path(cache, key, suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, durable=False) as tmp, open(tmp, "wb") as handle:
        if result.tokens is not None:
            np.savez(handle, tokens=result.tokens.astype(np.int16), unclosed=result.unclosed)
        else:
            handle.write(result.reason.encode("utf-8"))


def encode_one(job: tuple[str, str, str, bool]) -> Encoded:
    """Encode one MIDI file (job: name, path, digest, include drums); a bad file is an
    Encoded with a reason, never an exception."""
    from livegen.kernels.tokenizer import encode_performance, read_midi

    name, path, digest, include_drums = job
    try:
        performance = read_midi(path, include_drums=include_drums)
        tokens = encode_performance(performance)
    except MidiFileError as error:
        return Encoded(name, digest, None, error.reason)
    except Exception as error:  # a parser bug on a weird file must not end a long build
        return Encoded(name, digest, None, f"unreadable ({type(error).__name__}: {error})")
    if tokens.size == 0:
        reason = "no notes"
        if performance.unclosed_notes:
            reason += f" ({performance.unclosed_notes} note-ons with no note-off)"
        return Encoded(name, digest, None, reason)
    return Encoded(
        name, digest, np.asarray(tokens, dtype=np.int16), unclosed=performance.unclosed_notes
    )


Encoder = Callable[[tuple], Encoded]


def _encode_all(jobs: list[tuple], workers: int, encode: Encoder) -> Iterator[Encoded]:
    if workers <= 1 or len(jobs) < 2:
        yield from map(encode, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(encode, jobs, chunksize=1 if encode is not encode_one else 16)


def _progress(items: Iterator, total: int, desc: str, enabled: bool) -> Iterator:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, unit="file", dynamic_ncols=True)


def encode_files(
    files: list[tuple[str, Path]],
    out: Path,
    options: DataOptions,
    encode: Encoder = encode_one,
    recipe: object = None,
    salt: str = "",
) -> list[Encoded]:
    """Encode every file, from the cache where possible; returns results in file order.

    encode(job) with job = (name, path, digest, recipe) (recipe: the include-drums flag by
    default). salt names how the files are encoded (e.g. the codec and its levels): the cache
    keeps each recipe's tokens apart, while a piece's digest, which decides its split, stays
    the hash of the file's bytes alone."""
    cache = out / CACHE_DIR
    recipe = options.include_drums if recipe is None else recipe
    results: dict[str, Encoded] = {}
    keys: dict[str, str] = {}
    jobs = []
    for name, path in files:
        try:
            data = path.read_bytes()
        except OSError as error:
            results[name] = Encoded(name, "", None, f"cannot read: {error.strerror or error}")
            continue
        digest = hashlib.sha1(data).hexdigest()
        key = hashlib.sha1((digest + salt).encode()).hexdigest() if salt else digest
        keys[name] = key
        cached = _read_cached(cache, name, digest, key)
        if cached is not None:
            results[name] = cached
        else:
            jobs.append((name, str(path), digest, recipe))
    encoded = _encode_all(jobs, options.workers, encode)
    for result in _progress(encoded, len(jobs), "encode", options.progress):
        _write_cached(cache, result, keys[result.name])
        results[result.name] = result
    return [results[name] for name, _ in files]


def build_data(folders: list[Path], out: Path, options: DataOptions | None = None) -> DataIndex:
    """Tokenise the MIDI files under folders into shards + index under out; returns the index."""
    options = options or DataOptions()
    out = ensure_writable_folder(out, "data folder")
    files = find_midi_files(folders)
    if not files:
        raise LivegenError(f"no MIDI files (*.mid, *.midi) under {', '.join(map(str, folders))}")
    encoded = encode_files(files, out, options)

    pieces: list[Piece] = []
    tokens_by_digest: dict[str, np.ndarray] = {}
    skipped: list[dict[str, str]] = []
    repairs: list[tuple[str, Repair]] = []
    duplicates = 0
    for result in encoded:
        if result.tokens is None:
            skipped.append({"file": result.name, "reason": result.reason})
        elif result.digest in tokens_by_digest:
            duplicates += 1  # the same bytes twice: one piece, so no leak across splits
        else:
            tokens, capped, longest = cap_gaps(result.tokens, options.max_gap_seconds)
            repair = Repair(capped, longest, result.unclosed)
            if repair:
                repairs.append((result.name, repair))
            tokens_by_digest[result.digest] = tokens
            notes, seconds = token_stats(tokens)
            pieces.append(Piece(result.name, result.digest, "train", len(tokens), notes, seconds))
    if not pieces:
        raise LivegenError(f"none of the {len(files)} MIDI files held any notes")
    assign_splits(pieces, options.val_fraction, options.test_fraction)
    shards = write_shards(
        out, pieces, lambda p: tokens_by_digest[p.hash], max_shard_tokens=options.max_shard_tokens
    )
    remove_stale_shards(out, {s.file for s in shards})
    index = DataIndex(pieces, shards, summarize(pieces, len(skipped), duplicates), skipped)
    index.summary["inputs"] = [str(Path(f).resolve()) for f in folders]
    index.summary["repaired"] = len(repairs)
    write_index(out, index)
    write_skipped(out, skipped)
    write_text(out / REPAIRED_FILE, repair_report(repairs, options.max_gap_seconds))
    return index


def remove_stale_shards(out: Path, keep: set[str]) -> None:
    # A re-run with fewer files may need fewer shards; old ones would confuse a reader.
    for path in out.glob("*-[0-9][0-9][0-9].tokens"):
        if path.name not in keep:
            path.unlink()


def write_skipped(out: Path, skipped: list[dict[str, str]]) -> None:
    lines = [f"{item['file']}: {item['reason']}" for item in skipped]
    write_text(out / SKIPPED_FILE, "".join(line + "\n" for line in lines))


def format_summary(index: DataIndex, out: Path) -> str:
    s = index.summary
    split = s["pieces_per_split"]
    lines = [
        f"{s['files']} files, {s['notes']:,} notes, {s['tokens']:,} tokens, "
        f"{s['hours']:.1f} hours; skipped {s['skipped']}, duplicates {s['duplicates']}",
        f"split by piece: train {split['train']}, val {split['val']}, test {split['test']}",
        f"shards and index in {out}",
    ]
    if index.skipped:
        lines.append(f"skipped files and reasons: {out / SKIPPED_FILE}")
    if s.get("repaired"):
        lines.append(
            f"repaired {s['repaired']} files (absurd gaps shortened, notes with no note-off "
            f"left out): {out / REPAIRED_FILE}"
        )
    return "\n".join(lines)


def summary_json(index: DataIndex) -> str:
    return json.dumps(index.summary, sort_keys=True)
