"""`./dev gpu` (scripts/gpu_check.sh -> scripts/gpu_check.py) on machines without a GPU: it says
so in one line and fails; its driver's machinery (steps, timeouts, budget, "not built", one JSON
file) runs a CPU plan; the GPU plan it ships names files and flags that exist."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))

import gpu_check  # noqa: E402  (a script folder, not a package)
import gpu_figures  # noqa: E402


def run(command: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LIVEGEN_PYTHON": sys.executable, **env},
    )


def test_without_a_gpu_the_check_says_so_in_one_line_and_fails(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the check would run")
    done = run(["./dev", "gpu", "--out", str(tmp_path / "out")])
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no CUDA GPU: torch ")
    assert "README.md" in lines[0] and done.stderr == ""
    assert not (tmp_path / "out").exists()


def test_the_driver_lists_the_plan():
    done = run([sys.executable, "scripts/gpu_check.py", "--list"])
    assert done.returncode == 0, done.stderr
    names = [line.split(" ")[0] for line in done.stdout.splitlines()]
    assert names[0] == "pytest-gpu"
    assert {"bench-decode-4096", "bench-decode-32768", "train-bf16", "torchrun-2gpu"} <= set(names)


CPU_PLAN = """
title = "the driver's machinery on a CPU"
requires_cuda = false
budget_s = 60

[[step]]
name = "figures"
command = ["{python}", "-c", "import json; print('noise'); print(json.dumps(dict(a=dict(b=1.5))))"]
timeout_s = 30
parse = "json"
show = { "b" = "a.b", "gone" = "a.c" }

[[step]]
name = "fails"
command = ["{python}", "-c", "import sys; print('boom'); sys.exit(3)"]
timeout_s = 30

[[step]]
name = "hangs"
command = ["{python}", "-c", "HANG", "CHILD_PID"]
timeout_s = 1.5

[[step]]
name = "missing"
command = ["{python}", "-c", "open('MARKER', 'w')"]
requires = ["{python}", "-c", "import sys; print('no such command'); sys.exit(1)"]
timeout_s = 30

