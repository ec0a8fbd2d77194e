"""A whole MIDI file rendered to audio through FluidSynth (one instrument for every part).

Audio models learn from, and `livegen continue` prompts with, the sound of a MIDI file: its
notes after the sustain pedal (kernels/tokenizer.py), each part on its own channel with the
same General MIDI program, through a freshly made synth (reverb and chorus off, as the codec
was trained), so a render depends on the file and the settings alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from livegen.kernels.errors import LivegenError

TAIL_SECONDS = 1.0  # after the last note-off: the release rings out


def midi_events(notes, sample_rate: int, max_seconds: float | None):
    """(frame, channel, pitch, velocity; 0 = off) sorted, and the frames to render."""
    from livegen.training.codec_data import midi_channels

    start, end = np.asarray(notes.start, float), np.asarray(notes.end, float)
    keep = start < max_seconds if max_seconds is not None else np.ones(len(start), bool)
    channels = midi_channels(np.asarray(notes.channel)[keep])
    events = []
    for s, e, c, p, v in zip(
        start[keep], end[keep], channels, np.asarray(notes.pitch)[keep], notes.velocity[keep]
    ):
        events.append((int(s * sample_rate), 1, int(c), int(p), int(v)))
        events.append((int(e * sample_rate), 0, int(c), int(p), 0))
    events.sort()
    seconds = float(end[keep].max()) + TAIL_SECONDS if keep.any() else 0.0
    if max_seconds is not None:
        seconds = min(seconds, max_seconds)
    return [(f, c, p, v) for f, _, c, p, v in events], int(seconds * sample_rate)


def render_midi(
    path: str | Path,
    soundfont: str | Path,
    sample_rate: int,
    program: int = 0,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Mono float32 at sample_rate: the file (its first max_seconds) through one GM program.

    A file that is not MIDI or has no notes raises a LivegenError naming it."""
    from livegen.kernels.tokenizer import read_midi, sustained_notes
    from livegen.training.codec_data import MidiRenderer

    notes = sustained_notes(read_midi(path))
    if len(notes) == 0:
        raise LivegenError(f"{path}: no notes")
    events, frames = midi_events(notes, sample_rate, max_seconds)
    if frames <= 0:
        raise LivegenError(f"{path}: no notes")
    renderer = MidiRenderer(Path(soundfont), sample_rate)
    try:
        channels = {c for _, c, _, _ in events}
        return renderer.render(events, {c: program for c in channels}, frames)
    finally:
        renderer.close()
