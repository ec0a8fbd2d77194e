"""torchrun with 2 CPU processes (gloo) trains exactly what one process does at the same
global batch: each rank takes half of it, the loss is normalised by the global target count."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from livegen.models.checkpoint import load_model
from livegen.training.config import load_run_config
from livegen.training.data import DataOptions, build_data
from livegen.training.train import read_log, read_run_file, train
from tests.training_fixtures import midi_folder, tiny_config


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    data = tmp_path / "data"
    build_data([midi_folder(tmp_path, pieces=6)], data, DataOptions(progress=False))
    # Prefix dropout and augmentation on: their draws must split over ranks exactly too.
    config_file = tiny_config(tmp_path / "c.toml", steps=4, prefix_keep=0.5, augment=True)

    torch.set_num_threads(1)
    single = train(tmp_path / "one", load_run_config(config_file), data, progress=False)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "livegen.training", "ar", "--config", str(config_file), "--data", str(data),
        "--out", str(tmp_path / "two"), "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_run_file(tmp_path / "two")["world"] == 2

    one_log, two_log = read_log(tmp_path / "one"), read_log(tmp_path / "two")
    assert [r["step"] for r in one_log] == [r["step"] for r in two_log]
    for a, b in zip(one_log, two_log):
        assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=1e-5)
    one = load_model(single.checkpoint / "model").state_dict()
    two = load_model(tmp_path / "two" / "checkpoints" / "step-0000004" / "model").state_dict()
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=1e-5, atol=1e-6)