[[step]]
name = "two-gpus"
command = ["{python}", "-c", "open('MARKER', 'w')"]
min_gpus = 2
timeout_s = 30
"""

# Starts a child that would outlive it, says so, then hangs: the timeout must stop both.
HANG = (
    "import subprocess, sys, time; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "open(sys.argv[1], 'w').write(str(child.pid)); print('started', flush=True); time.sleep(120)"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_the_driver_runs_bounded_steps_and_writes_one_json(tmp_path):
    plan = tmp_path / "plan.toml"
    marker, child_pid = tmp_path / "ran", tmp_path / "child.pid"
    text = CPU_PLAN.replace("HANG", HANG).replace("CHILD_PID", str(child_pid))
    plan.write_text(text.replace("MARKER", str(marker)), encoding="utf-8")
    out = tmp_path / "out"
    started = time.monotonic()
    done = run([sys.executable, "scripts/gpu_check.py", "--plan", str(plan), "--out", str(out)])
    assert time.monotonic() - started < 60  # the hanging step did not hold the run
    assert done.returncode == 1, done.stdout + done.stderr  # a step failed
    report = json.loads((out / gpu_check.RESULT_FILE).read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == ["figures", "fails", "hangs", "missing", "two-gpus"]
    assert steps["figures"]["status"] == "passed"
    assert steps["figures"]["figures"] == {"a": {"b": 1.5}}
    assert steps["figures"]["summary"] == "b 1.5, gone ?"
    assert steps["fails"]["status"] == "failed" and steps["fails"]["returncode"] == 3
    assert steps["fails"]["tail"] == ["boom"]
    assert steps["hangs"]["status"] == "timed out" and steps["hangs"]["tail"] == ["started"]
    assert not alive(int(child_pid.read_text()))  # its whole process group was stopped
    assert steps["missing"]["status"] == "not built"
    assert steps["missing"]["tail"] == ["no such command"]
    assert steps["two-gpus"]["status"] == "skipped"
    assert "needs 2 GPUs" in steps["two-gpus"]["reason"]
    assert not marker.exists()  # neither command behind a missing requirement ran
    assert report["machine"]["torch"] == torch.__version__
    log = (out / gpu_check.LOG_FILE).read_text()
    assert "==== hangs: timed out" in log and "noise" in log
    table = done.stdout[done.stdout.index("step ") :]
    assert re.search(r"hangs\s+timed out", table) and re.search(r"figures\s+passed.*b 1.5", table)


def test_the_budget_cuts_the_timeouts_and_skips_what_does_not_fit(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        textwrap.dedent(
            """
            requires_cuda = false
            [[step]]
            name = "slow"
            command = ["{python}", "-c", "import time; time.sleep(60)"]
            timeout_s = 50
            [[step]]
            name = "next"
            command = ["{python}", "-c", "print(1)"]
            timeout_s = 50
            """
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    done = run(
        [sys.executable, "scripts/gpu_check.py", "--plan", str(plan), "--out", str(out)]
        + ["--budget", "3"]
    )
    assert done.returncode == 1
    steps = json.loads((out / gpu_check.RESULT_FILE).read_text())["steps"]
    assert steps[0]["status"] == "timed out" and steps[0]["timeout_s"] <= 3
    assert steps[0]["seconds"] < 20
    assert steps[1]["status"] == "skipped" and "budget" in steps[1]["reason"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[step]]\nname = 'a'\ncommand = []\ntimeout_s = 1", "non-empty list"),
        ("[[step]]\nname = 'a'\ncommand = ['x']\ntimeout_s = 0", "timeout_s"),
        ("[[step]]\nname = 'a'\ncommand = ['x']\ntimeout_s = 1\ncolour = 2", "unknown keys"),
        ("[[step]]\nname = 'a'\ncommand = ['x']\ntimeout_s = 1\nparse = 'xml'", "parse"),
        ("[[step]]\nname = 'a'\ncommand = ['{pyton}']\ntimeout_s = 1", "placeholder"),
        ("[[step]]\nname = 'a'\ncommand = ['x']\ntimeout_s = 1\nrehearse = {n = 1}", "rehearse"),
        ("title = 'no steps'", "no [[step]]"),
        ("[[step", "cannot read"),
    ],
)
def test_a_bad_plan_is_one_clear_line(tmp_path, text, message):
    plan = tmp_path / "plan.toml"
    plan.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    done = run([sys.executable, "scripts/gpu_check.py", "--plan", str(plan), "--out", str(out)])
    assert done.returncode == 3 and not out.exists()
    assert done.stderr.startswith("gpu-check: ") and message in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_pytest_and_json_lines_are_read_from_the_output():
    text = 'x\n{not json}\n{"a": 1}\n[1]\n'
    assert gpu_figures.last_json_object(text) == {"a": 1}
    assert gpu_figures.last_json_object("nothing") is None
    counts, line = gpu_figures.pytest_counts("...\n==== 21 passed, 2 skipped, 1 error in 3.5s ====")
    assert counts == {"passed": 21, "skipped": 2, "errors": 1}
    assert line == "21 passed, 2 skipped, 1 error in 3.5s"


def test_the_shipped_gpu_plan_fits_and_names_what_exists():
    plan = gpu_check.load_plan(gpu_check.DEFAULT_PLAN)
    assert plan.requires_cuda and plan.budget_s <= 8 * 60
    values = {k: k for k in gpu_check.PLACEHOLDERS}
    for step in plan.steps:
        command = gpu_check.expand(step.command, values)
        assert step.timeout_s <= plan.budget_s
        for name in (part for part in command if part.endswith(".py")):
            path = REPO / name
            assert path.is_file(), f"{step.name}: {name} is missing"
            # Every option the step passes is one the script defines (read from its source:
            # no torch import for this).
            source = path.read_text(encoding="utf-8")
            flags = [part for part in command if part.startswith("--")] + list(step.rehearse)
            for flag in flags:
                assert f'"{flag}"' in source, f"{step.name}: {name} defines no {flag}"


def test_a_rehearsed_step_takes_its_rehearse_options_and_any_number_of_gpus():
    step = gpu_check.Step(
        "s",
        ["{python}", "x.py", "--tokens", "400", "--fast"],
        10,
        min_gpus=2,
        rehearse={"--tokens": "16", "--rounds": "1"},
    )
    small = gpu_check.rehearsed(step)
    assert small.command == ["{python}", "x.py", "--tokens", "16", "--fast", "--rounds", "1"]
    assert small.min_gpus == 0 and step.command[3] == "400"  # the plan's own step is unchanged


def test_the_whole_gpu_plan_rehearses_on_the_cpu(tmp_path):
    """`./dev gpu --rehearse`: every step of the shipped plan, small and on the CPU, runs and
    gives the figures its table reads, so the first GPU's minutes are not spent on a typo."""
    out = tmp_path / "out"
    done = run([sys.executable, "scripts/gpu_check.py", "--rehearse", "--out", str(out)])
    report = json.loads((out / gpu_check.RESULT_FILE).read_text())
    steps = {s["name"]: s for s in report["steps"]}
    plan = gpu_check.load_plan(gpu_check.DEFAULT_PLAN)
    assert list(steps) == [s.name for s in plan.steps] and report["device"] == "cpu"
    failed = {n: s["tail"] for n, s in steps.items() if s["status"] != "passed"}
    assert done.returncode == 0 and not failed, failed
    figures = {n: s["figures"] for n, s in steps.items()}
    assert figures["pytest-gpu"]["passed"] > 0
    assert figures["bench-decode-4096"]["variants"]["bf16"]["ms_per_token_p50"] > 0
    assert set(figures["livegen-bench"]["presets"]) == {"piano", "audio-piano"}
    assert figures["torchrun-2gpu"]["world"] == 2 and figures["train-bf16"]["steps"] == 3
    codec = figures["codec"]
    assert codec["codes_agree_with_cpu"] == 1.0 and 0 < codec["stream_decode_rtf"] < 1
    assert all(s["summary"] for s in steps.values())


