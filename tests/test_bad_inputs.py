"""The bad-input suite: every command, every kind of bad file, value, path and fault, run the
way a user runs them (the CLIs' main() in-process; real files, real tiny models, a real
full disk or read-only folder from tests/faults.py).

Each case must end in a one-line error naming the problem and a non-zero exit, or in a
report and a skip; never a traceback; and nothing the user had may change: every file that
existed before is byte-for-byte the same after, and no temporary file is left behind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from livegen.cli import main as livegen_main
from livegen.kernels.tokenizer import Notes, write_midi
from livegen.training.cli import main as train_main
from tests.faults import full_disk, read_only
from tests.presets import tiny_preset
from tests.training_fixtures import midi_folder, tiny_config

MAINS = {"livegen": livegen_main, "livegen-train": train_main}


# ---------------------------------------------------------------- the world each case starts in


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
    data: Path
    run: Path  # a trained tiny run (3 steps, one checkpoint)

    @property
    def prompt(self) -> Path:
        return self.root / "prompt.mid"


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> World:
    """What is slow to make, made once: a preset, a data folder and a 3-step run."""
    root = tmp_path_factory.mktemp("shared")
    preset = tiny_preset(root / "presets")
    data = root / "data"
    assert (
        train_main(
            [
                "data",
                "--midi",
                str(midi_folder(root, bad=False)),
                "--out",
                str(data),
                "--no-progress",
            ]
        )
        == 0
    )
    run = root / "run"
    config = tiny_config(root / "tiny.toml", steps=3)
    assert (
        train_main(
            ["ar", "--config", str(config), "--data", str(data), "--out", str(run), "--no-progress"]
        )
        == 0
    )
    return World(root, preset, data, run)


@pytest.fixture
def world(shared: World, tmp_path: Path) -> World:
    """A private copy of the run (cases damage it) and a fresh prompt, in tmp_path."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(shared.run, run)
    (tmp_path / "data").symlink_to(shared.data)
    write_midi(tmp_path / "prompt.mid", [("prompt", phrase())])
    return World(tmp_path, shared.preset, tmp_path / "data", run)


# ---------------------------------------------------------------- the cases


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


def config_with(w: World, **train: object) -> str:
    text = w.root / "c.toml"
    base = tiny_config(text, steps=6).read_text()
    for key, value in train.items():
        base = base.replace("[train]\n", f"[train]\n{key} = {value}\n", 1)
        base = (
            "\n".join(
                line
                for line in base.splitlines()
                if not (line.startswith(f"{key} = ") and line != f"{key} = {value}")
            )
            + "\n"
        )
    text.write_text(base)
    return str(text)


def nan_weights(w: World) -> None:
    """Damage the run's checkpoint weights the way a diverged old version saved them."""
    from safetensors.torch import load_file, save_file

    weights = next(w.run.glob("checkpoints/step-*/model/model.safetensors"))
    tensors = load_file(weights)
    first = sorted(tensors)[0]
    tensors[first] = torch.full_like(tensors[first], float("nan"))
    save_file(tensors, weights, metadata={"format": "livegen-perceiver-ar"})


def second_checkpoint(w: World) -> None:
    """Resume the run to step 6 (checkpoints at 3 and 6) so there is a previous one."""
    config = tiny_config(w.root / "six.toml", steps=6)
    assert (
        train_main(
            [
                "ar",
                "--config",
                str(config),
                "--data",
                str(w.data),
                "--out",
                str(w.run),
                "--resume",
                "--no-progress",
            ]
        )
        == 0
    )


def then(*steps: Callable[[World], object]) -> Callable[[World], None]:
    def apply(w: World) -> None:
        for step in steps:
            step(w)

    return apply


def assert_repaired(w: World) -> None:
    text = (w.root / "newdata" / "repaired.txt").read_text()
    assert "absurd.mid: 1 gap(s) longer than 30 s shortened to 30 s" in text, text
    assert "unclosed.mid: 1 note(s) with no note-off left out" in text, text
    index = json.loads((w.root / "newdata" / "index.json").read_text())
    assert index["summary"]["hours"] < 0.1, index["summary"]  # not 155 hours of silence


def assert_latest_is_finite(w: World) -> None:
    from livegen.models.checkpoint import load_model
    from livegen.training.checkpointing import latest_checkpoint

    load_model(latest_checkpoint(w.run) / "model")  # refuses non-finite weights
    info = json.loads((w.run / "run.json").read_text())
    assert info["changes"][-1]["train"]["lr"][1] == 1e8, info.get("changes")


