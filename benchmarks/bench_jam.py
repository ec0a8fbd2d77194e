"""The live jam through JACK: reaction, input -> context, xruns, late events; the decode worker
in its own process vs in a thread.

    .venv/bin/python benchmarks/bench_jam.py [--preset piano] [--seconds 60] [--rt]

Starts its own JACK server (dummy driver, 48 kHz, 128 frames; --rt: real-time scheduling, as
a musician's JACK runs), then for each worker mode runs `livegen jam`'s engine (continue mode,
FluidSynth through a 128-frame sounddevice stream, virtual MIDI ports) while a PEER process,
a JACK MIDI client like a keyboard plus a DAW, plays phrases into "livegen in" and listens to
"livegen out", stamping on the system-wide monotonic clock the engine also uses. Figures:

- reaction: phrase end decided -> first model note out. The engine decides at the player's
  last release + silence_seconds. "engine": decision -> the note handed to MIDI out;
  "through JACK": the peer's release + silence -> the note arriving at the peer (JACK's input
  and output periods included).
- input -> context: a player's note arriving at the engine -> in the model's context.
- xruns: jackd's own count (its log, each line stamped on the same clock): cycles in which
  some client did not finish, while the peer plays (the goal) and, apart, while clients come
  and go (set-up, teardown), with the clients jackd named as late, how many were graph-wide
  stalls (the peer's idle player late too) and where in the phrase cycle each came;
  PortAudio's underflow flags; and the audio callback's longest run and longest gap between
  two starts (late start vs long run).
- whose xruns: worker "none" runs the peer with no engine at all, and worker "load" runs it
  beside a plain CPU load of the engine's size (--load-percent of one core, in 1 ms bursts)
  that touches no JACK or audio, so the harness' and the machine's own xruns are measured
  beside livegen's, in the same run. Each run also reports the CPU time the hypervisor stole
  from this VM (/proc/stat), and, where cyclictest (Debian rt-tests) is installed, the
  machine's gaps: a thread pinned to each CPU above every JACK thread that woke late, and
  the xruns that came with such a gap (the CPU was away; no client could have run).
- late events: model notes sent more than one 10 ms step after their time.

Without presets/piano.toml it uses a random-weight model of the same size (context 1024,
latents 128, dim 256, heads 4, layers 4), with a density bias so it plays about as densely as
piano music (random weights rest a lot). Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.jack_log

from tests.jack_log import TIMER_XRUN, late_counts, stamped, xruns  # noqa: E402

SERVER = "livegen-bench"
PHRASE = [60, 62, 64, 65, 67, 69]
PROBE_INTERVAL_US, PROBE_LATE_US = 250, 500  # the machine-gap probe's wake-up, and "late"
NOTE, GAP = 0.12, 0.05


def child(call: str) -> list[str]:
    """The command that runs `call` (a call of this module's functions) in a new Python."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.bench_jam import *; "
    return [sys.executable, "-c", code + call]


# ---- the peer: plays into livegen, listens to it (its own process) ------------------------


def peer(seconds: float, silence: float, response: float, engine: bool = True) -> None:
    import rtmidi

    from livegen import realtime
    from livegen.kernels.midi_codes import NOTE_OFF_STATUS, NOTE_ON_STATUS

    # On a server without real-time scheduling, the peer's JACK threads are raised as
    # livegen raises its own: the harness must not be the graph's weak link.
    with realtime.new_threads_realtime():
        player = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "bench-player")
        player.open_virtual_port("out")
        listener = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "bench-listener", queue_size_limit=65536)
        listener.open_virtual_port("in")
    env = dict(os.environ)
    if engine:  # without one (the baseline), the peer plays into nothing, as the same clients
        for source, destination in (
            ("bench-player:out", "livegen in:livegen in"),
            ("livegen out:livegen out", "bench-listener:in"),
        ):
            subprocess.run(["jack_connect", source, destination], env=env, check=True)
    heard: list[tuple[float, list[int]]] = []
    running = True

    def listen() -> None:
        while running:
            got = listener.get_message()
            if got is None:
                time.sleep(0.0002)
            else:
                heard.append((time.perf_counter(), got[0]))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(0.3)
    releases, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        for pitch in PHRASE:
            player.send_message([NOTE_ON_STATUS, pitch, 90])
            time.sleep(NOTE)
            player.send_message([NOTE_OFF_STATUS, pitch, 0])
            released = time.perf_counter()
            time.sleep(GAP)
        releases.append(released)
        time.sleep(silence + response + 0.3)
    end = time.perf_counter()
    time.sleep(0.3)
    running = False
    thread.join()
    # Close the JACK clients before exiting: a process that exits with them open leaves jackd
    # waiting on dead clients for a few cycles, xruns that are the harness', not livegen's.
    for client in (player, listener):
        client.close_port()
        client.delete()
    print(json.dumps({"releases": releases, "heard": heard, "playing": [start, end]}))