def test_no_install_imports_livegen_from_the_source_tree(tmp_path):
    """The path gpu_check.sh takes where livegen is not installed: a bare Python (here the
    virtual environment's base interpreter, which has no livegen) imports it from the tree."""
    base = getattr(sys, "_base_executable", sys.executable)
    code = (
        "import livegen.kernels.errors as e, livegen.models, livegen.training, livegen.presets; "
        "print(e.__file__)"
    )
    # The image's own sitecustomize, which ours hides on sys.path, still runs.
    (tmp_path / "sitecustomize.py").write_text("print('the image set itself up')\n")
    done = subprocess.run(
        [base, "-s", "-c", code],
        cwd=REPO,  # livegen/ itself is importable from here; the mapped packages are not
        capture_output=True,
        text=True,
        env={
            "PYTHONPATH": f"{SCRIPTS / 'no_install'}:{tmp_path}",
            "PATH": os.environ.get("PATH", ""),
        },
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "the image set itself up"
    assert Path(second) == REPO / "kernels" / "errors.py"


def test_the_training_data_of_random_tunes_is_a_data_folder(tmp_path):
    from gpu_tasks import make_data

    from livegen.kernels.tokenizer import decode_tokens
    from livegen.training.shards import TokenShards, read_index

    summary = make_data(tmp_path, pieces=12)
    index = read_index(tmp_path)
    assert summary["files"] == 12 and summary["pieces_per_split"]["val"] >= 1
    shards = TokenShards(tmp_path, "train", index)
    window = shards.window(0, 0, 400)
    assert len(decode_tokens(window[1:])) > 20  # real notes after BEGIN


def test_the_run_config_is_the_shipped_architecture_with_the_check_s_schedule():
    from gpu_tasks import TRAIN_CONFIG, run_config

    from livegen.training.config import RunConfig

    written = tomllib.loads(run_config(steps=40, batch=8, bf16=True))
    config = RunConfig.from_dict(written)
    shipped = tomllib.loads(TRAIN_CONFIG.read_text())
    assert config.model.to_dict() == RunConfig.from_dict(shipped).model.to_dict()
    assert (config.train.steps, config.train.batch_size, config.train.bf16) == (40, 8, True)
    assert config.train.augment.transpose == shipped["train"]["augment"]["transpose"]