def data_case(w: World) -> list[str]:
    folder = w.root / "odd"
    folder.mkdir()
    absurd_gap_midi(folder / "absurd.mid")
    unclosed_midi(folder / "unclosed.mid")
    write_midi(folder / "fine.mid", [("p", phrase())])
    return [
        "livegen-train",
        "data",
        "--midi",
        str(folder),
        "--out",
        str(w.root / "newdata"),
        "--no-progress",
    ]


CASES = [
    # -- values: one rule, at parse time, for every command
    Case(
        "continue --temperature inf",
        lambda w: cont(w, "--temperature", "inf"),
        "argument --temperature: must be a finite number",
    ),
    Case(
        "continue --seconds nan",
        lambda w: [*cont(w)[:-1], "nan"],
        "argument --seconds: must be a finite number",
    ),
    Case(
        "continue --seconds inf",
        lambda w: [*cont(w)[:-1], "inf"],
        "argument --seconds: must be a finite number",
    ),
    Case(
        "continue --seed too large",
        lambda w: cont(w, "--seed", str(2**64)),
        "argument --seed: must be an integer in 0..4294967295",
    ),
    Case("continue --top-p 0", lambda w: cont(w, "--top-p", "0"), "argument --top-p"),
    Case(
        "bench --threads 0", lambda w: ["livegen", "bench", "--threads", "0"], "argument --threads"
    ),
    Case("bench --seed -1", lambda w: ["livegen", "bench", "--seed", "-1"], "argument --seed"),
    Case(
        "jam --program 500",
        lambda w: ["livegen", "jam", "--headless", "--program", "500"],
        "argument --program: must be an integer in 0..127, got '500'",
    ),
    Case(
        "jam --temperature nan",
        lambda w: ["livegen", "jam", "--headless", "--temperature", "nan"],
        "argument --temperature",
    ),
    Case(
        "jam --tempo 1e9",
        lambda w: ["livegen", "jam", "--headless", "--tempo", "1e9"],
        "argument --tempo: must be a finite number in 20.0..400.0",
    ),
    Case(
        "jam --duration inf",
        lambda w: ["livegen", "jam", "--headless", "--duration", "inf"],
        "argument --duration",
    ),
    Case(
        "data --val nan",
        lambda w: [
            "livegen-train",
            "data",
            "--midi",
            str(w.root),
            "--out",
            str(w.root / "d"),
            "--val",
            "nan",
        ],
        "argument --val",
    ),
    Case(
        "ar --steps 0",
        lambda w: [
            "livegen-train",
            "ar",
            "--data",
            str(w.data),
            "--out",
            str(w.root / "r"),
            "--steps",
            "0",
        ],
        "argument --steps",
    ),
    Case(
        "export --program 500",
        lambda w: ["livegen-train", "export", str(w.run), "--name", "x", "--program", "500"],
        "argument --program",
    ),
    Case(
        "ar lr = nan",
        lambda w: [
            "livegen-train",
            "ar",
            "--config",
            config_with(w, lr="nan"),
            "--data",
            str(w.data),
            "--out",
            str(w.root / "r"),
        ],
        "[train].lr must be a finite number > 0, got nan",
    ),
    Case(
        "ar seed too large",
        lambda w: [
            "livegen-train",
            "ar",
            "--config",
            config_with(w, seed=2**40),
            "--data",
            str(w.data),
            "--out",
            str(w.root / "r"),
        ],
        "[train].seed must be an integer in 0..4294967295",
    ),
    Case(
        "ar grad_clip = inf",
        lambda w: [
            "livegen-train",
            "ar",
            "--config",
            config_with(w, grad_clip="inf"),
            "--data",
            str(w.data),
            "--out",
            str(w.root / "r"),
        ],
        "[train].grad_clip must be a finite number >= 0",
    ),
    # -- outputs that would destroy what the user has
    Case(
        "continue X.mid -o X.mid",
        lambda w: [*cont(w)[:3], "-o", str(w.prompt), *cont(w)[5:]],
        "is the input; livegen never overwrites its input",
    ),
    Case(
        "continue onto an existing file",
        lambda w: (write_midi(w.root / "out.mid", [("mine", phrase(3))]), cont(w))[1],
        "out.mid: already exists (--force replaces it)",
    ),
    Case(
        "tokenize X.mid -o X.mid",
        lambda w: ["livegen", "tokenize", str(w.prompt), "-o", str(w.prompt)],
        "never overwrites its input",
    ),
    Case(
        "ar into an existing run",
        lambda w: [
            "livegen-train",
            "ar",
            "--config",
            config_with(w),
            "--data",
            str(w.data),
            "--out",
            str(w.run),
        ],
        "already holds a training run",
    ),
    Case(
        "jam --record names a file",
        lambda w: (
            (w.root / "take.mid").write_bytes(b"mine"),
            ["livegen", "jam", "--headless", "--record", str(w.root / "take.mid")],
        )[1],
        "the recording folder is a file, not a folder",
    ),
    # -- bad files: a clear error naming the file, or a report and a skip
    Case(
        "continue with NaN weights",
        lambda w: (
            nan_weights(w),
            [
                "livegen",
                "continue",
                str(w.prompt),
                "-o",
                str(w.root / "o.mid"),
                "--preset",
                str(_nan_preset(w)),
                "--seconds",
                "1",
            ],
        )[1],
        "weights are not finite",
    ),
    Case(
        "export NaN weights",
        lambda w: (
            nan_weights(w),
            [
                "livegen-train",
                "export",
                str(w.run),
                "--name",
                "n",
                "--dir",
                str(w.root / "presets-out"),
            ],
        )[1],
        "weights are not finite",
        check=lambda w: _nothing_in(w.root / "presets-out"),
    ),
    Case(
        "resume with a damaged optimizer.pt",
        lambda w: (
            then(second_checkpoint, _damage_latest("optimizer.pt", b"PK\x03\x04garbage"))(w),
            ["livegen-train", "ar", "--data", str(w.data), "--out", str(w.run), "--resume"],
        )[1],
        "optimizer.pt: damaged checkpoint file",
        changed={"run"},
    ),
    Case(
        "resume with a damaged state.json",
        lambda w: (
            then(second_checkpoint, _damage_latest("state.json", b'{"state": {"step": '))(w),
            ["livegen-train", "ar", "--data", str(w.data), "--out", str(w.run), "--resume"],
        )[1],
        "step-0000003",
        changed={"run"},
    ),
    Case(
        "tokenize a file with an unclosed note",
        lambda w: ["livegen", "tokenize", str(unclosed_midi(w.root / "u.mid"))],
        "u.mid: 1 note with no note-off left out",
        code=0,
    ),
    Case(
        "continue a prompt with an unclosed note",
        lambda w: [
            "livegen",
            "continue",
            str(unclosed_midi(w.root / "u.mid")),
            "-o",
            str(w.root / "o.mid"),
            "--preset",
            str(w.preset),
            "--seconds",
            "0.5",
        ],
        "1 note with no note-off left out",
        code=0,
    ),
    Case(
        "data with an absurd gap and an unclosed note",
        data_case,
        "repaired 2 files",
        code=0,
        check=assert_repaired,
    ),
    # -- divergence: stop, keep the last finite checkpoint
    Case(
        "resume at lr 1e8 without clipping",
        lambda w: [
            "livegen-train",
            "ar",
            "--config",
            config_with(w, lr="1e8", grad_clip=0, steps=40),
            "--data",
            str(w.data),
            "--out",
            str(w.run),
            "--resume",
            "--no-progress",
        ],
        "training diverged at step",
        check=assert_latest_is_finite,
        changed={"run"},
    ),
    # -- faults: a full disk and a read-only folder, for every writer
    Case(
        "tokenize -o on a full disk",
        lambda w: ["livegen", "tokenize", str(w.prompt), "-o", str(w.root / "t.json")],
        "t.json: cannot write",
        fault="full",
    ),
    Case(
        "detokenize -o on a full disk",
        lambda w: (
            (w.root / "t.json").write_text("[60, 256, 188]"),
            ["livegen", "detokenize", str(w.root / "t.json"), "-o", str(w.root / "o.mid")],
        )[1],
        "o.mid: cannot write",
        fault="full",
    ),
    Case("continue on a full disk", lambda w: cont(w), "out.mid: cannot write", fault="full"),
    Case(
        "jam --record on a full disk",
        lambda w: ["livegen", "jam", "--headless", "--record", str(w.root / "takes")],
        "cannot write in the recording folder",
        fault="full",
    ),
    Case("data on a full disk", data_case, "cannot write", fault="full"),
    Case(
        "data on a disk that fills mid-way (cache)",
        data_case,
        ".npz: cannot write (",
        fault="full:1500",
    ),
    Case(
        "data on a disk that fills mid-way (shards)",
        lambda w: [
            "livegen-train",
            "data",
            "--midi",
            str(midi_folder(w.root / "m", bad=False)),
            "--out",
            str(w.root / "newdata"),
            "--no-progress",
        ],
        "cannot write the token shards",
        fault="full:1500",
    ),
    Case(
        "ar on a full disk",
        lambda w: [
            "livegen-train",
            "ar",
            "--config",
            config_with(w),
            "--data",
            str(w.data),
            "--out",
            str(w.root / "r"),
        ],
        "cannot write in the run folder",
        fault="full",
    ),
    Case(
        "export on a full disk",
        lambda w: [
            "livegen-train",
            "export",
            str(w.run),
            "--name",
            "p",
            "--dir",
            str(w.root / "presets-out"),
        ],
        "cannot write",
        fault="full",
        check=lambda w: _nothing_in(w.root / "presets-out"),
    ),
    Case(
        "tokenize -o in a read-only folder",
        lambda w: ["livegen", "tokenize", str(w.prompt), "-o", str(w.root / "ro" / "t.json")],
        "t.json: cannot write",
        fault="read-only",
    ),
    Case(
        "jam --record in a read-only folder",
        lambda w: ["livegen", "jam", "--headless", "--record", str(w.root / "ro")],
        "cannot write in the recording folder",
        fault="read-only",
    ),
    Case(
        "data --out a read-only folder",
        lambda w: [
            "livegen-train",
            "data",
            "--midi",
            str(midi_folder(w.root / "m", 2, bad=False)),
            "--out",
            str(w.root / "ro"),
            "--no-progress",
        ],
        "cannot write in the data folder",
        fault="read-only",
    ),
]


