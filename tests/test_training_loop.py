"""livegen-train ar / eval / export on a tiny model and tiny real data: resume exactness,
atomic checkpoints, Ctrl-C, evaluation through the streaming decoder, presets."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
import torch

from livegen.kernels.errors import WriteError
from livegen.models.checkpoint import load_model
from livegen.models.preset import load_preset
from livegen.training import checkpointing
from livegen.training.checkpointing import latest_checkpoint, read_state
from livegen.training.cli import main
from livegen.training.config import load_run_config
from livegen.training.data import DataOptions, build_data
from livegen.training.train import lr_at, read_log, train
from tests.training_fixtures import midi_folder, tiny_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-data")
    folder = midi_folder(root, pieces=10)
    out = root / "data"
    build_data([folder], out, DataOptions(val_fraction=0.15, test_fraction=0.15, progress=False))
    return out


def losses(run_dir):
    return {int(r["step"]): float(r["loss"]) for r in read_log(run_dir)}


def test_resume_continues_the_same_loss_curve(tmp_path, data):
    config = load_run_config(
        tiny_config(tmp_path / "c.toml", steps=8, prefix_keep=0.5, augment=True)
    )
    config.model.dropout = 0.1  # the dropout RNG must be restored too
    whole = train(tmp_path / "whole", config, data, progress=False)
    assert whole.state.step == 8 and not whole.interrupted
    part = train(tmp_path / "part", config, data, progress=False, stop_after=3)
    assert part.state.step == 3 and read_state(part.checkpoint).step == 3
    resumed = train(tmp_path / "part", config, data, progress=False, resume=True)
    assert resumed.state.step == 8
    a, b = losses(tmp_path / "whole"), losses(tmp_path / "part")
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in range(1, 9):
        assert abs(a[step] - b[step]) <= 1e-5, (step, a[step], b[step])
    final_a = load_model(whole.checkpoint / "model").state_dict()
    final_b = load_model(resumed.checkpoint / "model").state_dict()
    for name, tensor in final_a.items():
        torch.testing.assert_close(final_b[name], tensor, rtol=1e-5, atol=1e-6)


def test_training_lowers_the_loss_and_logs_validation(tmp_path, data):
    config = load_run_config(tiny_config(tmp_path / "c.toml", steps=30))
    result = train(tmp_path / "run", config, data, progress=False)
    rows = read_log(tmp_path / "run")
    curve = [float(r["loss"]) for r in rows]
    assert sum(curve[-5:]) / 5 < sum(curve[:3]) / 3 - 0.3
    val = [float(r["val_nll"]) for r in rows if r["val_nll"]]
    assert len(val) == 10 and val[-1] < val[0]
    assert result.state.val_nll == pytest.approx(val[-1], abs=1e-4)
    assert all(float(r["tokens_per_s"]) > 0 for r in rows)


def test_learning_rate_warms_up_then_decays_to_the_floor(tmp_path):
    config = load_run_config(tiny_config(tmp_path / "c.toml", steps=100)).train
    config.warmup_steps = 10
    rates = [lr_at(s, config) for s in range(100)]
    assert rates[0] < rates[5] < rates[9] == pytest.approx(config.lr)
    assert all(x >= y for x, y in zip(rates[10:], rates[11:]))
    assert lr_at(100, config) == pytest.approx(config.lr * config.min_lr_ratio)


def test_a_crash_while_writing_leaves_the_previous_checkpoint_latest(tmp_path, data, monkeypatch):
    config = load_run_config(tiny_config(tmp_path / "c.toml", steps=4))
    first = train(tmp_path / "run", config, data, progress=False, stop_after=3)

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpointing.torch, "save", crash)
    with pytest.raises(WriteError, match="disk full"):  # one line, no traceback at the CLI
        train(tmp_path / "run", config, data, progress=False, resume=True)
    monkeypatch.undo()
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))  # removed at once
    assert latest_checkpoint(tmp_path / "run") == first.checkpoint
    assert read_state(first.checkpoint).step == 3
    load_model(first.checkpoint / "model")  # still whole
    done = train(tmp_path / "run", config, data, progress=False, resume=True)
    assert done.state.step == 4
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))  # debris cleared


def test_ctrl_c_saves_a_checkpoint_and_returns_cleanly(tmp_path, data):
    config = load_run_config(tiny_config(tmp_path / "c.toml", steps=100_000))
    config.train.checkpoint_interval = 100_000
    # Python's default_int_handler, or SIG_IGN where pytest was started as a background
    # command of a script (the shell then ignores SIGINT for it): either way, put back.
    before = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        result = train(tmp_path / "run", config, data, progress=False)
    finally:
        timer.cancel()
    assert result.interrupted
    assert 0 < result.state.step < 100_000
    assert read_state(latest_checkpoint(tmp_path / "run")).step == result.state.step
    assert signal.getsignal(signal.SIGINT) is before


def test_eval_agrees_with_the_streaming_decoder_and_export_makes_a_preset(tmp_path, data, capsys):
    config = tiny_config(tmp_path / "c.toml", steps=6)
    run = tmp_path / "run"
    assert main(["ar", "--config", str(config), "--data", str(data), "--out", str(run),
                 "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["eval", str(run), "--data", str(data), "--stream-tokens", "60", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["split"] == "test" and 0 < report["nll"] < 10 and report["tokens"] > 0
    stream = report["stream"]
    assert stream["agrees"] and stream["tokens"] == 60
    assert abs(stream["nll"] - stream["parallel_nll"]) < 1e-3

    presets = tmp_path / "presets"
    assert main(["export", str(run), "--name", "tiny", "--dir", str(presets)]) == 0
    preset = load_preset(presets / "tiny.toml")
    assert preset.training["steps"] == 6
    assert preset.training["eval"]["nll"] == report["nll"]
    assert preset.training["config"]["model"]["context"] == 48
    model = load_model(preset.model_dir)
    assert model.config.latents == 16

    # float16 storage: half the file, loaded back as float32 within fp16 rounding.
    args = ["export", str(run), "--name", "half", "--dir", str(presets), "--weights", "float16"]
    assert main(args) == 0
    half = load_model(load_preset(presets / "half.toml").model_dir)
    full_size = (preset.model_dir / "model.safetensors").stat().st_size
    half_size = (presets / "half" / "model.safetensors").stat().st_size
    assert half_size < 0.6 * full_size
    for name, tensor in half.state_dict().items():
        assert tensor.dtype == torch.float32
        torch.testing.assert_close(tensor, model.state_dict()[name], rtol=1e-3, atol=1e-4)

    # The preset reproduces its training set-up: `ar --preset` trains the same architecture.
    again = tmp_path / "again"
    args = ["ar", "--preset", str(presets / "tiny.toml"), "--data", str(data), "--out",
            str(again), "--steps", "2", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert read_state(latest_checkpoint(again)).step == 2


def test_cli_help_version_and_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("livegen-train ")
    for command in ("data", "ar", "eval", "export"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "usage: livegen-train " + command in capsys.readouterr().out
    code = main(["eval", str(tmp_path), "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no checkpoint" in err
    code = main(["ar", "--data", str(tmp_path), "--out", str(tmp_path / "r")])
    assert code == 2 and "--config" in capsys.readouterr().err
