"""The GPU check's driver: run a plan of steps, each timed and bounded, write everything they
measured as one JSON file (plus one log of their output), and print a short table.

    python scripts/gpu_check.py                      # scripts/gpu_plan.toml, into gpu-check-results/
    python scripts/gpu_check.py --out DIR --budget 480 --only pytest-gpu,train-bf16
    python scripts/gpu_check.py --list               # the plan's commands, nothing run
    python scripts/gpu_check.py --rehearse           # the whole plan on the CPU, made small

scripts/gpu_check.sh finds a Python whose torch sees the GPU and calls this; `./dev gpu` calls
that. A plan is TOML:

    title = "..."
    requires_cuda = true        # false: the plan runs anywhere (the tests' CPU plans)
    budget_s = 480              # the whole run; each step's timeout is cut to what is left

    [[step]]
    name = "bench-decode-4096"
    command = ["{python}", "benchmarks/bench_decode.py", "--device", "{device}"]
    timeout_s = 120
    parse = "json"              # figures: the last stdout line that is a JSON object
                                # ("pytest": the summary's counts; "none": no figures)
    show = { "bf16 p50 ms" = "variants.bf16.ms_per_token_p50" }   # table columns
    requires = ["{python}", "-m", "livegen", "codec", "--help"]   # fails: "not built"
    min_gpus = 2                # fewer present: "skipped"
    rehearse = { "--context" = "512" }   # with --rehearse: these options' values instead

Placeholders in commands: {python} (this interpreter), {repo}, {out}, {work} (a scratch
folder outside {out}), {gpus} (CUDA devices torch sees), {device} ("cuda"; "cpu" rehearsing).

--rehearse runs the plan on the CPU, each step with its `rehearse` options (smaller sizes, no
CUDA graph), and `min_gpus` read as processes: every command, option and figure the GPU run
will use is tried before a GPU's scarce minutes are spent on it.

Statuses: passed, failed, timed out, not built, skipped. Exit status: 0 when every step that
ran passed, 1 when one failed or timed out, 2 when the plan needs CUDA and torch sees none
(one line says so), 3 for a plan that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gpu_figures import describe, last_json_object, pytest_counts

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PLAN = REPO / "scripts" / "gpu_plan.toml"
RESULT_FILE = "gpu-check.json"
LOG_FILE = "gpu-check.log"
MIN_STEP_S = 2.0  # a step is not started with less budget than this left
REQUIRES_TIMEOUT_S = 60.0
TAIL_LINES = 25
PARSERS = ("json", "pytest", "none")
PLACEHOLDERS = ("python", "repo", "out", "work", "gpus", "device")


class PlanError(Exception):
    """A plan file that cannot be run as written."""


@dataclass
class Step:
    name: str
    command: list[str]
    timeout_s: float
    parse: str = "none"
    show: dict[str, str] = field(default_factory=dict)
    requires: list[str] = field(default_factory=list)
    min_gpus: int = 0
    rehearse: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    title: str
    requires_cuda: bool
    budget_s: float
    steps: list[Step]


@dataclass
class StepResult:
    name: str
    status: str  # passed, failed, timed out, not built, skipped
    seconds: float = 0.0
    timeout_s: float = 0.0
    returncode: int | None = None
    command: list[str] = field(default_factory=list)
    reason: str = ""
    summary: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    tail: list[str] = field(default_factory=list)


# ---- the plan ---------------------------------------------------------------------------------


def load_plan(path: Path) -> Plan:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise PlanError(f"{path}: cannot read: {error}") from None
    steps, seen = [], set()
    for number, table in enumerate(data.get("step", []), 1):
        step = _step(table, f"{path} step {number}")
        if step.name in seen:
            raise PlanError(f"{path}: two steps are named {step.name!r}")
        seen.add(step.name)
        steps.append(step)
    if not steps:
        raise PlanError(f"{path}: no [[step]] tables")
    budget = data.get("budget_s", 480)
    if not isinstance(budget, int | float) or budget <= 0:
        raise PlanError(f"{path}: budget_s must be a positive number of seconds")
    return Plan(str(data.get("title", path)), bool(data.get("requires_cuda", True)), budget, steps)


def _step(table: dict[str, Any], where: str) -> Step:
    known = {f for f in Step.__dataclass_fields__}
    unknown = sorted(set(table) - known)
    if unknown:
        raise PlanError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    try:
        step = Step(**table)
    except TypeError as error:
        raise PlanError(f"{where}: {error}") from None
    if not step.command or not all(isinstance(part, str) for part in step.command):
        raise PlanError(f"{where}: command must be a non-empty list of strings")
    if not isinstance(step.timeout_s, int | float) or step.timeout_s <= 0:
        raise PlanError(f"{where}: timeout_s must be a positive number")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in step.rehearse.items()):
        raise PlanError(f"{where}: rehearse must map options to strings")
    if step.parse not in PARSERS:
        raise PlanError(f"{where}: parse must be one of {PARSERS}, got {step.parse!r}")
    names = {name: name for name in PLACEHOLDERS}
    try:
        expand(step.command + step.requires, names)
    except PlanError as error:
        raise PlanError(f"{where}: {error}") from None
    return step


def rehearsed(step: Step) -> Step:
    """The step as the CPU rehearsal runs it: each of its `rehearse` options given the value
    there (added where the command has no such option)."""
    command = list(step.command)
    for option, value in step.rehearse.items():
        if option in command[:-1]:
            command[command.index(option) + 1] = value
        else:
            command += [option, value]
    return replace(step, command=command, min_gpus=0)


def expand(parts: list[str], values: dict[str, str]) -> list[str]:
    out = []
    for part in parts:
        try:
            out.append(part.format(**values))
        except (KeyError, IndexError, ValueError) as error:
            raise PlanError(
                f"{part!r}: unknown placeholder {error}; use {sorted(values)}"
            ) from None
    return out


# ---- running one step -------------------------------------------------------------------------


def run_bounded(command: list[str], timeout_s: float, log: Path) -> tuple[int | None, float]:
    """Run command (stdout and stderr into log) in its own process group; on timeout stop the
    whole group (torchrun's workers too). Returns (return code or None on timeout, seconds)."""
    started = time.perf_counter()
    with open(log, "wb") as handle:
        try:
            proc = subprocess.Popen(
                command,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            handle.write(f"cannot start {command[0]}: {error}\n".encode())
            return 127, time.perf_counter() - started
        try:
            code: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            code = None
    return code, time.perf_counter() - started


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_step(step: Step, values: dict[str, str], gpus: int, left_s: float, work: Path):
    command = expand(step.command, values)
    result = StepResult(step.name, "skipped", timeout_s=step.timeout_s, command=command)
    if gpus < step.min_gpus:
        result.reason = f"needs {step.min_gpus} GPUs, {gpus} present"
        return result, ""
    if left_s < MIN_STEP_S:
        result.reason = "the run's time budget is spent"
        return result, ""
    log = work / f"{step.name}.log"
    if step.requires:
        probe = expand(step.requires, values)
        code, spent = run_bounded(probe, min(REQUIRES_TIMEOUT_S, left_s), log)
        left_s -= spent
        if code != 0:
            result.status = "not built"
            result.reason = f"`{' '.join(probe)}` did not succeed"
            result.tail = _tail(log.read_text(errors="replace"), 5)
            return result, ""
    timeout = min(step.timeout_s, left_s)
    code, result.seconds = run_bounded(command, timeout, log)
    text = log.read_text(errors="replace")
    result.returncode, result.timeout_s = code, round(timeout, 1)
    result.seconds = round(result.seconds, 2)
    if code is None:
        result.status, result.reason = "timed out", f"stopped after {timeout:.0f} s"
    else:
        result.status = "passed" if code == 0 else "failed"
    if step.parse == "json":
        result.figures = last_json_object(text) or {}
    elif step.parse == "pytest":
        result.figures, result.summary = pytest_counts(text)
    result.summary = result.summary or describe(result.figures, step.show)
    if result.status != "passed":
        result.tail = _tail(text, TAIL_LINES)
    return result, text


def _tail(text: str, lines: int) -> list[str]:
    return text.splitlines()[-lines:]


# ---- the machine ------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": _quiet(["git", "rev-parse", "--short", "HEAD"]),
        "nvidia_smi": _quiet(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                "--format=csv,noheader",
            ]
        ),
        "torch": None,
        "cuda_available": False,
        "gpus": [],
    }
    try:
        import torch
    except ImportError as error:
        info["torch_error"] = str(error)
        return info
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["cuda_available"] = torch.cuda.is_available()
    if info["cuda_available"]:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            info["gpus"].append(
                {
                    "name": props.name,
                    "memory_gib": round(props.total_memory / 2**30, 1),
                    "capability": f"{props.major}.{props.minor}",
                    "multiprocessors": props.multi_processor_count,
                }
            )
    return info


