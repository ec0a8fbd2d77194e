"""Real FluidSynth with the Debian soundfont: notes sound on the exact frame they name."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from livegen.models.preset import DEFAULT_SOUNDFONT
from livegen.synth import FluidSynthRenderer, SynthError, SynthEvent, note_events, render_wav

pytestmark = pytest.mark.skipif(
    not Path(DEFAULT_SOUNDFONT).is_file(), reason="timgm6mb-soundfont not installed"
)


@pytest.mark.parametrize("onset", [1000, 1024, 1030])
def test_note_starts_within_fluidsynths_64_frame_grid(onset: int) -> None:
    # FluidSynth renders in internal blocks of 64 frames and applies an event at the next
    # block boundary; splitting our block at the event's frame achieves exactly that bound.
    renderer = FluidSynthRenderer(DEFAULT_SOUNDFONT, sample_rate=48000)
    try:
        renderer.set_program(0, 0)
        block = renderer.render(4096, [SynthEvent(onset, 1, 0, 60, 110)])
    finally:
        renderer.close()
    # FluidSynth's effects leave a noise floor near 1e-8; a note is many orders louder.
    loud = np.flatnonzero(np.abs(block).max(axis=1) > 1e-6)
    first = int(loud[0])
    assert onset <= first < (onset // 64 + 1) * 64 + 16


def test_events_split_blocks_the_same_whatever_the_block_size(tmp_path: Path) -> None:
    events = note_events(
        np.array([0.1, 0.35]),
        np.array([0.3, 0.6]),
        np.array([60, 64]),
        np.array([90, 70]),
        0,
        48000,
    )
    a = tmp_path / "a.wav"
    b = tmp_path / "b.wav"
    render_wav(events, a, DEFAULT_SOUNDFONT, {0: 0}, block=128)
    render_wav(events, b, DEFAULT_SOUNDFONT, {0: 0}, block=4096)
    assert a.read_bytes() == b.read_bytes()


def test_wav_is_silent_before_the_first_note_and_sounds_during_it(tmp_path: Path) -> None:
    events = note_events(
        np.array([0.5]), np.array([1.0]), np.array([60]), np.array([100]), 0, 48000
    )
    out = tmp_path / "note.wav"
    seconds = render_wav(events, out, DEFAULT_SOUNDFONT, {0: 0}, tail_seconds=0.5)
    assert seconds == pytest.approx(1.5)
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels()) == (48000, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert np.all(pcm[:24000] == 0)
    assert np.abs(pcm[24000:48000]).max() > 1000


def test_missing_soundfont_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="soundfont not found"):
        FluidSynthRenderer(tmp_path / "nope.sf2")