def burn(percent: float) -> None:
    """A CPU load with no audio in it: numpy sums over 9 MB (memory traffic like a model
    step's) in 1 ms bursts, `percent` of one core, until killed."""
    import numpy as np

    data = np.random.rand(1500, 1500).astype(np.float32)
    rest = 1e-3 * (100.0 / percent - 1.0)
    while True:
        start = time.perf_counter()
        while time.perf_counter() - start < 1e-3:
            data.sum()
        time.sleep(rest)


def stolen_ms() -> float:
    """CPU time the hypervisor has stolen from this machine, all CPUs (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) * 1e3 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def start_probe() -> subprocess.Popen | None:
    """cyclictest (Debian rt-tests) as the machine-gap probe: a thread pinned to each CPU at
    SCHED_FIFO 80, above every JACK thread, waking every 250 us. Nothing in user space can keep
    it from running; when it wakes late, the CPU itself was away (the hypervisor ran something
    else, or the kernel did not preempt). It runs until probe_gaps stops it. None where
    cyclictest is missing."""
    command = ["cyclictest", "-m", "-S", "-p", "80", "-i", str(PROBE_INTERVAL_US)]
    command += [f"--spike={PROBE_LATE_US}", "--spike-nodes=100000"]
    command += ["-q", "--default-system"]
    try:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError:
        return None


def probe_gaps(probe: subprocess.Popen | None) -> list[tuple[float, float, int]] | None:
    """Stop the probe (SIGINT: it prints its spikes as it ends) and return its late wakes,
    [(when, late ms, CPU)] on the monotonic clock; None where it could not run (not
    installed, or not allowed real-time scheduling)."""
    if probe is None:
        return None
    if probe.poll() is None:
        probe.send_signal(signal.SIGINT)
    try:
        out, _ = probe.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.communicate()
        return None
    if probe.returncode:
        return None
    gaps = []
    for line in out.splitlines():  # "T: 0 Spike:     141: TS:  21484161118" (us)
        if "Spike:" in line and "TS:" in line:
            late = float(line.split("Spike:")[1].split(":")[0])
            woke = float(line.split("TS:")[1]) / 1e6
            cpu = int(line.split("T:")[1].split()[0])  # -S: thread N is pinned to CPU N
            gaps.append((woke - late / 1e6, late / 1e3, cpu))
    return sorted(gaps)


def gap_before(t: float, gaps: list[tuple[float, float, int]], least_ms: float) -> float:
    """The longest probe gap (ms) of at least `least_ms` that was going on, or had ended at
    most 30 ms before, when jackd logged an xrun at `t` (its log line comes a little after
    the cycle); 0: none. The CPU was away just then."""
    near = (ms for began, ms, _ in gaps if ms >= least_ms and began <= t <= began + ms / 1e3 + 0.03)
    return max(near, default=0)


# ---- the bench -----------------------------------------------------------------------------


def random_preset(folder: Path) -> Path:
    """A preset of the default's size with random weights (the trained one may not exist)."""
    import torch

    from livegen.models.checkpoint import save_model
    from livegen.models.config import PerceiverARConfig
    from livegen.models.perceiver_ar import PerceiverAR
    from livegen.models.preset import ModelSpec, Preset, SamplingDefaults, save_preset

    torch.manual_seed(0)
    config = PerceiverARConfig(context=1024, latents=128, dim=256, heads=4, layers=4)
    save_model(PerceiverAR(config), folder / "bench")
    preset = Preset("bench", "random weights, the size of piano", ModelSpec(path="bench"))
    preset.sampling = SamplingDefaults()
    path = folder / "bench.toml"
    save_preset(preset, path)
    return path


def requantized(preset: Path, quantize: str, folder: Path) -> Path:
    """A copy of a preset's TOML with another [model].quantize, pointing at the same model."""
    import dataclasses

    from livegen.models.preset import ModelSpec, load_preset, save_preset

    loaded = load_preset(preset)
    copy = dataclasses.replace(loaded, model=ModelSpec(str(loaded.model_dir), quantize))
    path = folder / f"{loaded.name}-{quantize}.toml"
    save_preset(copy, path)
    return path