def _nan_preset(w: World) -> Path:
    """A preset whose model is the run's (NaN) checkpoint, as `export` used to write it."""
    from livegen.models.preset import ModelSpec, Preset, save_preset

    model = next(w.run.glob("checkpoints/step-*/model"))
    path = w.root / "nan.toml"
    save_preset(Preset(name="nan", description="", model=ModelSpec(path=str(model))), path)
    return path


def _damage_latest(relative: str, data: bytes) -> Callable[[World], None]:
    def apply(w: World) -> None:
        from livegen.training.checkpointing import latest_checkpoint

        (latest_checkpoint(w.run) / relative).write_bytes(data)

    return apply


def _nothing_in(folder: Path) -> None:
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()], folder


def _snapshot(root: Path) -> dict[str, str]:
    files = (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, world: World, capsys) -> None:
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


def test_the_ui_says_last_that_its_take_failed(capsys) -> None:
    """The jam UI: a recording problem still standing when the musician quits is the last
    line on the terminal and exit 1; without one, the UI's own exit status stands."""
    from livegen.tui.launch import final_word

    failed = "recording failed: /music/take.mid: cannot write (the disk is full)"
    assert final_word(["no MIDI: no ports", failed], 0) == 1
    assert capsys.readouterr().err == f"livegen: error: {failed}\n"
    assert final_word(["no MIDI: no ports"], 0) == 0
    assert capsys.readouterr().err == ""


def test_an_unreadable_settings_file_is_kept_before_a_rewrite(tmp_path: Path) -> None:
    """The jam UI copies a settings file it could not read whole aside before saving over it
    (the tmux test shows it end to end); a second copy is not made of the same text."""
    from livegen.settings_file import SavedSettings, back_up_settings, load_settings, save_settings

    path = tmp_path / "settings.toml"
    mine = "[jam\npreset = 'my piano'\n"  # not TOML: the user's text all the same
    path.write_text(mine)
    _, problems = load_settings(path)
    assert problems and "not valid TOML" in problems[0]
    kept = back_up_settings(path)
    save_settings(SavedSettings(), path)
    assert kept == tmp_path / "settings.toml.bak" and kept.read_text() == mine
    assert back_up_settings(path) == tmp_path / "settings.toml.bak.1"  # a different text
    path.write_text(mine)
    assert back_up_settings(path) == kept  # the same text is kept once
