"""FluidSynth as a block renderer: events placed at their sample frame.

The same renderer serves the offline `--wav` path and (later) the live audio callback: a block
is split at each event's frame, so where a note starts does not depend on the audio block size.
FluidSynth itself synthesises in internal blocks of 64 frames and applies an event at the next
such boundary, so onsets land on a fixed 64-frame grid (1.3 ms at 48 kHz): deterministic, and
the same for a 128-frame callback as for an offline render.
"""

from __future__ import annotations

import ctypes
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livegen.kernels.errors import LivegenError
from livegen.kernels.midi_codes import CHANNELS, DRUM_BANK, DRUM_CHANNEL, SUSTAIN_CC


class SynthError(LivegenError):
    """FluidSynth is missing, or a soundfont cannot be loaded."""


@dataclass(frozen=True, order=True)
class SynthEvent:
    frame: int  # absolute sample frame at which the event sounds
    order: int  # at one frame: offs (0) before ons (1), so a re-struck key sounds again
    channel: int
    pitch: int  # for a controller: its number (64: the sustain pedal)
    velocity: int  # 0 means note-off; for a controller: its value
    controller: bool = False


def _load_fluidsynth():  # noqa: ANN202 - the module has no types
    try:
        import fluidsynth
    except ImportError as error:  # pyfluidsynth raises ImportError when libfluidsynth is absent
        raise SynthError(
            f"FluidSynth is not available ({error}); install libfluidsynth3 (Debian) "
            "or fluid-synth (Homebrew)"
        ) from None
    return fluidsynth


def _write_float_function(fluidsynth):  # noqa: ANN001, ANN202
    # pyfluidsynth wraps only the int16 writer; fluid_synth_write_float is in the library it
    # loaded (`fluidsynth.lib`, its path). Our own handle (the same loaded library) keeps the
    # prototype below off pyfluidsynth's.
    function = ctypes.CDLL(fluidsynth.lib).fluid_synth_write_float
    function.argtypes = [ctypes.c_void_p, ctypes.c_int] + [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    function.restype = ctypes.c_int
    return function


class FluidSynthRenderer:
    def __init__(self, soundfont: str | Path, sample_rate: int = 48000, gain: float = 0.6):
        path = Path(soundfont)
        if not path.is_file():
            raise SynthError(
                f"{path}: soundfont not found (Debian: apt install timgm6mb-soundfont)"
            )
        fluidsynth = _load_fluidsynth()
        self.sample_rate = sample_rate
        self._synth = fluidsynth.Synth(gain=gain, samplerate=float(sample_rate))
        self._write_float = _write_float_function(fluidsynth)
        self._sfid = self._synth.sfload(str(path))
        if self._sfid < 0:
            raise SynthError(f"{path}: FluidSynth could not load this soundfont")
        self.frame = 0  # frames rendered so far

    def set_program(self, channel: int, program: int) -> None:
        bank = DRUM_BANK if channel == DRUM_CHANNEL else 0
        self._synth.program_select(channel, self._sfid, bank, program)

    def silence(self) -> None:
        """Panic: pedal up and every voice released, on every channel."""
        for channel in range(CHANNELS):
            self._synth.cc(channel, SUSTAIN_CC, 0)
            self._synth.all_notes_off(channel)

    def _apply(self, event: SynthEvent) -> None:
        if event.controller:
            self._synth.cc(event.channel, event.pitch, event.velocity)
        elif event.velocity > 0:
            self._synth.noteon(event.channel, event.pitch, event.velocity)
        else:
            self._synth.noteoff(event.channel, event.pitch)

    def render(self, frames: int, events: Sequence[SynthEvent]) -> np.ndarray:
        """Render the next `frames` frames as float32 stereo [frames, 2].

        `events` are sorted and fall inside [self.frame, self.frame + frames); events in the
        past are applied at the block start (they are late, and the caller counts them).
        """
        out = np.empty((frames, 2), dtype=np.float32)
        self.render_into(out, events)
        return out

    def render_into(self, out: np.ndarray, events: Sequence[SynthEvent]) -> None:
        """As render, into a preallocated C-contiguous float32 [frames, 2] buffer (no allocation:
        this is what an audio callback calls)."""
        frames = len(out)
        done = 0
        for event in events:
            at = min(max(event.frame - self.frame, done), frames)
            if at > done:
                self._write(out, done, at)
                done = at
            self._apply(event)
        if done < frames:
            self._write(out, done, frames)
        self.frame += frames

    def _write(self, out: np.ndarray, begin: int, end: int) -> None:
        # Float output straight into the buffer: no int16 round trip, so no dither noise,
        # and silence is exactly 0.0.
        pointer = out.ctypes.data + begin * 8  # 2 channels x 4 bytes per frame
        self._write_float(self._synth.synth, end - begin, pointer, 0, 2, pointer, 1, 2)

    def close(self) -> None:
        self._synth.delete()


def note_events(
    start: np.ndarray,
    end: np.ndarray,
    pitch: np.ndarray,
    velocity: np.ndarray,
    channel: int,
    sample_rate: int,
) -> list[SynthEvent]:
    """Note arrays (seconds) to synth events at their sample frames."""
    events = []
    for s, e, p, v in zip(start, end, pitch, velocity):
        events.append(SynthEvent(round(s * sample_rate), 1, channel, int(p), max(1, int(v))))
        events.append(SynthEvent(round(e * sample_rate), 0, channel, int(p), 0))
    return events


def render_wav(
    events: Iterable[SynthEvent],
    path: str | Path,
    soundfont: str | Path,
    programs: dict[int, int],
    sample_rate: int = 48000,
    tail_seconds: float = 1.5,
    block: int = 4096,
) -> float:
    """Render events to a 16-bit stereo WAV file; returns the duration in seconds."""
    ordered = sorted(events)
    renderer = FluidSynthRenderer(soundfont, sample_rate)
    try:
        for channel, program in programs.items():
            renderer.set_program(channel, program)
        last = ordered[-1].frame if ordered else 0
        total = last + int(tail_seconds * sample_rate)
        chunks, i = [], 0
        while renderer.frame < total:
            frames = min(block, total - renderer.frame)
            j = i
            while j < len(ordered) and ordered[j].frame < renderer.frame + frames:
                j += 1
            chunks.append(renderer.render(frames, ordered[i:j]))
            i = j
    finally:
        renderer.close()
    audio = np.concatenate(chunks) if chunks else np.zeros((0, 2), np.float32)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return len(audio) / sample_rate
