"""What the set-up screen says about presets: a real tiny preset described and benched, and
broken ones described as problems (never an exception)."""

from __future__ import annotations

import json
from pathlib import Path

from livegen.models.checkpoint import load_config
from livegen.models.preset import load_preset
from livegen.tui.preset_info import (
    available_presets,
    describe_preset,
    short_bench,
    verdict_line,
)
from tests.presets import tiny_preset


def test_describe_a_real_preset(tmp_path: Path) -> None:
    path = tiny_preset(tmp_path)
    info = describe_preset(str(path))
    config, _ = load_config(load_preset(path).model_dir)
    assert info.problem is None
    assert info.parameters == config.num_parameters() > 0
    assert (info.context, info.latents) == (64, 16)
    assert info.trained_on == "none (random weights)"
    lines = info.lines()
    assert lines[0].startswith("test preset") and "M parameters" in lines[1]


def test_broken_presets_are_problems(tmp_path: Path) -> None:
    missing = describe_preset(str(tmp_path / "nope.toml"))
    assert missing.problem and "no such preset file" in missing.problem
    path = tiny_preset(tmp_path)
    (tmp_path / "tiny" / "config.json").write_text(json.dumps({"format": "other"}))
    broken = describe_preset(str(path))
    assert broken.problem and "not a livegen model config" in broken.problem
    assert broken.lines() == [f"{path}: {broken.problem}"]


def test_short_bench_gives_a_verdict(tmp_path: Path) -> None:
    verdict = short_bench(str(tiny_preset(tmp_path)), device="cpu")
    assert verdict.startswith("real time on this machine: yes"), verdict  # 50k parameters
    assert "needs ~100 tokens/s" in verdict and "cpu float32, 1 thread(s)" in verdict
    gone = short_bench(str(tmp_path / "gone.toml"))
    assert gone.startswith("cannot bench:") and "gone.toml" in gone


def test_verdict_line_reads_the_bench_json() -> None:
    line = verdict_line(
        {"realtime": False, "needed_tokens_per_s": 100.0, "delivered_tokens_per_s": 61.4,
         "device": "cpu int8 dynamic", "threads": 1}
    )  # fmt: skip
    assert line == (
        "real time on this machine: NO (needs ~100 tokens/s, delivers 61; "
        "cpu int8 dynamic, 1 thread(s))"
    )


def test_preset_list_holds_shipped_user_and_current(tmp_path: Path) -> None:
    user = tmp_path / "user"
    mine = tiny_preset(user, name="mine")
    names = available_presets("/somewhere/else.toml", user)
    assert names[0] == "/somewhere/else.toml"
    assert str(mine) in names
    assert available_presets(str(mine), user).count(str(mine)) == 1
