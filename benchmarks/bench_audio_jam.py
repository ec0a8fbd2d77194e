"""The audio model live through JACK: late audio frames, livegen's own xruns, reaction,
generation speed against real time; beside the harness alone and the MIDI jam, same run.

    .venv/bin/python benchmarks/bench_audio_jam.py [--preset audio-piano] [--seconds 60]
        [--rt] [--sessions none,audio,midi]

Starts its own JACK server (dummy driver, 48 kHz, 128 frames), then runs, one after the other:
"none" (benchmarks/bench_jam.py's peer alone, no engine: the harness' and the machine's own
xruns), "audio" (`livegen jam`'s engine with the audio preset in continue mode: the player's
phrases rendered by FluidSynth, encoded into the model's context, the model's frames decoded
into the callback) and "midi" (bench_jam.py's session with the MIDI piano preset, for the
comparison). The peer plays the same phrases into "livegen in" as for bench_jam.py. Figures:

- late audio frames: the model's frames written after their first sample's time, or missing
  from the ring mid-turn when the callback needed them (Stats.late_frames);
- xruns: jackd's count while the peer plays, with bench_jam.py's machine-gap accounting (an
  xrun that came with a CPU gap longer than half a period was the machine's, not a client's);
- reaction: phrase end decided (the last release + silence) -> the callback writing the
  model's first sample of the turn (its clock), as bench_jam.py's "engine" reaction for a
  MIDI model's first note (no capture client: jack_rec, not real-time, was itself the late
  client of most xruns in a trial);
- generation: the worker's real-time factor (16 ms / its median time per frame: 4 tokens
  sampled, one codec decode) and tokens/s during turns against the 250/s needed.
Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_jam import (  # noqa: E402
    Bench,
    child,
    gap_before,
    jack_xruns,
    pct,
    probe_gaps,
    session,
    start_jack,
    start_probe,
    stolen_ms,
)

SILENCE, RESPONSE = 0.4, 2.0


def audio_session(bench: Bench) -> dict:
    from livegen.controls import Controls, JamSettings
    from livegen.engine import JamEngine

    settings = JamSettings(preset=str(bench.preset), api="jack", blocksize=bench.period, seed=0)
    engine = JamEngine(settings, Controls(silence_seconds=SILENCE, response_seconds=RESPONSE))
    engine.measured = {"input_ms": [], "reaction_ms": [], "ms_per_token": []}
    opened = time.perf_counter()
    engine.start()
    problems = list(engine.stats().problems)
    seconds = bench.seconds
    began = time.perf_counter()
    probe, stolen = start_probe(), stolen_ms()
    peer = subprocess.Popen(
        child(f"peer({seconds}, {SILENCE}, {RESPONSE}, True)"), stdout=subprocess.PIPE, text=True
    )
    rtf, ahead, speeds = [], [], []
    while peer.poll() is None:
        time.sleep(0.25)
        stats = engine.stats()
        if stats.model_speaking and stats.realtime_factor:
            rtf.append(stats.realtime_factor)
            ahead.append(stats.frames_ahead)
            speeds.append(stats.tokens_per_s)
    wall, stolen = time.perf_counter() - began, stolen_ms() - stolen
    result = json.loads(peer.stdout.read().splitlines()[-1])
    gaps = probe_gaps(probe)
    stats = engine.stats()
    latest = engine.audio.latest if engine.audio is not None else None
    engine.stop()
    time.sleep(0.2)
    playing, times = jack_xruns(bench.log, *result["playing"])
    around, _ = jack_xruns(bench.log, opened, began + wall)
    first, last = result["playing"]
    gaps = None if gaps is None else [g for g in gaps if first <= g[0] <= last]
    period_ms = 1e3 * bench.period / 48000
    before = None if gaps is None else [gap_before(t, gaps, period_ms / 2) for t in times]
    machine = None if before is None else sum(map(bool, before))
    return {
        "worker": "audio",
        "seconds": round(wall, 1),
        "playing_seconds": round(last - first, 1),
        "phrases": len(result["releases"]),
        "late_frames": stats.late_frames,
        "model_frames_played": latest.model_frames if latest else 0,
        "xruns_jack_playing": playing["xruns"],
        "xruns_jack_playing_machine": machine,
        "xruns_livegen": None if machine is None else playing["xruns"] - machine,
        "xruns_jack_playing_clients": {k: v for k, v in playing.items() if k.startswith("late")},
        "xruns_jack_setup_teardown": {k: v - playing.get(k, 0) for k, v in around.items()},
        "xruns_portaudio": stats.xruns,
        "stolen_ms": round(stolen, 1),
        "reaction_engine_ms_p50": pct(engine.measured["reaction_ms"], 50),
        "reaction_engine_ms_max": max(engine.measured["reaction_ms"], default=None),
        "turns": len(engine.measured["reaction_ms"]),
        "realtime_factor_p50": pct(rtf, 50),
        "realtime_factor_p10": pct(rtf, 10),
        "frames_ahead_p50": pct(ahead, 50),
        "tokens_per_s_in_turns_p50": pct(speeds, 50),
        "audio_callback_max_ms": latest.max_callback_ms if latest else None,
        "cpu_percent": round(stats.cpu_percent, 1),
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "problems": problems + stats.problems,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def report(setup: dict, results: list[dict]) -> None:
    print(
        f"JACK dummy 48 kHz / {setup['period']} frames, "
        f"{'real-time' if setup['realtime'] else 'not real-time'}; {setup['cpus']} CPUs"
    )
    for r in results:
        xruns = f"{r['xruns_jack_playing']} JACK xruns in {r['playing_seconds']} s playing"
        machine = r.get("xruns_jack_playing_machine")
        if machine is not None:
            xruns += f" ({machine} with a machine gap)"
        print(f"\n{r['worker']} ({r['seconds']} s, load {r['loadavg_1min']}): {xruns}")
        if r["worker"] == "audio":
            print(f"  late audio frames        {r['late_frames']} of {r['model_frames_played']}")
            print(
                f"  reaction                 engine p50 {_ms(r['reaction_engine_ms_p50'])} "
                f"(max {_ms(r['reaction_engine_ms_max'])}, {r['turns']} turns)"
            )
            print(
                f"  generation               {r['realtime_factor_p50']}x real time p50 "
                f"(p10 {r['realtime_factor_p10']}), {r['tokens_per_s_in_turns_p50']} tokens/s "
                f"in turns (250 needed), {r['frames_ahead_p50']} frames ahead p50"
            )
        elif r["worker"] == "process":
            print(
                f"  MIDI piano: reaction engine p50 {_ms(r['reaction_engine_ms_p50'])}, "
                f"late events {r['late_events']}, {r['model_tokens_per_s']} tokens/s"
            )
        if r.get("problems"):
            print(f"  problems: {r['problems']}")
    print(json.dumps({"bench": "audio_jam", **setup, "results": results}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="audio-piano")
    parser.add_argument("--midi-preset", default="piano")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sessions", default="none,audio,midi")
    parser.add_argument("--rt", action="store_true", help="run jackd with real-time priority")
    parser.add_argument("--period", type=int, default=128)
    args = parser.parse_args()

    from livegen.models.preset import find_preset

    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "jackd.log"
        server = start_jack(args.period, args.rt, log)
        results = []
        try:
            for name in args.sessions.split(","):
                preset = find_preset(args.midi_preset if name == "midi" else args.preset)
                bench = Bench(preset, args.seconds, log, 0.0, 12.0, args.period)
                if name == "audio":
                    results.append(audio_session(bench))
                else:
                    results.append(session(bench, "process" if name == "midi" else "none"))
        finally:
            server.terminate()
            server.wait(timeout=10)
    setup = {"preset": args.preset, "midi_preset": args.midi_preset, "period": args.period}
    setup.update(realtime=args.rt, cpus=os.cpu_count())
    report(setup, results)


if __name__ == "__main__":
    main()
