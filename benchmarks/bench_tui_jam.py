"""livegen's own JACK xruns with the terminal UI (`livegen` in a real terminal, tmux) and
without it (`livegen jam --headless`), side by side on one JACK server, in one run.

    .venv/bin/python benchmarks/bench_tui_jam.py [--seconds 60] [--runs ui,headless,ui,headless]
        [--phases idle,playing] [--rt] [--preset P]

Starts its own JACK server (dummy driver, 48 kHz, 128 frames; without --rt as the issue's
user ran it, `jackd --no-realtime`; --rt: real-time scheduling), then for each run in turn
starts livegen the way a user does (the UI: the installed `livegen` in a 120x40 tmux pane,
its settings file naming the preset, virtual ports and JACK; headless: `livegen jam
--headless` with the same settings), waits until its engine runs, and for each phase counts
jackd's xruns for --seconds:

- idle: nobody plays (the issue's case: the UI sat idle);
- playing: a peer process (benchmarks/bench_jam.py's) plays six-note phrases into "livegen in"
  and listens to "livegen out", so the model answers for most of the time.

A run named KIND-ordinary (ui-ordinary, headless-ordinary) sets LIVEGEN_NO_REALTIME: livegen
leaves its JACK threads as the server made them, as it did before it raised them itself; on a
server without real-time scheduling that is the issue's case, measured in the same run.

Each xrun is put down to the clients jackd names as late; livegen's own are those naming its
audio client (PortAudio) or its MIDI clients (livegen in / livegen out). With cyclictest
(Debian rt-tests) running as in bench_jam, each xrun is given the machine gap it came with (a
CPU away for half a period or more: no client could have run), so the count that matters is
livegen's own xruns with no machine gap. Also: the CPU time of livegen's processes (the UI's,
the engine's, the model's, the audio's), per process. Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchmarks.bench_jam as bench_jam  # noqa: E402 - the path above first
from benchmarks.bench_jam import (  # noqa: E402
    child,
    gap_before,
    probe_gaps,
    start_jack,
    start_probe,
)
from livegen import realtime  # noqa: E402
from livegen.kernels.midi_codes import KIND_MASK, NOTE_ON_STATUS  # noqa: E402
from tests.jack_log import late_counts, stamped, xruns  # noqa: E402
from tests.tmux import Tmux, livegen_command  # noqa: E402

LIVEGEN = Path(sys.executable).parent / "livegen"
OWN_CLIENTS = ("PortAudio", "livegen in", "livegen out")
SILENCE, RESPONSE = 0.6, 4.0  # the controls' defaults: the UI and headless run them alike
START_TIMEOUT = 120.0


@dataclass
class Setup:
    preset: str
    folder: Path
    log: Path  # jackd's stamped log
    period: int
    env: dict[str, str]


# ---- starting and stopping livegen -----------------------------------------------------------


class Livegen:
    """One livegen session: the UI in tmux, or the headless engine; started, waited for,
    stopped the way a user stops it (Ctrl+Q; Ctrl-C)."""

    def __init__(self, kind: str, setup: Setup) -> None:
        kind, _, ordinary = kind.partition("-")
        if ordinary:  # "ui-ordinary": livegen's threads left as the server made them
            setup = dataclasses.replace(setup, env={**setup.env, realtime.OPT_OUT: "1"})
        self.kind, self.setup = kind, setup
        self.tmux: Tmux | None = None
        self.process: subprocess.Popen | None = None
        self.out = setup.folder / f"{kind}-{uuid.uuid4().hex[:6]}.out"

    def start(self) -> None:
        s = self.setup
        if self.kind == "ui":
            self.tmux = Tmux("livegen-bench")
            command = livegen_command(LIVEGEN, s.env)
            self.tmux.start(f"{command}; echo LIVEGEN-EXIT=$? > {self.out}; sleep 30")
        else:
            command = [str(LIVEGEN), "jam", "--headless", "--api", "jack", "--preset", s.preset]
            command += ["--record", str(s.folder / "takes")]
            with open(self.out, "w") as out:
                self.process = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, env=s.env
                )

    def running(self) -> bool:
        if self.kind == "ui":
            return " running" in self.tmux.screen().split("╭")[0]
        return "livegen jam:" in self.out.read_text(errors="replace")

    def wait_running(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self.running():
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"livegen exited: {self.out.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                screen = self.tmux.screen() if self.tmux else self.out.read_text()
                raise SystemExit(f"livegen ({self.kind}) did not start:\n{screen}")
            time.sleep(0.25)

    def pids(self) -> list[int]:
        """livegen's processes: the one started and all its descendants."""
        if self.kind == "ui":
            top = [int(p) for p in self.tmux.run("list-panes", "-F", "#{pane_pid}").split()]
        else:
            top = [self.process.pid]
        return descendants(top)

    def stop(self) -> None:
        if self.kind == "ui":
            self.tmux.keys("C-q")
            deadline = time.monotonic() + 60
            while not self.out.exists() and time.monotonic() < deadline:
                time.sleep(0.25)
            self.tmux.kill()
        else:
            self.process.send_signal(2)  # Ctrl-C
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def descendants(roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> dict[str, float]:
    """utime + stime of each process, by "name pid" (its command line's short form)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        out[f"{short_name(cmd)} {pid}"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def short_name(cmd: list[bytes]) -> str:
    text = b" ".join(cmd).decode(errors="replace")
    if "spawn_main" in text:
        return "child"  # multiprocessing's spawned children: engine, model, audio
    if "livegen" in text:
        return "livegen"
    return Path(cmd[0].decode(errors="replace")).name or "?"


# ---- counting ------------------------------------------------------------------------------


def measure(livegen: Livegen, setup: Setup, phase: str, seconds: float) -> dict:
    probe = start_probe()
    pids = livegen.pids()
    cpu_before = cpu_seconds(pids)
    start = time.perf_counter()
    if phase == "playing":
        call = f"peer({seconds}, {SILENCE}, {RESPONSE}, True)"
        done = subprocess.run(
            child(call), capture_output=True, text=True, timeout=seconds + 60, env=setup.env
        )
        if done.returncode:
            raise SystemExit(f"peer failed: {done.stderr[-2000:]}")
        start, end = json.loads(done.stdout.splitlines()[-1])["playing"]
        heard = json.loads(done.stdout.splitlines()[-1])["heard"]
    else:
        time.sleep(seconds)
        end, heard = time.perf_counter(), []
    cpu_after = cpu_seconds(pids)
    gaps = probe_gaps(probe)
    time.sleep(0.3)  # jackd's last lines reach its log
    events = xruns(stamped(setup.log.read_text(errors="replace"), start, end))
    period_ms = 1e3 * setup.period / 48000
    if gaps is not None:
        gaps = [g for g in gaps if start - 0.05 <= g[0] <= end]
    rows = []
    for xrun in events:
        gap = None if gaps is None else gap_before(xrun.at, gaps, period_ms / 2)
        rows.append({"at": round(xrun.at - start, 3), "clients": sorted(xrun.late), "gap_ms": gap})
    own = [r for r in rows if any(c in OWN_CLIENTS for c in r["clients"])]
    cpu = {k: round(cpu_after[k] - v, 2) for k, v in cpu_before.items() if k in cpu_after}
    return {
        "seconds": round(end - start, 1),
        "xruns": len(rows),
        "xruns_own": len(own),
        "xruns_own_no_gap": None if gaps is None else sum(not r["gap_ms"] for r in own),
        "late_clients": late_counts(events),
        "machine_gaps_over_period": None
        if gaps is None
        else sum(ms > period_ms for _, ms, _ in gaps),
        "machine_gap_longest_ms": None if gaps is None else max((g[1] for g in gaps), default=0),
        "model_notes": sum(m[0] & KIND_MASK == NOTE_ON_STATUS and m[2] > 0 for _, m in heard),
        "cpu_s": cpu,
        "cpu_percent": round(100 * sum(cpu.values()) / max(end - start, 1e-9), 1),
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "xrun_list": rows,
    }


def run_one(kind: str, setup: Setup, phases: list[str], seconds: float) -> dict:
    livegen = Livegen(kind, setup)
    livegen.start()
    try:
        livegen.wait_running()
        time.sleep(2.0)  # the first seconds after start (model warm-up) are not the jam's
        return {"kind": kind, **{p: measure(livegen, setup, p, seconds) for p in phases}}
    finally:
        livegen.stop()


def write_settings(folder: Path, preset: str) -> Path:
    config = folder / "config"
    config.mkdir(exist_ok=True)
    (config / "settings.toml").write_text(
        "[jam]\n"
        f'preset = "{preset}"\n'
        'input = "virtual"\n'
        'output = "virtual"\n'
        'api = "jack"\n'
        f'record_dir = "{folder / "takes"}"\n',
        encoding="utf-8",
    )
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="piano", help="preset name or .toml path")
    parser.add_argument("--seconds", type=float, default=60.0, help="per phase")
    parser.add_argument(
        "--runs",
        default="ui,headless,ui,headless",
        help="ui or headless, in turn; KIND-ordinary: with livegen's threads left as the "
        f"server made them ({realtime.OPT_OUT}=1, how livegen ran before it raised them)",
    )
    parser.add_argument("--phases", default="idle,playing")
    parser.add_argument("--rt", action="store_true", help="run jackd with real-time priority")
    parser.add_argument("--period", type=int, default=128)
    parser.add_argument("--jack-log", type=Path, help="keep a copy of jackd's log here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        log = folder / "jackd.log"
        bench_jam.SERVER = f"livegen-tui-bench-{os.getpid()}"  # beside a bench_jam run
        server = start_jack(args.period, args.rt, log)  # sets JACK_DEFAULT_SERVER here
        config = write_settings(folder, args.preset)
        env = {**os.environ, "LIVEGEN_CONFIG_DIR": str(config)}
        setup = Setup(args.preset, folder, log, args.period, env)
        results = []
        try:
            for kind in args.runs.split(","):
                results.append(run_one(kind, setup, args.phases.split(","), args.seconds))
                report_one(results[-1])
        finally:
            server.terminate()
            server.wait(timeout=10)
            if args.jack_log:
                args.jack_log.write_text(log.read_text(errors="replace"))
    setup_line = {"preset": args.preset, "period": args.period, "realtime": args.rt}
    print(json.dumps({"bench": "tui_jam", **setup_line, "cpus": os.cpu_count(), "runs": results}))


def report_one(result: dict) -> None:
    for phase, r in result.items():
        if phase == "kind":
            continue
        gaps = (
            "no probe"
            if r["xruns_own_no_gap"] is None
            else f"{r['xruns_own_no_gap']} with no machine gap "
            f"({r['machine_gaps_over_period']} gaps > a period, "
            f"longest {r['machine_gap_longest_ms']:.1f} ms)"
        )
        print(
            f"{result['kind']:9s} {phase:8s} {r['seconds']:5.1f} s: xruns {r['xruns']}, "
            f"livegen's own {r['xruns_own']}, {gaps}; late {r['late_clients']}; "
            f"CPU {r['cpu_percent']}%; model notes {r['model_notes']}; load {r['loadavg_1min']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
