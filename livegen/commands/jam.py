"""`livegen jam`: play with the model live. With --headless, no UI: the engine runs until Ctrl-C
(or --duration), printing its log and a status line; without, the terminal UI opens."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from livegen.controls import CONTROL_BOUNDS as C
from livegen.controls import OPTIONAL_SETTING_BOUNDS, SETTING_BOUNDS
from livegen.kernels.errors import LivegenError
from livegen.kernels.values import SECONDS
from livegen.midi_ports import APIS

HELP = "jam live with the model (terminal UI; --headless: MIDI, sound and recording only)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--headless", action="store_true", help="no UI: run the engine only")
    wiring = parser.add_argument_group("wiring")
    wiring.add_argument(
        "--in",
        dest="midi_in",
        metavar="NAME",
        help='MIDI input: a port name, "virtual" '
        '(livegen in, the default) or "none"; exact or a unique part of the name',
    )
    wiring.add_argument(
        "--out",
        dest="midi_out",
        metavar="NAME",
        help='MIDI output: a port name, "virtual" (livegen out, the default) or "none"',
    )
    wiring.add_argument("--api", choices=tuple(APIS), help="MIDI API")
    wiring.add_argument("--preset", help="preset name or .toml path (default: piano)")
    wiring.add_argument(
        "--audio-device", metavar="D", help='audio output (name, part of it, or index); "none"'
    )
    wiring.add_argument(
        "--blocksize",
        type=SETTING_BOUNDS["blocksize"].option(),
        default=128,
        help="audio block (frames)",
    )
    wiring.add_argument("--sample-rate", type=SETTING_BOUNDS["sample_rate"].option(), default=48000)
    wiring.add_argument("--soundfont", metavar="SF2", help="soundfont (default: the preset's)")
    wiring.add_argument(
        "--program",
        type=OPTIONAL_SETTING_BOUNDS["program"].option(),
        help="GM program of the model's sound",
    )
    wiring.add_argument(
        "--audio-in",
        metavar="PORT",
        help="an audio preset hears this JACK port (e.g. system:capture_1), or with no JACK "
        "server this input device, instead of the player's MIDI rendered by FluidSynth",
    )
    wiring.add_argument("--record", metavar="DIR", help="record every session into DIR")
    wiring.add_argument("--record-wav", action="store_true", help="also record what was heard")
    wiring.add_argument(
        "--clock",
        choices=("internal", "midi", "link"),
        help="who keeps the beat (default: internal; link: Ableton Link, needs livegen[link])",
    )
    wiring.add_argument("--clock-in", metavar="NAME", help="port that sends MIDI clock")
    wiring.add_argument("--send-clock", action="store_true", help="send MIDI clock when leading")
    wiring.add_argument("--device", help="torch device for the model: auto, cpu, cuda, mps")
    wiring.add_argument("--seed", type=OPTIONAL_SETTING_BOUNDS["seed"].option())
    wiring.add_argument(
        "--no-follow-rhythm",
        action="store_true",
        help="the model keeps its own time, not your pulse and rhythm (the preset's "
        "follow_rhythm and follow_rhythm_draw)",
    )
    wiring.add_argument(
        "--worker", choices=("process", "thread"), default="process", help=argparse.SUPPRESS
    )
    play = parser.add_argument_group("playing (all change live in the UI)")
    play.add_argument(
        "--mode",
        choices=("continue", "call", "accompany"),
        help="default: continue (the UI: your saved mode)",
    )
    play.add_argument("--temperature", type=C["temperature"].option())
    play.add_argument("--top-p", type=C["top_p"].option())
    play.add_argument("--low", type=C["low_pitch"].option(), help="lowest pitch the model plays")
    play.add_argument("--high", type=C["high_pitch"].option(), help="highest pitch the model plays")
    play.add_argument("--density", type=C["density"].option(), help="nats: > 0 busier, < 0 sparser")
    play.add_argument(
        "--response", type=C["response_seconds"].option(), help="seconds the model plays per turn"
    )
    play.add_argument(
        "--silence", type=C["silence_seconds"].option(), help="seconds of silence that end a phrase"
    )
    play.add_argument(
        "--phrase-end", choices=("silence", "cc", "bar"), help="how call mode hears a phrase end"
    )
    play.add_argument(
        "--tempo",
        type=C["tempo_bpm"].option(),
        help="bpm of the internal clock (and of a Link session livegen starts)",
    )
    play.add_argument("--quantize", action="store_true", help="snap model onsets to the grid")
    play.add_argument(
        "--nudge",
        type=C["nudge_ms"].option(),
        metavar="MS",
        help="Link: send the model's notes MS ms before the grid (your output latency)",
    )
    play.add_argument("--no-passthrough", action="store_true", help="do not echo the player")
    play.add_argument("--lookahead-ms", type=C["lookahead_ms"].option())
    parser.add_argument(
        "--duration", type=SECONDS.option(), metavar="S", help="headless: stop after S seconds"
    )


# Field of Controls / JamSettings -> the option that sets it (None: not given, the default).
_CONTROL_OPTIONS = {
    "mode": "mode",
    "temperature": "temperature",
    "top_p": "top_p",
    "low_pitch": "low",
    "high_pitch": "high",
    "density": "density",
    "response_seconds": "response",
    "silence_seconds": "silence",
    "phrase_end": "phrase_end",
    "tempo_bpm": "tempo",
    "lookahead_ms": "lookahead_ms",
    "clock": "clock",
    "nudge_ms": "nudge",
}
_SETTING_OPTIONS = {
    "preset": "preset",
    "input": "midi_in",
    "output": "midi_out",
    "api": "api",
    "audio_device": "audio_device",
    "blocksize": "blocksize",
    "sample_rate": "sample_rate",
    "soundfont": "soundfont",
    "program": "program",
    "record_dir": "record",
    "record_wav": "record_wav",
    "audio_in": "audio_in",
    "clock_in": "clock_in",
    "send_clock": "send_clock",
    "device": "device",
    "seed": "seed",
}


def _given(args: argparse.Namespace, options: dict[str, str]) -> dict[str, object]:
    values = {field: getattr(args, option) for field, option in options.items()}
    return {field: value for field, value in values.items() if value is not None}


def _controls(args: argparse.Namespace):  # noqa: ANN202
    from livegen.controls import Controls

    changes = _given(args, _CONTROL_OPTIONS)
    if args.quantize:
        changes["quantize"] = True
    if args.no_passthrough:
        changes["passthrough"] = False
    try:
        controls = Controls().changed(**changes)
    except ValueError as error:
        raise LivegenError(str(error)) from None
    if controls.clock == "link":
        from livegen.link_clock import load_link

        load_link()  # not installed: one line saying how, before the model loads
    return controls


def _settings(args: argparse.Namespace):  # noqa: ANN202
    from livegen.controls import JamSettings

    settings = JamSettings(**_given(args, _SETTING_OPTIONS))
    if args.no_follow_rhythm:
        settings.follow_rhythm = False
    try:
        settings.validate()
    except ValueError as error:
        raise LivegenError(str(error)) from None
    if settings.record_dir:  # before anything starts: a take that cannot be saved is an error
        from livegen.kernels.atomic_write import ensure_writable_folder

        ensure_writable_folder(settings.record_dir, "recording folder")
    return settings


def run(args: argparse.Namespace) -> int:
    if not args.headless:
        from livegen.tui.launch import launch

        if args.clock == "link":
            from livegen.link_clock import load_link

            load_link()  # not installed: one line saying how
        return launch(args.preset, args.midi_in, args.midi_out, args.mode, args.clock)
    return run_headless(_settings(args), _controls(args), args.duration, args.worker)


def _status(stats) -> str:  # noqa: ANN001
    parts = [
        f"{stats.tokens_per_s:5.0f} tok/s",
        f"{stats.ms_per_token_p50:4.1f} ms/tok",
        f"ahead {stats.lookahead_ms:4.0f} ms",
        f"reaction {stats.reaction_ms:4.1f} ms",
        f"in->ctx {stats.input_to_context_ms:4.1f} ms",
        f"xruns {stats.xruns}",
        f"late {stats.late_events}",
        f"dropped {stats.dropped_messages}",
    ]
    if stats.realtime_factor is not None:  # an audio model
        parts.append(f"frames ahead {stats.frames_ahead:4.1f}")
        parts.append(f"late frames {stats.late_frames}")
        parts.append(f"RTF {stats.realtime_factor:4.2f}x")
    if stats.input_overflows:
        parts.append(f"input overflowed {stats.input_overflows}x")
    if stats.tempo_bpm:
        parts.append(f"{stats.tempo_bpm:5.1f} bpm")
    if stats.link_peers is not None:
        parts.append(f"link {stats.link_peers} peers, beat {int(stats.link_phase) + 1}/4")
    return " | ".join(parts)


# Signals that end a headless jam the way Ctrl-C does: notes off, the recording finished.
# SIGHUP is the terminal closing (an ssh session dropped): the jam must not die mid-note.
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _say(line: str, *, error: bool = False) -> None:
    """Print, unless the terminal is gone (after SIGHUP a write fails with EIO): finishing
    the recording matters more than telling a closed terminal about it."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr if error else sys.stdout, flush=True)