def _quiet(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def no_gpu_line(info: dict[str, Any]) -> str:
    if info["torch"] is None:
        return (
            f"gpu-check: no GPU check possible: {info['executable']} has no torch "
            f"({info.get('torch_error')}); see README.md, 'On a GPU'"
        )
    smi = info["nvidia_smi"]
    why = (
        f"nvidia-smi sees {smi.splitlines()[0]} but torch {info['torch']} is not a CUDA build"
        if smi
        else f"torch {info['torch']} sees no CUDA GPU and nvidia-smi finds none"
    )
    return f"gpu-check: no CUDA GPU: {why} (python {info['executable']}); see README.md, 'On a GPU'"


# ---- the run ----------------------------------------------------------------------------------


def write_report(out: Path, report: dict[str, Any]) -> None:
    tmp = out / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out / RESULT_FILE)


def table(results: list[StepResult]) -> str:
    width = max(len(r.name) for r in results)
    lines = [f"{'step':{width}}  {'status':9}  {'s':>6}  figures"]
    for r in results:
        note = r.summary or r.reason
        lines.append(f"{r.name:{width}}  {r.status:9}  {r.seconds:6.1f}  {note}")
    return "\n".join(lines)


def select(plan: Plan, only: str, skip: str) -> list[Step]:
    names = {s.name for s in plan.steps}
    wanted = {n for n in only.split(",") if n}
    unwanted = {n for n in skip.split(",") if n}
    unknown = sorted((wanted | unwanted) - names)
    if unknown:
        raise PlanError(f"no steps named {unknown}; the plan has {sorted(names)}")
    return [s for s in plan.steps if (not wanted or s.name in wanted) and s.name not in unwanted]


