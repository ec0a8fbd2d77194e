"""What the bad-input suites (tests/test_bad_inputs.py, tests/test_bad_training_inputs.py)
share: the files a case starts from, the case record, and the one way every case is run and
judged: a one-line error and the expected exit status (or a report), no traceback, every file
that existed before unchanged, no temporary file left behind."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livegen.cli import main as livegen_main
from livegen.kernels.tokenizer import Notes
from livegen.training.cli import main as train_main
from tests.faults import full_disk, read_only

MAINS = {"livegen": livegen_main, "livegen-train": train_main}


def phrase(count: int = 6) -> Notes:
    start = np.arange(count) * 0.25
    return Notes(start, start + 0.2, 60 + np.arange(count), [80] * count, [0] * count)


def unclosed_midi(path: Path) -> Path:
    """Two notes, one of which never gets its note-off."""
    import mido

    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    track += [
        mido.Message("note_on", note=60, velocity=90, time=0),
        mido.Message("note_on", note=64, velocity=90, time=0),
        mido.Message("note_off", note=60, velocity=0, time=480),
    ]
    midi.tracks.append(track)
    midi.save(path)
    return path


def absurd_gap_midi(path: Path) -> Path:
    """The 48-byte file of the report: a note-off 0x0FFFFFFF ticks after its note-on."""
    track = b"\x00\x90\x3c\x40" + b"\xff\xff\xff\x7f\x80\x3c\x00" + b"\x00\xff\x2f\x00"
    data = b"MThd" + (6).to_bytes(4, "big") + b"\x00\x00\x00\x01\x01\xe0"
    data += b"MTrk" + len(track).to_bytes(4, "big") + track
    path.write_bytes(data + b"\x00" * (48 - len(data)) if len(data) < 48 else data)
    return path


@dataclass
class World:
    root: Path
    preset: Path
    data: Path | None = None  # the training suite's: a data folder
    run: Path | None = None  # and a trained tiny run (3 steps, one checkpoint), its own copy

    @property
    def prompt(self) -> Path:
        return self.root / "prompt.mid"


@dataclass
class Case:
    name: str
    setup: Callable[[World], list[str]]  # -> argv (first item: which CLI)
    message: str  # must appear in the error (or report) line
    code: int = 2  # expected exit status
    fault: str = ""  # "" | "full" | "full:BYTES" (files may grow to BYTES) | "read-only"
    check: Callable[[World], None] | None = None  # extra assertions afterwards
    changed: set[str] = field(default_factory=set)  # files the case may change (relative)


def cont(w: World, *extra: str) -> list[str]:
    out = str(w.root / "out.mid")
    return [
        "livegen",
        "continue",
        str(w.prompt),
        "-o",
        out,
        "--preset",
        str(w.preset),
        "--seconds",
        "1",
        *extra,
    ]


def _snapshot(root: Path) -> dict[str, str]:
    files = (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in files}


def nothing_in(folder: Path) -> None:
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()], folder


def run_case(case: Case, world: World, capsys) -> None:  # noqa: ANN001 - pytest's capsys
    argv = case.setup(world)
    if case.fault == "read-only":
        ro = world.root / "ro"
        ro.mkdir(exist_ok=True)
    capsys.readouterr()  # the set-up's own output
    before = _snapshot(world.root)
    main = MAINS[argv[0]]
    if case.fault.startswith("full"):
        with full_disk(int(case.fault.partition(":")[2] or 0)):
            code = main(argv[1:])
    elif case.fault == "read-only":
        with read_only(world.root / "ro"):
            code = main(argv[1:])
    else:
        code = main(argv[1:])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == case.code, (code, out, err)
    said = err if code else out + err
    assert case.message in said, said
    if code:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and ": error: " in lines[0], err  # one line says it all
    after = _snapshot(world.root)
    for path, digest in before.items():
        if not any(path.startswith(prefix) for prefix in case.changed):
            assert after.get(path) == digest, f"{path} was changed or removed"
    left = [p for p in after if ".tmp" in p and p not in before]
    assert not left, f"temporary files left behind: {left}"
    if case.check is not None:
        case.check(world)