def run_headless(settings, controls, duration: float | None, worker: str = "process") -> int:  # noqa: ANN001
    from livegen.engine import JamEngine

    engine = JamEngine(settings, controls, worker_mode=worker)
    done = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: done.set()) for sig in ENDING_SIGNALS}
    recorder = None
    try:
        engine.start()
        recorder = engine.recorder  # kept: the engine lets go of it when it stops
        _say(
            f"livegen jam: {controls.mode} mode; in: {settings.input}, out: {settings.output}. "
            "Ctrl-C stops."
        )
        waited, shown = 0.0, set()
        while not done.wait(0.25):
            waited += 0.25
            for line in engine.drain_log():
                _say(line)
            stats = engine.stats()
            for problem in stats.problems:
                if problem not in shown:
                    shown.add(problem)
                    _say(f"problem: {problem}", error=True)
            if waited % 2.0 < 0.25:
                _say(_status(stats))
            if duration is not None and waited >= duration:
                break
    except KeyboardInterrupt:
        pass
    finally:
        engine.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)
        for line in engine.drain_log():
            _say(line)
    _say(_status(engine.stats()))
    return _report_recording(recorder)


def _report_recording(recorder) -> int:  # noqa: ANN001 - a Recorder or None
    """The last line says what was recorded, or that the recording failed (exit 1)."""
    if recorder is None:
        return 0
    if recorder.error:
        kept = (
            f"{recorder.path} holds the first {recorder.saved_seconds:.1f} s"
            if recorder.writes
            else "nothing was saved"
        )
        _say(f"livegen jam: error: {recorder.error}; {kept}", error=True)
        return 1
    _say(f"recorded {recorder.path}")
    return 0