def start_jack(period: int, realtime: bool, log: Path) -> subprocess.Popen:
    """jackd on the dummy driver; its stderr goes to `log`, each line stamped with the monotonic
    clock the peer and the engine use, so xruns can be placed in or out of the playing time."""
    command = ["jackd", "-n", SERVER] + (["-R", "-P", "70"] if realtime else ["--no-realtime"])
    command += ["-d", "dummy", "-r", "48000", "-p", str(period)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stamp() -> None:
        with open(log, "w") as out:
            for line in server.stderr:
                out.write(f"{time.perf_counter():.6f} {line}")
                out.flush()

    threading.Thread(target=stamp, daemon=True).start()
    os.environ["JACK_DEFAULT_SERVER"] = SERVER
    os.environ["JACK_NO_START_SERVER"] = "1"
    ready = subprocess.run(["jack_wait", "-w", "-t", "10"], capture_output=True, text=True)
    if "available" not in ready.stdout:
        server.kill()
        raise SystemExit(f"jackd did not start ({' '.join(command)}); see {log}")
    return server


def jack_xruns(log: Path, start: float, end: float) -> tuple[dict[str, int], list[float]]:
    """jackd's xruns (cycles some client did not finish) stamped within start..end: how many,
    how many were STALLS (the peer's player, idle, was late too: the graph as a whole did not
    run in time, whoever's client is downstream), and in how many each client was named as
    late; and when each was logged."""
    lines = list(stamped(log.read_text(errors="replace"), start, end))
    events = xruns(lines)
    timer = sum(TIMER_XRUN in line for _, line in lines)
    stalls = sum("bench-player" in x.late for x in events)
    named = {f"late:{k}": v for k, v in late_counts(events).items()}
    return {"xruns": len(events), "stalls": stalls, "driver_timer": timer, **named}, [
        x.at for x in events
    ]


def pct(values: list[float], q: float) -> float | None:
    """The q-th percentile (livegen.benchmark.percentile), None for no values."""
    from livegen.benchmark import percentile

    return percentile(sorted(values), q) if values else None


@dataclass
class Bench:
    """What every run shares."""

    preset: Path
    seconds: float
    log: Path  # jackd's stamped log
    density: float
    load_percent: float
    period: int  # JACK frames at 48 kHz


def session(bench: Bench, worker: str) -> dict:
    """One run of the peer against the engine with its decode worker in `worker` ("process",
    "thread"), or, for worker "none", against no engine at all: the harness' own xruns; for
    worker "load", no engine but a plain CPU load of `bench.load_percent`."""
    from livegen.controls import Controls, JamSettings
    from livegen.engine import JamEngine

    silence, response = 0.4, 2.0
    engine = load = None
    opened = time.perf_counter()  # set-up xruns count from here (not the previous session's)
    seconds, log = bench.seconds, bench.log
    if worker == "load":
        load = subprocess.Popen(child(f"burn({bench.load_percent})"))
    elif worker != "none":
        settings = JamSettings(preset=str(bench.preset), api="jack", blocksize=bench.period, seed=0)
        controls = Controls(
            silence_seconds=silence, response_seconds=response, density=bench.density
        )
        engine = JamEngine(settings, controls, worker_mode=worker)
        engine.measured = {"input_ms": [], "reaction_ms": [], "ms_per_token": []}
        engine.start()
        problems = engine.stats().problems
        tokens_before = engine.worker_stats.tokens
    probe = start_probe()
    begin, stolen = time.perf_counter(), stolen_ms()
    call = f"peer({seconds}, {silence}, {response}, {engine is not None})"
    try:
        done = subprocess.run(child(call), capture_output=True, text=True, timeout=seconds + 120)
        if done.returncode:
            raise SystemExit(f"peer failed: {done.stderr[-2000:]}")
        result = json.loads(done.stdout.splitlines()[-1])
    except BaseException:  # a failed peer leaves nothing running behind it
        if engine is not None:
            engine.stop()
        raise
    finally:
        wall, stolen = time.perf_counter() - begin, stolen_ms() - stolen
        gaps = probe_gaps(probe)
        if load is not None:
            load.kill()
            load.wait()
    time.sleep(0.2)  # let jackd's last lines reach the log
    playing, times = jack_xruns(log, *result["playing"])
    around, _ = jack_xruns(log, opened, begin + wall)
    if gaps is not None:
        first, last = result["playing"]
        gaps = [gap for gap in gaps if first <= gap[0] <= last]
    period_ms = 1e3 * bench.period / 48000
    # A gap of half a period or more can make a client miss its cycle; a shorter one cannot.
    before = None if gaps is None else [gap_before(t, gaps, period_ms / 2) for t in times]
    outside = {k: v - playing.get(k, 0) for k, v in around.items() if v - playing.get(k, 0)}
    common = {
        "worker": worker,
        "seconds": round(wall, 1),
        "playing_seconds": round(result["playing"][1] - result["playing"][0], 1),
        "phrases": len(result["releases"]),
        "xruns_jack_playing": playing["xruns"],
        "xruns_jack_playing_stalls": playing["stalls"],
        "xruns_jack_playing_clients": {k: v for k, v in playing.items() if k.startswith("late:")},
        # Where in the phrase cycle each came: seconds after the player's last release (the
        # phrase is about -1 to 0, the silence 0 to 0.4, the answer 0.4 to 2.4).
        "xruns_jack_playing_phase_s": [
            round(t - max((r for r in result["releases"] if r <= t + 1.2), default=t), 3)
            for t in times
        ],
        "xruns_jack_setup_teardown": outside,
        "stolen_ms": round(stolen, 1),
        # The probe's view: gaps of a CPU longer than a JACK period, and the xruns that came
        # with a gap (None: no probe here).
        "machine_gaps_over_period": None
        if gaps is None
        else sum(ms > period_ms for _, ms, _ in gaps),
        "machine_gap_longest_ms": None if gaps is None else max((g[1] for g in gaps), default=0),
        # (seconds into the run, ms, CPU) of each: one pause of the whole VM shows on every CPU
        "machine_gaps_over_period_at": None
        if gaps is None
        else [(round(t - begin, 3), ms, cpu) for t, ms, cpu in gaps if ms > period_ms],
        "xruns_jack_playing_machine": None if gaps is None else sum(map(bool, before)),
        "xruns_jack_playing_gap_before_ms": before,
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }
    if engine is None:
        return common
    stats = engine.stats()
    latest = engine.audio.latest if engine.audio is not None else None
    audio = dataclasses.asdict(latest) if latest is not None else {}
    tokens = engine.worker_stats.tokens - tokens_before
    engine.stop()
    reactions_jack = []
    for release in result["releases"]:
        decided = release + silence
        model = [t for t, m in result["heard"] if m[0] == 0x91 and m[2] > 0 and t > decided - 0.1]
        if model and model[0] < decided + 1.0:
            reactions_jack.append((model[0] - decided) * 1e3)
    measured = engine.measured
    return {
        **common,
        "reaction_engine_ms_p50": pct(measured["reaction_ms"], 50),
        "reaction_engine_ms_max": max(measured["reaction_ms"], default=None),
        "reaction_jack_ms_p50": pct(reactions_jack, 50),
        "reaction_jack_ms_max": max(reactions_jack, default=None),
        "input_to_context_ms_p50": pct(measured["input_ms"], 50),
        "input_to_context_ms_p90": pct(measured["input_ms"], 90),
        "input_notes": len(measured["input_ms"]),
        "input_transit_ms_p50": pct(measured.get("transit_ms", []), 50),
        "model_note_sent_late_ms_p50": pct(measured.get("dispatch_late_ms", []), 50),
        "model_note_sent_late_ms_p99": pct(measured.get("dispatch_late_ms", []), 99),
        "model_note_sent_late_ms_max": max(measured.get("dispatch_late_ms", []), default=None),
        "xruns_portaudio": stats.xruns,
        "audio_callback_max_ms": audio.get("max_callback_ms"),
        "audio_callback_max_gap_ms": audio.get("max_gap_ms"),
        "audio_slow_callbacks": audio.get("slow_callbacks"),
        "late_events": stats.late_events,
        "model_tokens_per_s": round(tokens / wall, 1),
        "model_notes_per_s": round(
            sum(m[0] == 0x91 and m[2] > 0 for _, m in result["heard"]) / wall, 1
        ),
        "ms_per_token_p50": pct(measured["ms_per_token"], 50),
        "cpu_percent": round(stats.cpu_percent, 1),
        "problems": problems + stats.problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", help="preset (default: piano if present, else random)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--workers",
        default="none,process,thread",
        help="worker modes to run; none: the peer alone, no engine (the harness' own xruns); "
        "load: the peer beside a plain CPU load of --load-percent",
    )
    parser.add_argument(
        "--load-percent",
        type=float,
        default=12.0,
        help="the load baseline's CPU share of one core (the engine's, CPU %% in its report)",
    )
    parser.add_argument("--rt", action="store_true", help="run jackd with real-time priority")
    parser.add_argument("--period", type=int, default=128)
    parser.add_argument("--density", type=float, default=None)
    parser.add_argument(
        "--quantize", choices=("none", "int8"), help="override the preset's [model].quantize"
    )
    parser.add_argument("--jack-log", type=Path, help="keep a copy of jackd's log here")
    args = parser.parse_args()

    from livegen.models.preset import SHIPPED_DIR

    with tempfile.TemporaryDirectory() as folder:
        if args.preset:
            preset, density = Path(args.preset), args.density or 0.0
        elif (SHIPPED_DIR / "piano.toml").exists():
            preset, density = SHIPPED_DIR / "piano.toml", args.density or 0.0
        else:
            preset = random_preset(Path(folder))
            density = 1.5 if args.density is None else args.density
        if args.quantize:
            preset = requantized(preset, args.quantize, Path(folder))
        log = Path(folder) / "jackd.log"
        server = start_jack(args.period, args.rt, log)
        results = []
        try:
            bench = Bench(preset, args.seconds, log, density, args.load_percent, args.period)
            for worker in args.workers.split(","):
                results.append(session(bench, worker))
        finally:
            server.terminate()
            server.wait(timeout=10)
            if args.jack_log:
                args.jack_log.write_text(log.read_text(errors="replace"))
    setup = {"preset": preset.name, "quantize": args.quantize, "period": args.period}
    setup.update(realtime=args.rt, cpus=os.cpu_count(), load_percent=args.load_percent)
    report(setup, results)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def print_xruns(r: dict) -> None:
    print(
        f"  {'JACK xruns, playing':24s} {r['xruns_jack_playing']} in {r['playing_seconds']} s, "
        f"{r['xruns_jack_playing_stalls']} of them graph-wide stalls "
        f"{r['xruns_jack_playing_clients'] or ''}"
    )
    print(f"  {'  set-up and teardown':24s} {r['xruns_jack_setup_teardown'] or 0}")
    print(f"  {'CPU stolen by the host':24s} {r['stolen_ms']:.0f} ms while playing (all CPUs)")
    if r["machine_gaps_over_period"] is None:
        print(f"  {'machine gaps':24s} - (no cyclictest, or it may not run real-time here)")
    else:
        print(
            f"  {'machine gaps':24s} {r['machine_gaps_over_period']} longer than a period "
            f"(longest {r['machine_gap_longest_ms']:.1f} ms); "
            f"{r['xruns_jack_playing_machine']} of the {r['xruns_jack_playing']} xruns came "
            "with one"
        )


def report(setup: dict, results: list[dict]) -> None:
    print(
        f"preset {setup['preset']} (quantize: {setup['quantize'] or 'as the preset says'}); "
        f"JACK dummy 48 kHz / {setup['period']} frames, "
        f"{'real-time' if setup['realtime'] else 'not real-time'}; {setup['cpus']} CPUs"
    )
    for r in results:
        if r["worker"] in ("none", "load"):
            beside = (
                f"beside a {setup['load_percent']:g}% CPU load"
                if r["worker"] == "load"
                else "alone"
            )
            print(f"\nno engine: the peer's clients {beside} ({r['seconds']} s)")
            print_xruns(r)
            continue
        print(
            f"\nworker in a {r['worker']} ({r['seconds']} s, {r['phrases']} phrases, "
            f"load {r['loadavg_1min']})"
        )
        rows = {
            "reaction, engine": (r["reaction_engine_ms_p50"], r["reaction_engine_ms_max"], "max"),
            "reaction, through JACK": (r["reaction_jack_ms_p50"], r["reaction_jack_ms_max"], "max"),
            "input -> context": (r["input_to_context_ms_p50"], r["input_to_context_ms_p90"], "p90"),
            "  of which to the worker": (r["input_transit_ms_p50"], None, "-"),
            "model note sent late by": (
                r["model_note_sent_late_ms_p50"],
                r["model_note_sent_late_ms_p99"],
                "p99",
            ),
        }
        for name, (p50, other, label) in rows.items():
            print(f"  {name:24s} p50 {_ms(p50)}, {label} {_ms(other)}")
        print_xruns(r)
        print(f"  {'PortAudio underflows':24s} {r['xruns_portaudio']}")
        print(
            f"  {'audio callback':24s} longest {_ms(r['audio_callback_max_ms'])}, longest gap "
            f"between starts {_ms(r['audio_callback_max_gap_ms'])}, "
            f"{r['audio_slow_callbacks']} longer than a block"
        )
        print(f"  {'late model events':24s} {r['late_events']}")
        print(
            f"  {'model':24s} {r['model_tokens_per_s']} tokens/s, {r['model_notes_per_s']} "
            f"notes/s, {_ms(r['ms_per_token_p50'])}/token; CPU {r['cpu_percent']}%"
        )
        if r["problems"]:
            print(f"  problems: {r['problems']}")
    print(json.dumps({"bench": "jam", **setup, "results": results}))


if __name__ == "__main__":
    main()
