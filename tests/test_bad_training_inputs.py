"""The bad-input suite, livegen-train's side (and the model files it writes): bad values in
options and configs, runs that would be destroyed, divergence, damaged checkpoints, MIDI with
absurd gaps or unclosed notes, a full disk and a read-only folder for every writer. Judged as
tests/test_bad_inputs.py's cases are (tests/bad_input_world.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from livegen.kernels.tokenizer import write_midi
from livegen.training.cli import main as train_main
from tests.bad_input_world import (
    Case,
    World,
    absurd_gap_midi,
    nothing_in,
    phrase,
    run_case,
    unclosed_midi,
)
from tests.presets import tiny_preset
from tests.training_fixtures import midi_folder, tiny_config


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

    run = tmp_path / "run"
    shutil.copytree(shared.run, run)
    (tmp_path / "data").symlink_to(shared.data)
    write_midi(tmp_path / "prompt.mid", [("prompt", phrase())])
    return World(tmp_path, shared.preset, tmp_path / "data", run)


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
        check=lambda w: nothing_in(w.root / "presets-out"),
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
        "data with an absurd gap and an unclosed note",
        data_case,
        "repaired 2 files",
        code=0,
        check=assert_repaired,
    ),
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
        check=lambda w: nothing_in(w.root / "presets-out"),
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


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, world: World, capsys) -> None:
    run_case(case, world, capsys)
