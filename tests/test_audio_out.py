"""Sound: the callback renderer places events at their sample frame; through JACK, the engine's
audio stream sounds the player's and the model's notes when the MIDI says they happen."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

from livegen.audio_out import AudioSpec, CallbackRenderer
from livegen.controls import Controls
from livegen.engine import JamEngine
from livegen.messages import CancelAfter, Silence, SynthNote
from livegen.models.preset import DEFAULT_SOUNDFONT
from tests.jack import JackServer
from tests.jam_peers import (
    LIVEGEN_OUT,
    Keyboard,
    ManualClock,
    MidiDump,
    jack_settings,
    stop_session,
)

SR, BLOCK = 48000, 128


class _Status:
    output_underflow = False

    def __bool__(self) -> bool:
        return False


def _run(
    renderer: CallbackRenderer, clock: ManualClock, blocks: int, block: int = BLOCK
) -> np.ndarray:
    """Call the callback as a perfectly regular device would; the audio it wrote."""
    out = np.zeros((block, 2), dtype=np.float32)
    chunks = []
    for _ in range(blocks):
        renderer.callback(out, block, None, _Status())
        chunks.append(out.copy())
        clock.t += block / SR
    return np.concatenate(chunks)


def _renderer(block: int = BLOCK) -> tuple[CallbackRenderer, ManualClock]:
    clock = ManualClock()
    spec = AudioSpec(t0=0.0, soundfont=DEFAULT_SOUNDFONT, sample_rate=SR, blocksize=block)
    return CallbackRenderer(spec, clock=clock), clock


def _onset(audio: np.ndarray, threshold: float = 1e-4) -> int:
    loud = np.flatnonzero(np.abs(audio[:, 0]) > threshold)
    return int(loud[0]) if len(loud) else -1


def _onset_of_note_at(at: float, block: int) -> int:
    """Frame (minus the fixed latency) at which a note timed `at` is first heard."""
    renderer, clock = _renderer(block)
    head = _run(renderer, clock, 1024 // block, block)  # the anchor settles at 0
    renderer.inbox.append(SynthNote(at, 0, 60, 100))
    audio = np.concatenate([head, _run(renderer, clock, 8192 // block, block)])
    return _onset(audio) - renderer.latency_frames


def _grid(frame: int) -> int:
    return -(-frame // 64) * 64  # FluidSynth applies events at its next 64-frame step


def test_an_event_sounds_at_its_frame_whatever_the_block() -> None:
    at = 0.03 + 37 / SR  # mid-block, off FluidSynth's grid
    small, large = _onset_of_note_at(at, 128), _onset_of_note_at(at, 512)
    assert small == large  # the block size does not move a note
    later = _onset_of_note_at(at + 200 / SR, 128)
    frame = round(at * SR)
    assert later - small == _grid(frame + 200) - _grid(frame)  # 200 frames later, to the step
    assert small - _grid(frame) < 48  # the sample's own attack: the onset is where it belongs


def test_cancel_drops_the_models_future_but_not_the_players() -> None:
    renderer, clock = _renderer()
    _run(renderer, clock, 2)
    renderer.inbox.append(SynthNote(0.05, 1, 64, 100, True))  # after the cut: dropped
    renderer.inbox.append(SynthNote(0.05, 0, 60, 100))  # the player's: kept
    renderer.inbox.append(CancelAfter(0.02))
    audio = _run(renderer, clock, 30)
    assert np.abs(audio).max() > 0.01
    renderer.inbox.append(Silence())
    renderer.inbox.append(SynthNote(clock.t + 0.01, 1, 64, 100, True))
    renderer.inbox.append(CancelAfter(clock.t))
    tail = _run(renderer, clock, 200)
    # Silenced (only the reverb's tail is left), and the cancelled note never came: a note
    # at velocity 100 peaks near 0.05.
    assert np.abs(tail[-40 * BLOCK :]).max() < 1e-3


def _loud_after_quiet(envelope: np.ndarray, start: int) -> int:
    """Index (ms) of the first loud millisecond after 80 quiet ones, from start; else -1."""
    for index in range(max(start, 82), len(envelope)):
        if envelope[index] > 5e-4 and envelope[index - 82 : index - 2].max() < 2e-4:
            return index
    return -1


def _envelope(path: Path) -> np.ndarray:
    with wave.open(str(path)) as handle:
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
        channels, rate = handle.getnchannels(), handle.getframerate()
    mono = pcm.reshape(-1, channels)[:, 0].astype(np.float64) / 32768
    per_ms = rate // 1000
    n = len(mono) // per_ms * per_ms
    return np.sqrt((mono[:n] ** 2).reshape(-1, per_ms).mean(axis=1))


def test_the_engine_sounds_through_jack_when_the_midi_says(
    jack_rt: JackServer, tmp_path: Path
) -> None:
    """The player's note (passthrough) and the model's answer are heard in the JACK graph
    (jack_rec), as far apart as jack_midi_dump saw them on MIDI; the WAV recording has them."""
    settings = jack_settings(
        tmp_path, audio_device=None, record_dir=str(tmp_path / "rec"), record_wav=True, seed=3
    )
    controls = Controls(silence_seconds=0.8, response_seconds=0.6)
    engine = JamEngine(settings, controls)
    capture = tmp_path / "heard.wav"
    keyboard = recorder = None
    try:
        engine.start()
        assert not engine.stats().problems, engine.stats().problems
        dump = MidiDump(jack_rt)
        dump.connect(LIVEGEN_OUT)
        recorder = subprocess.Popen(
            ["jack_rec", "-f", str(capture), "-d", "3", "-b", "16"]
            + [jack_rt.wait_for_port("PortAudio:out_0"), jack_rt.wait_for_port("PortAudio:out_1")],
            env=jack_rt.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        keyboard = Keyboard(jack_rt)
        keyboard.connect()
        time.sleep(0.3)
        keyboard.phrase([60], length=0.1)
        recorder.wait(timeout=20)
    finally:
        stop_session(engine, keyboard)
    events = dump.stop()
    player_on = next(e.seconds for e in events if e.channel == 0 and e.is_on)
    model_on = next(e.seconds for e in events if e.channel == 1 and e.is_on)
    heard = _envelope(capture)
    player_heard = _loud_after_quiet(heard, 0)
    model_heard = _loud_after_quiet(heard, player_heard + 100)
    assert player_heard >= 0 and model_heard > player_heard, "nothing heard"
    midi_gap = (model_on - player_on) * 1000
    heard_gap = model_heard - player_heard
    # Both go through the same fixed latency; MIDI lands on JACK periods (2.7 ms), the synth
    # on 64-frame steps (1.3 ms). A late cycle now and then stamps MIDI late, hence 20 ms
    # here (the server is real-time: on an ordinary one under load it was 24 ms and more); the
    # exact placement is test_an_event_sounds_at_its_frame_whatever_the_block's to check.
    assert abs(heard_gap - midi_gap) <= 20, (heard_gap, midi_gap)
    wav = Path(engine.recording_path).with_suffix(".wav")
    recorded = _envelope(wav)
    assert recorded.max() > 5e-3
    assert _loud_after_quiet(recorded, _loud_after_quiet(recorded, 0) + 100) > 0


def test_a_listed_audio_device_name_picks_that_device(jack):
    """`livegen ports` lists "name (host API)"; --audio-device takes that form as it is."""
    script = (
        "import sounddevice as sd\n"
        "from livegen.audio_devices import pick_device\n"
        "from livegen.audio_devices import list_audio_devices\n"
        "names = list_audio_devices()\n"
        "assert names, 'no audio devices listed'\n"
        "import json\n"
        "print(json.dumps([names, [pick_device(sd, name) for name in names]]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=jack.env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    names, picked = json.loads(result.stdout.splitlines()[-1])
    assert any("JACK" in name for name in names), names
    assert all(isinstance(index, int) for index in picked), picked