def run_plan(
    plan: Plan, steps: list[Step], out: Path, budget_s: float, info: dict, device: str = "cuda"
) -> int:
    out.mkdir(parents=True, exist_ok=True)
    gpus = len(info["gpus"])
    report: dict[str, Any] = {"title": plan.title, "machine": info, "budget_s": budget_s}
    report["device"] = device
    results: list[StepResult] = []
    deadline = time.monotonic() + budget_s
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        work = Path(scratch)
        values = {
            "python": sys.executable,
            "repo": str(REPO),
            "out": str(out.resolve()),
            "work": str(work),
            "gpus": str(gpus),
            "device": device,
        }
        with open(out / LOG_FILE, "w", encoding="utf-8") as log:
            for step in steps:
                print(f"gpu-check: {step.name} ...", flush=True)
                result, text = run_step(step, values, gpus, deadline - time.monotonic(), work)
                results.append(result)
                log.write(f"==== {step.name}: {result.status} ({result.seconds:.1f} s)\n")
                log.write(f"$ {' '.join(result.command)}\n{text}\n")
                log.flush()
                print(f"gpu-check: {step.name}: {result.status} {result.summary or result.reason}")
                report["steps"] = [asdict(r) for r in results]
                write_report(out, report)  # after every step: a killed run keeps what it had
    print()
    print(table(results))
    print(f"\ngpu-check: results in {out / RESULT_FILE}, output of every step in {out / LOG_FILE}")
    bad = [r for r in results if r.status in ("failed", "timed out")]
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN, help="plan TOML")
    parser.add_argument("--out", type=Path, default=Path("gpu-check-results"), help="folder")
    parser.add_argument("--budget", type=float, help="seconds for the whole run (the plan's)")
    parser.add_argument("--only", default="", help="comma-separated step names to run")
    parser.add_argument("--skip", default="", help="comma-separated step names to leave out")
    parser.add_argument("--list", action="store_true", help="print the plan; run nothing")
    parser.add_argument(
        "--rehearse", action="store_true", help="run the plan on the CPU, made small (no GPU)"
    )
    args = parser.parse_args(argv)
    try:
        plan = load_plan(args.plan)
        steps = select(plan, args.only, args.skip)
        if args.rehearse:
            steps = [rehearsed(step) for step in steps]
        if args.list:
            for step in steps:
                print(f"{step.name} ({step.timeout_s:.0f} s): {' '.join(step.command)}")
            return 0
        info = machine_info()
        if plan.requires_cuda and not info["cuda_available"] and not args.rehearse:
            print(no_gpu_line(info))
            return 2
        budget = args.budget if args.budget is not None else plan.budget_s
        device = "cpu" if args.rehearse else "cuda"
        return run_plan(plan, steps, args.out, budget, info, device)
    except PlanError as error:
        print(f"gpu-check: {error}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
