"""Live preset swap: how long from asking for another preset to its first note, and whether
the music goes on meanwhile.

The engine runs as the jam does, without ports or sound (they take no part in a swap): a
player (engine.play) plays a six-note phrase, the model answers, again and again. After a few
phrases the script asks for another preset (engine.swap_preset) and keeps playing. It reports
the engine's swap time (asked -> the new model has the jam's context), the time to the new
model's first note, the model notes played while the new one loaded, late events, and the
notes left sounding (0: none). Prints the figures and one JSON line.

    .venv/bin/python benchmarks/bench_swap.py [--preset piano] [--to piano|none] [--phrases 8]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import mido


def phrase(engine, pitches: list[int]) -> None:  # noqa: ANN001
    for pitch in pitches:
        engine.play(mido.Message("note_on", note=pitch, velocity=80))
        time.sleep(0.12)
        engine.play(mido.Message("note_off", note=pitch))
        time.sleep(0.03)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="piano")
    parser.add_argument(
        "--to", default="piano", help="the preset swapped to (name or TOML); none: no swap"
    )
    parser.add_argument("--phrases", type=int, default=8)
    args = parser.parse_args()
    from livegen.controls import Controls, JamSettings
    from livegen.engine import JamEngine

    settings = JamSettings(preset=args.preset, input="none", output="none", audio_device="none")
    engine = JamEngine(settings, Controls(silence_seconds=0.4, response_seconds=2.0))
    engine.start()
    asked = first_new = None
    during = 0
    try:
        for k in range(args.phrases):
            phrase(engine, [60, 62, 64, 65, 67, 69][k % 2 :])
            if k == 2 and args.to != "none":
                asked = engine.now()
                engine.swap_preset(args.to)
            time.sleep(2.6)  # the silence, and the answer
            stats = engine.stats()
            if asked is not None and first_new is None and stats.preset_swap_seconds:
                took = asked + stats.preset_swap_seconds
                new = [n for n in engine.roll(took) if n.owner == "model" and n.start >= took]
                first_new = new[0].start - asked if new else None
                during = sum(1 for n in engine.roll(asked) if n.owner == "model" and n.start < took)
        stats = engine.stats()
    finally:
        engine.stop()
    log = [line for line in engine.drain_log() if "preset" in line]
    sounding = sum(1 for n in engine.roll(0.0) if n.end is None)
    result = {
        "bench": "swap",
        "from": args.preset,
        "to": args.to,
        "swap_seconds": stats.preset_swap_seconds,
        "first_new_note_s": first_new,
        "model_notes_while_loading": during,
        "late_events": stats.late_events,
        "sounding_after_stop": sounding,
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }
    for line in log:
        print(line)
    for key, value in result.items():
        print(f"  {key:28} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
