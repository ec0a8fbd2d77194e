"""The jam's vocabulary shared by the engine, `livegen jam --headless` and the terminal UI.

- JamSettings: how a session is wired (ports, preset, audio, recording). Fixed while it runs.
- Controls: what a musician changes while playing. The engine reads them live.
- Stats: what the engine reports (the UI's meters); a snapshot, cheap to copy.
- RollNote: one note for the piano roll, the player's or the model's.

These are plain dataclasses with no behaviour beyond validation, so the UI can import them
without importing torch or the engine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from livegen.kernels.midi_codes import SUSTAIN_CC
from livegen.kernels.values import MIDI_BYTE, MIDI_CHANNEL, SEED, Bound, check_fields

# What each number may be: the command line (argparse types), the settings file and the UI
# all check against these.
SETTING_BOUNDS = {
    "blocksize": Bound(16, 8192, integer=True),
    "sample_rate": Bound(8000, 192000, integer=True),
}
OPTIONAL_SETTING_BOUNDS = {"program": MIDI_BYTE, "seed": SEED}
CONTROL_BOUNDS = {
    "temperature": Bound(0.05, 5.0),
    "top_p": Bound(0.0, 1.0, low_open=True),
    "low_pitch": MIDI_BYTE,
    "high_pitch": MIDI_BYTE,
    "density": Bound(-10.0, 10.0),
    "response_seconds": Bound(0.25, 120.0),
    "silence_seconds": Bound(0.05, 10.0),
    "tempo_bpm": Bound(20.0, 400.0),
    "model_channel": MIDI_CHANNEL,
    "lookahead_ms": Bound(20.0, 2000.0),
    "phrase_cc": MIDI_BYTE,
    "nudge_ms": Bound(-500.0, 500.0),
}


class Mode(StrEnum):
    CONTINUE = "continue"  # the model takes over when the player stops, yields when they play
    CALL = "call"  # call-and-response: answers each phrase
    ACCOMPANY = "accompany"  # plays alongside, in its own register and channel


class PhraseEnd(StrEnum):
    SILENCE = "silence"  # the player is silent for silence_seconds
    CC = "cc"  # the player presses a pedal / sends controller phrase_cc (value >= 64)
    BAR = "bar"  # the first bar line (of the clock followed) after the player stops


class ClockSource(StrEnum):
    INTERNAL = "internal"  # livegen leads (and may send MIDI clock)
    MIDI = "midi"  # follow incoming MIDI clock / start / stop
    LINK = "link"  # join an Ableton Link session (livegen[link]); alone, livegen leads it


@dataclass
class JamSettings:
    preset: str = "piano"
    input: str = "virtual"  # a port name (exact or unique substring), "virtual", or "none"
    output: str = "virtual"  # a port name, "virtual" ("livegen out"), or "none"
    api: str | None = None  # rtmidi API: alsa, jack, coremidi, winmm (None: the platform's)
    audio_device: str | None = None  # sounddevice device name/index; None: default; "none"
    blocksize: int = 128
    sample_rate: int = 48000
    soundfont: str | None = None  # None: the preset's
    program: int | None = None  # GM program of the model's sound; None: the preset's
    record_dir: str | None = None  # None: no recording
    record_wav: bool = False
    # An audio preset hears this JACK capture port (or audio input device) instead of the
    # player's MIDI rendered by FluidSynth; None: the render.
    audio_in: str | None = None
    clock_in: str | None = None  # port that sends MIDI clock (None: the input port)
    send_clock: bool = False  # send MIDI clock on the output when livegen leads
    device: str | None = None  # torch device for the model: cpu, cuda, mps (None: best)
    seed: int | None = None
    # The preset's follow_rhythm (the model's onsets on the player's pulse) applies; False:
    # the model keeps its own time (the grid follow of --quantize is separate).
    follow_rhythm: bool = True
    # A player's key down longer than this lost its note-off below livegen: the engine ends
    # it (0: never). Longer than any held note in practice; the pedal does not count.
    max_held_seconds: float = 30.0

    def validate(self) -> None:
        check_fields(self, SETTING_BOUNDS)
        for name, bound in OPTIONAL_SETTING_BOUNDS.items():
            if getattr(self, name) is not None:
                bound.check(name, getattr(self, name))
        if not (self.max_held_seconds == 0 or 1.0 <= self.max_held_seconds <= 3600.0):
            raise ValueError(f"max_held_seconds must be 0 or 1..3600, got {self.max_held_seconds}")
        if self.sample_rate not in (22050, 32000, 44100, 48000, 88200, 96000):
            raise ValueError(f"unsupported sample rate {self.sample_rate}")


@dataclass
class Controls:
    mode: Mode = Mode.CONTINUE
    temperature: float = 1.0
    top_p: float = 0.95
    low_pitch: int = 21  # register of the model's notes
    high_pitch: int = 108
    density: float = 0.0  # nats on NOTE_ON logits: > 0 busier, < 0 sparser
    response_seconds: float = 4.0  # how long the model plays per turn (continue / call)
    silence_seconds: float = 0.6  # player silence that ends a phrase
    passthrough: bool = True  # the player's notes sound through livegen's synth
    quantize: bool = False  # snap model onsets to the MIDI clock grid
    quantize_division: int = 4  # grid: 1/4 of a beat (sixteenths)
    clock: ClockSource = ClockSource.INTERNAL
    tempo_bpm: float = 120.0  # the internal clock's tempo
    recording: bool = True
    model_channel: int = 1  # 0-based MIDI channel of the model's notes
    lookahead_ms: float = 200.0  # how far ahead of the clock the model may generate
    phrase_end: PhraseEnd = PhraseEnd.SILENCE  # how call mode hears a phrase end
    phrase_cc: int = 67  # the controller that ends a phrase (phrase_end "cc"): soft pedal
    nudge_ms: float = 0.0  # Link: the model's notes go out this much before Link's grid
    # (your output latency), so they are heard on the beat; negative: after it

    def __post_init__(self) -> None:
        self.mode = Mode(self.mode)
        self.clock = ClockSource(self.clock)
        self.phrase_end = PhraseEnd(self.phrase_end)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError (a BadValueError) naming a control out of range (the UI and CLI
        show it as is)."""
        check_fields(self, CONTROL_BOUNDS)
        checks = {
            "low_pitch": self.low_pitch <= self.high_pitch,
            "quantize_division": self.quantize_division in (1, 2, 3, 4, 6, 8, 12, 16),
            "phrase_cc": self.phrase_cc != SUSTAIN_CC,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} out of range: {getattr(self, name)!r}")

    def changed(self, **changes: Any) -> Controls:
        """A validated copy with changes (ValueError names a bad field)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown controls {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)


@dataclass
class Stats:
    """The engine's meters; every figure is for the recent past (about the last second)."""

    running: bool = False
    tokens_per_s: float = 0.0
    ms_per_token_p50: float = 0.0
    ms_per_token_p99: float = 0.0
    lookahead_ms: float = 0.0  # how far generated model events run ahead of the clock
    reaction_ms: float = 0.0  # last phrase end -> first model note out
    input_to_context_ms: float = 0.0  # last player note -> in the model's context
    xruns: int = 0
    late_events: int = 0  # model events that reached the output after their time
    dropped_messages: int = 0  # input messages skipped (junk, flood)
    input_overflows: int = 0  # times the MIDI system's input queue was found full (may drop)
    cpu_percent: float = 0.0
    gpu_percent: float | None = None
    tempo_bpm: float | None = None  # the followed MIDI clock's tempo, when following
    beat: int | None = None
    link_peers: int | None = None  # following Link: the other peers in its session
    link_phase: float | None = None  # following Link: beats into the bar, [0, 4)
    recording_path: str | None = None
    recording_seconds: float = 0.0
    model_speaking: bool = False
    problems: list[str] = field(default_factory=list)  # what is missing and what to do
    # Set when the audio server runs the sound's threads without real-time scheduling: why
    # xruns may come and what to change (livegen.realtime.scheduling_report).
    scheduling: str | None = None
    preset: str | None = None  # the model playing now
    preset_swap: str | None = None  # a swap on its way: "loading NAME", "ready NAME", ...
    preset_swap_seconds: float | None = None  # the last swap: asked -> the new model took over
    # An audio model (None for a MIDI one): codec frames written ahead of the sound, frames
    # late (written after their time, or missing mid-turn when the callback needed them),
    # and how much faster than real time it writes them.
    frames_ahead: float | None = None
    late_frames: int = 0
    realtime_factor: float | None = None


@dataclass(frozen=True)
class RollNote:
    """A note for the piano roll; end is None while it sounds. Times on the session clock."""

    owner: str  # "player" or "model"
    pitch: int
    velocity: int
    start: float
    end: float | None = None
