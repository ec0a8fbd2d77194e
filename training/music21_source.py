"""The music21 corpus as a folder of MIDI files: the offline default training data.

music21 ships ~3,200 score files (~15,000 pieces: abc song books hold hundreds of tunes each).
Scores convert to MIDI at ~0.25 s a piece, so the conversion is cached per source file: a
marker under `.done/` records what a source produced (or why it failed), and a re-run only
converts sources without a marker. The MIDI files are then tokenised like any other folder.

The Essen folk-song collection is licensed for non-commercial use only, so it is left out
unless asked for by name or with `include_essen`.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from livegen.kernels.atomic_write import write_text
from livegen.kernels.errors import LivegenError

ESSEN = "essenFolksong"
MARKERS = ".done"
# music21 loops forever on a few scores (e.g. airdsAirs book1 "Yanky Doodle"); a piece that
# takes this long is given up and reported. Normal pieces take well under a second. The limit
# counts the process's CPU time, not the wall clock: on a busy machine a wall-clock limit gave
# up on pieces that convert fine on an idle one, so the data (and its splits) depended on the
# load at the time of the build.
PIECE_SECONDS = 10


class _TimeUp(Exception):
    pass


@contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """Interrupt pure-Python work after `seconds` of this process's CPU time (SIGPROF: the
    main thread of a process only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum: int, frame: object) -> None:
        raise _TimeUp(f"gave up after {seconds} s of CPU time")

    previous = signal.signal(signal.SIGPROF, alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@dataclass
class ConversionResult:
    source: str  # corpus-relative path, e.g. "bach/bwv1.6.mxl"
    written: list[str] = field(default_factory=list)  # MIDI paths relative to the output folder
    failed: list[tuple[str, str]] = field(default_factory=list)  # (piece, reason)


def corpus_root() -> Path:
    from music21 import corpus

    return Path(corpus.__file__).resolve().parent


def list_collections() -> list[str]:
    """Top-level collections of the corpus (bach, palestrina, essenFolksong, ...)."""
    root = corpus_root()
    return sorted({_collection(p, root) for p in _core_paths()})


def list_sources(collections: list[str] | None = None, include_essen: bool = False) -> list[str]:
    """Corpus-relative paths of the score files to convert.

    No collections means all of them except Essen (licence) unless `include_essen`.
    """
    root = corpus_root()
    paths = sorted(str(p.relative_to(root)) for p in _core_paths())
    known = {_collection(Path(p), Path()) for p in paths}
    if collections:
        unknown = sorted(set(collections) - known)
        if unknown:
            raise LivegenError(
                f"unknown music21 collection(s) {unknown}; known: {', '.join(sorted(known))}"
            )
        wanted = set(collections)
    else:
        wanted = known if include_essen else known - {ESSEN}
    return [p for p in paths if p.split("/", 1)[0] in wanted]


def _core_paths() -> list[Path]:
    from music21 import corpus

    return [Path(p) for p in corpus.getCorePaths()]


def _collection(path: Path, root: Path) -> str:
    relative = path.relative_to(root) if root != Path() else path
    return relative.parts[0]


def _marker(out_dir: Path, source: str) -> Path:
    return out_dir / MARKERS / (source + ".json")


def _midi_name(source: str, number: int | None) -> str:
    stem = source.rsplit(".", 1)[0]
    return f"{stem}.mid" if number is None else f"{stem}-{number}.mid"


def convert_source(
    source: str, out_dir: Path, piece_seconds: int = PIECE_SECONDS
) -> ConversionResult:
    """Convert one corpus file (a score or an opus of many) to MIDI files under out_dir.

    Never raises for a bad score: failures are returned, so one odd file cannot stop a
    conversion of thousands.
    """
    from music21 import corpus, stream

    result = ConversionResult(source)
    try:
        with _time_limit(piece_seconds * 10):  # a song book parses hundreds of tunes at once
            parsed = corpus.parse(source)
    except Exception as error:  # music21 raises many unrelated types for bad input
        result.failed.append((source, f"music21 cannot parse it: {_reason(error)}"))
        return result
    if isinstance(parsed, stream.Opus):
        # Numbered by position: abc tune numbers (X:) repeat within some books.
        scores = [(score, i) for i, score in enumerate(parsed.scores, start=1)]
    else:
        scores = [(parsed, None)]
    for score, number in scores:
        name = _midi_name(source, number)
        target = out_dir / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".mid.tmp")
            with _time_limit(piece_seconds):
                score.write("midi", fp=str(tmp))
            tmp.replace(target)
        except Exception as error:
            target.with_suffix(".mid.tmp").unlink(missing_ok=True)
            result.failed.append((name, f"music21 cannot write MIDI: {_reason(error)}"))
            continue
        result.written.append(name)
    return result


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}"


def _write_marker(out_dir: Path, result: ConversionResult) -> None:
    marker = _marker(out_dir, result.source)
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_text(marker, json.dumps({"written": result.written, "failed": result.failed}))


def _read_marker(out_dir: Path, source: str) -> ConversionResult | None:
    marker = _marker(out_dir, source)
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    written = [name for name in data["written"] if (out_dir / name).is_file()]
    if len(written) != len(data["written"]):
        return None  # someone deleted outputs: convert again
    return ConversionResult(source, written, [tuple(f) for f in data["failed"]])


def _convert_for_pool(args: tuple[str, str]) -> ConversionResult:
    source, out_dir = args
    result = convert_source(source, Path(out_dir))
    _write_marker(Path(out_dir), result)
    return result


def export_corpus(
    out_dir: Path,
    collections: list[str] | None = None,
    include_essen: bool = False,
    workers: int = 1,
    progress: Callable[[Iterator[ConversionResult], int], Iterator[ConversionResult]] | None = None,
    limit: int | None = None,
) -> list[ConversionResult]:
    """Convert the chosen collections to MIDI under out_dir; cached per source file.

    `limit` keeps only the first sources (for tests and quick looks). `progress` wraps the
    stream of results (e.g. with tqdm) and gets the number of sources still to convert.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = list_sources(collections, include_essen)
    if limit is not None:
        sources = sources[:limit]
    results: list[ConversionResult] = []
    todo: list[str] = []
    for source in sources:
        cached = _read_marker(out_dir, source)
        if cached is None:
            todo.append(source)
        else:
            results.append(cached)
    fresh = _run(todo, out_dir, workers)
    if progress is not None:
        fresh = progress(fresh, len(todo))
    results.extend(fresh)
    return sorted(results, key=lambda r: r.source)


def _run(todo: list[str], out_dir: Path, workers: int) -> Iterator[ConversionResult]:
    jobs = [(source, str(out_dir)) for source in todo]
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_convert_for_pool, jobs)
        return
    # music21 is pure Python: processes, not threads. Big song books first for balance.
    jobs.sort(key=lambda job: -_size(corpus_root() / job[0]))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_convert_for_pool, jobs, chunksize=1)


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
