"""Training audio for the codec: crops of audio files, and MIDI rendered on the fly through
FluidSynth with several soundfonts and General MIDI programs.

Every batch is a pure function of (seed, step, offset of this rank's share): which source,
file, offset, soundfont, programs, transposition, stretch and gain are drawn from a generator
seeded by (seed, step, index), and each batch renders on freshly made synths (reverb and
chorus off), because FluidSynth carries voice state from one render to the next. So
`--resume` sees exactly the batches an uninterrupted run would have.

Unreadable files are skipped at scan time and listed (`skipped`), never fatal.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livegen.kernels.errors import LivegenError
from livegen.kernels.midi_codes import CHANNELS, DRUM_CHANNEL
from livegen.training.audio_io import AudioFileError, audio_info, list_audio, read_audio
from livegen.training.codec_config import DataConfig

MIDI_SUFFIXES = {".mid", ".midi", ".smf", ".kar"}
SILENCE_RMS = 1e-3
FLUSH_FRAMES = 64  # FluidSynth's internal block size  # crops quieter than this are redrawn (a few times at most)


@dataclass
class AudioItem:
    path: Path
    seconds: float


@dataclass
class MidiItem:
    path: Path
    notes: object  # kernels.tokenizer.Notes (channel = instrument index)
    seconds: float


@dataclass
class Sources:
    audio: list[AudioItem] = field(default_factory=list)
    midi: list[MidiItem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: reason"

    @property
    def hours(self) -> float:
        return (sum(i.seconds for i in self.audio) + sum(i.seconds for i in self.midi)) / 3600


def _held_out(path: Path, fraction: float) -> bool:
    return zlib.crc32(path.name.encode()) % 10_000 < fraction * 10_000


def scan_sources(
    audio_dirs: list[Path], midi_dirs: list[Path], val_fraction: float
) -> tuple[Sources, Sources]:
    """(train, val) sources: files split by a hash of their name; bad files listed in both."""
    from livegen.kernels.tokenizer import read_midi, sustained_notes

    train, val = Sources(), Sources()
    for path in list_audio(audio_dirs):
        try:
            frames, rate = audio_info(path)
        except AudioFileError as error:
            train.skipped.append(str(error))
            continue
        (val if _held_out(path, val_fraction) else train).audio.append(
            AudioItem(path, frames / rate)
        )
    for path in _list_midi(midi_dirs):
        try:
            notes = sustained_notes(read_midi(path))
        except LivegenError as error:
            train.skipped.append(str(error))
            continue
        if len(notes) == 0:
            train.skipped.append(f"{path}: no notes")
            continue
        (val if _held_out(path, val_fraction) else train).midi.append(
            MidiItem(path, notes, float(notes.end.max()))
        )
    val.skipped = train.skipped
    return train, val


def _list_midi(folders: list[Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise LivegenError(f"{folder}: no such folder")
        files.extend(
            p for p in sorted(Path(folder).rglob("*")) if p.suffix.lower() in MIDI_SUFFIXES
        )
    return files


class MidiRenderer:
    """One FluidSynth per soundfont, reset before every crop so a crop depends on nothing
    rendered before it."""

    def __init__(self, soundfont: Path, sample_rate: int) -> None:
        try:
            import fluidsynth
        except ImportError as error:
            raise LivegenError(f"FluidSynth is not available ({error})") from None
        if not Path(soundfont).is_file():
            raise LivegenError(f"{soundfont}: soundfont not found")
        options = {"synth.reverb.active": 0, "synth.chorus.active": 0}
        self.synth = fluidsynth.Synth(gain=0.5, samplerate=float(sample_rate), **options)
        self.sfid = self.synth.sfload(str(soundfont))
        if self.sfid < 0:
            raise LivegenError(f"{soundfont}: FluidSynth could not load this soundfont")
        self.sample_rate = sample_rate
        self.rendered = 0  # frames rendered so far (for the block phase)

    def render(
        self, events: list[tuple[int, int, int, int]], programs: dict[int, int], frames: int
    ):
        """events (frame, channel, pitch, velocity; velocity 0 = off), sorted -> mono float32."""
        synth = self.synth
        for channel in range(16):
            synth.all_sounds_off(channel)  # voices die now, not after their release
        synth.system_reset()
        # FluidSynth renders in blocks of 64 frames and applies events at block starts: start
        # every crop at the same block phase, so its samples depend on nothing before it.
        flush = FLUSH_FRAMES + (-self.rendered) % FLUSH_FRAMES
        synth.get_samples(flush)
        self.rendered += flush
        for channel, program in programs.items():
            synth.program_select(channel, self.sfid, 0, program)
        chunks, done = [], 0
        for frame, channel, pitch, velocity in events:
            frame = min(frame, frames)
            if frame > done:
                chunks.append(synth.get_samples(frame - done))
                self.rendered += frame - done
                done = frame
            if velocity > 0:
                synth.noteon(channel, pitch, velocity)
            else:
                synth.noteoff(channel, pitch)
        if done < frames:
            chunks.append(synth.get_samples(frames - done))
            self.rendered += frames - done
        stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2) / 32768.0
        return stereo.mean(axis=1)

    def close(self) -> None:
        self.synth.delete()


def midi_channels(instruments: np.ndarray) -> np.ndarray:
    """Instrument index -> a melodic MIDI channel (0-15 without 9, the drum channel)."""
    melodic = np.array([c for c in range(CHANNELS) if c != DRUM_CHANNEL])
    return melodic[instruments % len(melodic)]


class CropSampler:
    """Batches of crops [batch, samples] as a pure function of (seed, step, index)."""

    def __init__(
        self,
        sources: Sources,
        soundfonts: list[Path],
        config: DataConfig,
        sample_rate: int,
        samples: int,
        seed: int,
    ) -> None:
        if not sources.audio and not sources.midi:
            raise LivegenError("no training audio: every file was skipped or none was given")
        if sources.midi and not soundfonts:
            raise LivegenError("MIDI data needs at least one --soundfont to render with")
        self.sources, self.config = sources, config
        self.sample_rate, self.samples, self.seed = sample_rate, samples, seed
        self.soundfonts = list(soundfonts) if sources.midi else []
        self.renderers = [MidiRenderer(sf, sample_rate) for sf in self.soundfonts]
        self.cache: dict[int, np.ndarray] = {}  # with config.cache_audio: whole files
        self.audio_p = _weights([i.seconds for i in sources.audio])
        self.midi_p = _weights([i.seconds for i in sources.midi])

    def batch(self, step: int, count: int, offset: int = 0):
        import torch

        def render() -> np.ndarray:
            return np.stack([self.crop(step, offset + i) for i in range(count)])

        # FluidSynth carries voice state from one render to the next, so a batch renders in a
        # forked child, on the synths as they were when loaded (never played in this process):
        # it then depends on (seed, step, offset) alone. Forking shares the loaded soundfonts.
        if self.renderers and hasattr(os, "fork"):
            return torch.from_numpy(_in_child(render, (count, self.samples)))
        return torch.from_numpy(render())

    def crop(self, step: int, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step + 1, index])
        for _ in range(4):  # redraw silent crops, a bounded number of times
            out = self._draw(rng)
            if np.sqrt(np.mean(out**2)) >= SILENCE_RMS:
                break
        gain = 10 ** (rng.uniform(-self.config.gain_db, self.config.gain_db) / 20)
        return np.clip(out * gain, -1.0, 1.0).astype(np.float32)

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        use_midi = bool(self.sources.midi) and (
            not self.sources.audio or rng.random() < self.config.midi_weight
        )
        return self._midi(rng) if use_midi else self._audio(rng)

    def _audio(self, rng: np.random.Generator) -> np.ndarray:
        index = rng.choice(len(self.sources.audio), p=self.audio_p)
        item = self.sources.audio[index]
        seconds = self.samples / self.sample_rate
        start = rng.uniform(0, max(0.0, item.seconds - seconds))
        try:
            if self.config.cache_audio:
                whole = self._cached(index)
                first = int(start * self.sample_rate)
                return _fit(whole[first : first + self.samples], self.samples)
            audio = read_audio(item.path, self.sample_rate, start, seconds)
        except AudioFileError:
            audio = np.zeros(0, np.float32)  # went bad since the scan: silence, redrawn
        return _fit(audio, self.samples)

    def _cached(self, index: int) -> np.ndarray:
        if index not in self.cache:
            self.cache[index] = read_audio(self.sources.audio[index].path, self.sample_rate)
        return self.cache[index]

    def _midi(self, rng: np.random.Generator) -> np.ndarray:
        cfg, sr = self.config, self.sample_rate
        item = self.sources.midi[rng.choice(len(self.sources.midi), p=self.midi_p)]
        renderer = self.renderers[rng.integers(len(self.renderers))]
        notes = item.notes
        stretch = rng.uniform(1 - cfg.stretch, 1 + cfg.stretch)
        shift = int(rng.integers(-cfg.transpose, cfg.transpose + 1))
        seconds = self.samples / sr
        t0 = rng.uniform(0, max(0.0, item.seconds * stretch - seconds))
        base = t0 - cfg.preroll_seconds
        start, end = notes.start * stretch, notes.end * stretch
        pick = (start >= base) & (start < t0 + seconds) & (notes.pitch + shift >= 0)
        pick &= notes.pitch + shift < 128
        channels = midi_channels(notes.channel[pick])
        programs = {int(c): int(rng.choice(cfg.programs)) for c in np.unique(channels)}
        velocity = np.clip(notes.velocity[pick] + rng.integers(-24, 25), 1, 127)
        velocity = np.clip(velocity + rng.normal(0, 6, len(velocity)), 1, 127).astype(int)
        events = []
        for s, e, c, p, v in zip(start[pick], end[pick], channels, notes.pitch[pick], velocity):
            events.append((int((s - base) * sr), 1, int(c), int(p + shift), int(v)))
            events.append((int((e - base) * sr), 0, int(c), int(p + shift), 0))
        events.sort()
        total = int(cfg.preroll_seconds * sr) + self.samples
        ordered = [(f, c, p, v) for f, _, c, p, v in events]
        audio = renderer.render(ordered, programs, total)
        return audio[total - self.samples :]

    def close(self) -> None:
        for renderer in self.renderers:
            renderer.close()
        self.renderers = []


def _in_child(make: Callable[[], np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """make() run in a forked child; its float32 array of `shape` comes back through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: render, send, leave without running any parent clean-up
        code = 1
        try:
            os.close(read_end)
            data = memoryview(np.ascontiguousarray(make(), dtype=np.float32).tobytes())
            while data:
                data = data[os.write(write_end, data) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    size = shape[0] * shape[1] * 4
    chunks, got = [], 0
    with os.fdopen(read_end, "rb") as pipe:
        while got < size:
            chunk = pipe.read(size - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    _, status = os.waitpid(pid, 0)
    if got < size or status != 0:
        raise LivegenError("the MIDI rendering process failed (FluidSynth)")
    return np.frombuffer(b"".join(chunks), dtype=np.float32).reshape(shape).copy()


def _weights(seconds: list[float]) -> np.ndarray | None:
    if not seconds:
        return None
    w = np.asarray(seconds, dtype=np.float64) + 1e-3
    return w / w.sum()


def _fit(audio: np.ndarray, samples: int) -> np.ndarray:
    if len(audio) >= samples:
        return audio[:samples]
    return np.pad(audio, (0, samples - len(audio)))
