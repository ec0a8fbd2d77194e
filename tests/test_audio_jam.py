"""The audio model live (issue 14): the rings between the callback and the audio model's
worker, the context that hears the callback's output through the real codec, the crossfade
of a cut in the real callback renderer, and the whole jam through a real JACK server with a
tiny audio preset (random weights, saved the way export saves one) and the shipped codec."""

from __future__ import annotations

import dataclasses
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from livegen.audio_context import AudioContext
from livegen.audio_out import (
    NO_SOUND_HINT,
    AudioInDevice,
    AudioOut,
    AudioSpec,
    CallbackRenderer,
)
from livegen.audio_rings import FIRST, LAST, AudioRings
from livegen.cli import main as livegen_main
from livegen.controls import Controls
from livegen.engine import JamEngine
from livegen.jack_ports import audio_ports, connections
from livegen.messages import CancelAfter
from livegen.models.preset import DEFAULT_SOUNDFONT
from livegen.resampling import Resampler
from tests.jack import JackServer
from tests.jam_peers import Keyboard, ManualClock, jack_settings, stop_session, wait_until
from tests.presets import tiny_audio_preset, tiny_preset

SR, BLOCK, SLOT = 48000, 128, 768  # codec-24k's 384-sample frame at 48 kHz


@pytest.fixture(scope="module")
def audio_preset(tmp_path_factory) -> Path:
    return tiny_audio_preset(tmp_path_factory.mktemp("audio-preset"))


@pytest.fixture
def rings():  # noqa: ANN201
    made = AudioRings.create(SR, SLOT, seconds=2.0)
    yield made
    made.close()


def _sine(frames: int, hz: float = 440.0, start: int = 0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * (start + np.arange(frames)) / SR)).astype(np.float32)


class _Status:
    output_underflow = False

    def __bool__(self) -> bool:
        return False


def _play(renderer: CallbackRenderer, clock: ManualClock, blocks: int) -> np.ndarray:
    out, chunks = np.zeros((BLOCK, 2), np.float32), []
    for _ in range(blocks):
        renderer.callback(out, BLOCK, None, _Status())
        chunks.append(out[:, 0].copy())
        clock.t += BLOCK / SR
    return np.concatenate(chunks)


def test_resampling_keeps_a_tone_and_its_rate() -> None:
    down, up = Resampler(2), Resampler(2)
    tone = _sine(SR)  # 1 s at 48 kHz
    half = np.concatenate([down.down(tone[i : i + SLOT]) for i in range(0, SR, SLOT)])
    back = np.concatenate([up.up(half[i : i + SLOT // 2]) for i in range(0, len(half), SLOT // 2)])
    assert len(half) == SR // 2 and len(back) == SR
    spectrum = np.abs(np.fft.rfft(back[4800:]))
    assert abs(np.argmax(spectrum) * SR / len(back[4800:]) - 440) < 2  # still 440 Hz
    assert 0.25 < np.abs(back[4800:]).max() < 0.35  # and its level


def test_the_context_hears_what_the_callback_put_out(audio_preset, rings) -> None:
    """Heard blocks (as the callback writes them) become codec frames in the model's context,
    K tokens a frame, at their place; a tone's codes are not silence's; a rollback drops only
    the model's frames, and the heard frames of that time take their place."""
    from livegen.models.audio_preset import load_audio_models, load_audio_preset
    from livegen.models.codec_fast import FastCodec
    from livegen.models.streaming import StreamingDecoder

    loaded, codec = load_audio_models(load_audio_preset(audio_preset), "cpu")
    vocab = loaded.model.config.audio_vocab()
    context = AudioContext(StreamingDecoder(loaded.model), FastCodec(codec), vocab, rings, factor=2)
    start = context.decoder.position  # after BEGIN
    frames = 12
    silence, tone = np.zeros(SLOT * 6, np.float32), _sine(SLOT * 6, start=SLOT * 6)
    for at in range(0, SLOT * frames, BLOCK):
        block = np.concatenate([silence, tone])[at : at + BLOCK]
        rings.write_heard(np.stack([block, block], axis=1), at)
    assert context.listen() == frames
    assert context.take_heard() == frames  # a whole batch
    assert context.decoder.position == start + frames * vocab.levels
    assert not np.array_equal(context.codes[1], context.codes[8])  # silence is not the tone
    context.begin_model()
    for _ in range(3):  # the model writes three frames
        codes = np.array([5, 7])
        context.decoder.append(vocab.flatten(codes[None]).tolist())
        context.put_model(codes)
    assert context.frame == frames + 3
    assert context.roll_back(frames + 1) == 2  # its frames from 13 on: dropped
    assert context.decoder.position == start + (frames + 1) * vocab.levels
    assert context.roll_back(0) == 0  # once rolled back, no heard frame is ever dropped
    for at in range(SLOT * frames, SLOT * (frames + 10), BLOCK):
        block = _sine(BLOCK, start=at)
        rings.write_heard(np.stack([block, block], axis=1), at)
    context.listen()
    assert context.take_heard(force=True) == 9  # heard frames 13..21 follow the model's 12
    assert context.frame == frames + 10


def _voice_renderer(rings: AudioRings) -> tuple[CallbackRenderer, ManualClock]:
    clock = ManualClock()
    spec = AudioSpec(
        t0=0.0, soundfont=DEFAULT_SOUNDFONT, sample_rate=SR, blocksize=BLOCK, voice=rings.layout
    )
    return CallbackRenderer(spec, clock=clock), clock


def test_a_cut_fades_the_old_future_out_and_plays_none_of_it(rings) -> None:
    """The model's frames (a tone here, so a hard cut would jump by up to 0.3) play from the
    ring; a cut mid-frame fades them out over 5 ms, no sample-to-sample step larger than the
    tone's own, and nothing of the old epoch plays after it, though it is still in the ring."""
    renderer, clock = _voice_renderer(rings)
    frames = 40
    for j in range(frames):
        flags = FIRST if j == 2 else LAST if j == frames - 1 else 0
        if j >= 2:
            rings.write_slot(j, 0, _sine(SLOT, start=j * SLOT), flags)
    before = _play(renderer, clock, 60)  # frames 0-9: silence, then the tone from frame 2
    latency = renderer.latency_frames
    assert np.abs(before[: 2 * SLOT - 1]).max() < 1e-6
    assert np.abs(before[2 * SLOT + latency :]).max() > 0.25
    cut_t = clock.t + 300 / SR  # mid-block, mid-frame
    renderer.inbox.append(CancelAfter(cut_t, 1))
    after = _play(renderer, clock, 120)
    heard = np.concatenate([before, after])
    cut = renderer.frame_of(cut_t)
    steady = np.abs(np.diff(heard[2 * SLOT + 10 : cut])).max()
    around = np.abs(np.diff(heard[cut - 200 : cut + 400])).max()
    assert around <= steady * 1.2  # no click at the switch (a hard cut: up to 0.3)
    assert np.abs(heard[cut + 240 :]).max() < 1e-6  # the old future: not played
    assert np.abs(heard[cut - 50 : cut]).max() > 0.1  # the tone played up to the cut
    voice = renderer.voice
    assert voice.onsets == 1 and voice.late_frames == 0
    # A new turn (epoch 1) plays again; a frame missing mid-turn is counted late.
    now_frame = (renderer.synth.frame // SLOT) + 2
    rings.write_slot(now_frame, 1, _sine(SLOT), FIRST)
    rings.write_slot(now_frame + 2, 1, _sine(SLOT), LAST)
    _play(renderer, clock, 30)
    assert voice.onsets == 2 and voice.late_frames == 1
    renderer.voice.close()


# ---- the whole jam through JACK ----------------------------------------------------------------


def _mono(path: Path) -> np.ndarray:
    with wave.open(str(path)) as handle:
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
        channels, rate = handle.getnchannels(), handle.getframerate()
    assert rate == SR
    return pcm.reshape(-1, channels)[:, 0].astype(np.float64) / 32768


def _envelope(audio: np.ndarray) -> np.ndarray:
    """RMS per millisecond."""
    n = len(audio) // 48 * 48
    return np.sqrt((audio[:n] ** 2).reshape(-1, 48).mean(axis=1))


def _runs(loud: np.ndarray, gap: int = 40) -> list[tuple[int, int]]:
    """(start, end) ms of the loud stretches, joining those less than `gap` ms apart."""
    runs: list[list[int]] = []
    for index in np.flatnonzero(loud):
        if runs and index - runs[-1][1] <= gap:
            runs[-1][1] = int(index)
        else:
            runs.append([int(index), int(index)])
    return [(a, b + 1) for a, b in runs]


def _turns_heard(engine: JamEngine) -> int:
    """The model's turns whose first sound the callback has put out (its reaction can be
    0.0 ms: the turn's first sample is written ahead of its time)."""
    latest = engine.audio.latest if engine.audio is not None else None
    return latest.model_onsets if latest is not None else 0


def _jam(jack: JackServer, tmp_path: Path, preset: Path, controls: Controls, **settings):  # noqa: ANN202
    engine = JamEngine(
        jack_settings(tmp_path, preset=str(preset), audio_device=None, seed=3, **settings),
        controls,
    )
    engine.start()
    assert not engine.stats().problems, engine.stats().problems
    return engine


def _capture(jack: JackServer, path: Path, seconds: float) -> subprocess.Popen:
    ports = [jack.wait_for_port("PortAudio:out_0"), jack.wait_for_port("PortAudio:out_1")]
    return subprocess.Popen(
        ["jack_rec", "-f", str(path), "-d", str(seconds), "-b", "16", *ports],
        env=jack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_continue_mode_plays_the_models_sound_after_the_phrase(
    jack: JackServer, tmp_path: Path, audio_preset: Path
) -> None:
    """The player's phrase (FluidSynth, into the model's context through the codec) and then
    the model's sound, heard in the JACK graph: it begins once the phrase has ended and lasts
    the turn's length (a wrong rate would stretch or halve it); the headless meters show it;
    the recording keeps the WAV of both and the player's MIDI."""
    controls = Controls(silence_seconds=0.5, response_seconds=1.0)
    rec = tmp_path / "rec"
    engine = _jam(jack, tmp_path, audio_preset, controls, record_dir=str(rec), record_wav=True)
    keyboard = None
    capture = tmp_path / "heard.wav"
    try:
        recorder = _capture(jack, capture, 3.5)
        keyboard = Keyboard(jack)
        keyboard.connect()
        time.sleep(0.3)
        keyboard.phrase([60, 67], length=0.15)
        ahead = []  # the meters while the model writes its turn
        assert wait_until(lambda: ahead.append(engine.stats().frames_ahead or 0.0) or max(ahead), 5)
        recorder.wait(timeout=20)
        assert wait_until(lambda: _turns_heard(engine), 2.0)
        assert engine.stats().realtime_factor > 0
    finally:
        stop_session(engine, keyboard)
    runs = _runs(_envelope(_mono(capture)) > 2e-3)
    player = runs[0]
    # The model: after the phrase and a silence (a late frame or two under load may split it).
    after = [run for run in runs if run[0] - player[1] >= 200]
    assert after, runs
    model = (after[0][0], after[-1][1])
    # response_seconds (a frame or two late under load shortens it; at a wrong rate: 0.5 or 2 s)
    assert 800 <= model[1] - model[0] <= 1200, runs
    take = Path(engine.recording_path)
    recorded = _runs(_envelope(_mono(take.with_suffix(".wav"))) > 2e-3, gap=100)
    assert len(recorded) >= 2 and 800 <= recorded[-1][1] - recorded[-1][0] <= 1200, recorded
    import mido

    notes = [m.note for m in mido.MidiFile(take) if m.type == "note_on" and m.velocity]
    assert notes[:2] == [60, 67]  # the player's MIDI, kept beside the sound


def test_the_player_cuts_the_model_off_without_a_click(
    jack: JackServer, tmp_path: Path, audio_preset: Path
) -> None:
    """The player plays in the middle of the model's 3 s turn: its sound stops within a few
    ms of the player's key (faded, no step beyond its own) and its written future never
    plays; the model answers the new phrase later. No passthrough: what is heard after the
    cut is the model's alone."""
    controls = Controls(silence_seconds=0.4, response_seconds=3.0, passthrough=False)
    engine = _jam(jack, tmp_path, audio_preset, controls)
    keyboard = None
    capture = tmp_path / "heard.wav"
    try:
        recorder = _capture(jack, capture, 3.0)
        keyboard = Keyboard(jack)
        keyboard.connect()
        time.sleep(0.3)
        keyboard.phrase([60], length=0.1)
        assert wait_until(lambda: engine.stats().model_speaking, 3.0), "no turn"
        assert wait_until(lambda: _turns_heard(engine), 3.0), engine.drain_log()
        time.sleep(0.6)  # the model plays
        keyboard.send([0x90, 62, 90])
        cut_at = time.monotonic()
        time.sleep(0.2)
        keyboard.send([0x80, 62, 0])
        recorder.wait(timeout=20)
        assert time.monotonic() - cut_at < 3.0 - 0.3  # the turn would still have been on
    finally:
        stop_session(engine, keyboard)
    audio = _mono(capture)
    runs = _runs(_envelope(audio) > 1e-3, gap=60)
    model = runs[0]  # no passthrough: the first sound is the model's first turn
    assert 400 <= model[1] - model[0] < 2000, runs  # cut off well before its 3 s
    end = model[1] * 48
    steady = np.abs(np.diff(audio[end - 4800 : end - 480])).max()
    assert np.abs(np.diff(audio[end - 480 : end + 480])).max() <= steady * 1.5  # no click
    after = [r for r in runs if r[0] > model[1]]
    # Nothing for the silence the player left (the old future would have filled it).
    assert all(r[0] - model[1] >= 300 for r in after), runs


def test_headless_call_mode_answers_each_phrase_and_shows_the_meters(
    jack: JackServer, tmp_path: Path, audio_preset: Path
) -> None:
    """`livegen jam --headless --mode call` with an audio preset: the model answers the
    player's phrase for as long as the phrase was (not the 4 s a continuation would take);
    the status line shows frames ahead, late frames and the real-time factor; the take is a
    WAV of what was heard and the player's MIDI."""
    import sys

    rec = tmp_path / "rec"
    command = [sys.executable, "-m", "livegen.cli", "jam", "--headless", "--api", "jack"]
    command += ["--preset", str(audio_preset), "--mode", "call", "--silence", "0.4"]
    command += ["--response", "4", "--out", "none", "--duration", "7"]
    command += ["--record", str(rec), "--record-wav", "--seed", "2"]
    root = Path(__file__).resolve().parent.parent
    jam = subprocess.Popen(command, cwd=root, env=jack.env, stdout=subprocess.PIPE, text=True)
    keyboard = None
    try:
        jack.wait_for_port("livegen in", timeout=60)
        capture = tmp_path / "heard.wav"
        recorder = _capture(jack, capture, 3.0)
        keyboard = Keyboard(jack)
        keyboard.connect()
        time.sleep(0.3)
        keyboard.phrase([60, 64, 67], length=0.15)  # 0.55 s from the first key to the last up
        recorder.wait(timeout=20)
        out, _ = jam.communicate(timeout=60)
    finally:
        if keyboard is not None:
            keyboard.close()
        if jam.poll() is None:
            jam.kill()
    assert jam.returncode == 0, out
    runs = _runs(_envelope(_mono(capture)) > 2e-3)
    # The answer: everything after the player's phrase (a late frame or two under load may
    # split it), from its first sound to its last.
    answer = (runs[1][0], runs[-1][1])
    assert len(runs) >= 2 and 400 <= answer[1] - answer[0] <= 750, runs  # not 4 s
    status = [line for line in out.splitlines() if "RTF" in line]
    assert status and "frames ahead" in status[-1] and "late frames" in status[-1], out
    assert "reaction" in out and "recorded " in out, out
    takes = list(rec.glob("*.mid"))
    assert len(takes) == 1 and takes[0].with_suffix(".wav").stat().st_size > 48000 * 4


def _tone_level(audio: np.ndarray, hz: float) -> float:
    """The level of a tone at `hz` in audio: its spectrum's magnitude there, per sample."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    bins = np.fft.rfftfreq(len(audio), 1 / SR)
    near = (bins > hz - 10) & (bins < hz + 10)
    return float(spectrum[near].max() / len(audio))


def test_audio_in_hears_a_jack_port_and_takes_turns_by_its_sound(
    jack: JackServer, tmp_path: Path, audio_preset: Path
) -> None:
    """--audio-in PORT: a JACK client (jack_metro, 880 Hz beeps once a second) is what the
    model hears and what cues its turns (no MIDI at all); the beeps are recorded with the
    model's sound, not played back out (no feedback)."""
    metro = subprocess.Popen(
        ["jack_metro", "-b", "60", "-f", "880", "-A", "0.5", "-D", "150", "-n", "metro"],
        env=jack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = jack.wait_for_port("metro:")
        controls = Controls(silence_seconds=0.3, response_seconds=0.4)
        rec = tmp_path / "rec"
        engine = _jam(
            jack,
            tmp_path,
            audio_preset,
            controls,
            input="none",
            audio_in=port,
            record_dir=str(rec),
            record_wav=True,
        )
        capture = tmp_path / "out.wav"
        try:
            recorder = _capture(jack, capture, 3.0)
            assert wait_until(lambda: _turns_heard(engine), 5.0), "\n".join(engine.drain_log())
            recorder.wait(timeout=20)
        finally:
            stop_session(engine, None)
    finally:
        metro.terminate()
        metro.wait(timeout=10)
    recorded = _mono(Path(engine.recording_path).with_suffix(".wav"))
    out = _mono(capture)
    assert _tone_level(recorded, 880) > 5 * _tone_level(out, 880)  # heard, not played
    assert _envelope(out).max() > 2e-3  # the model's answers went out


def test_audio_in_an_input_device_opens_the_duplex_stream_on_it(jack: JackServer, rings) -> None:
    """--audio-in with no JACK server about names an input device (a microphone, a line
    input), picked as --audio-device picks outputs. Here the device is PortAudio's JACK
    "system" device, the one sound card this machine has: the stream opens on its input,
    which PortAudio wires to the server's capture ports; a name that matches no input device
    is the audio process's one-line problem, not a crash."""
    spec = AudioSpec(
        t0=time.perf_counter(), soundfont=DEFAULT_SOUNDFONT, voice=rings.layout,
        audio_in=AudioInDevice("system"),
    )  # fmt: skip
    audio = AudioOut(spec)
    audio.launch()
    try:
        assert audio.wait_ready() is None, audio.problem
        ours = [p for p in audio_ports("input") or [] if p.startswith("PortAudio")]
        assert ours and "system:capture_1" in connections(ours[0]), ours
    finally:
        audio.stop()
    wrong = AudioOut(dataclasses.replace(spec, audio_in=AudioInDevice("nowhere")))
    wrong.launch()
    problem = wrong.wait_ready()
    assert problem is not None and "audio input device 'nowhere' matches 0" in problem, problem
    # The input asked for is named first; no hint about output sound, which is not the problem.
    assert problem.startswith("--audio-in 'nowhere': ") and NO_SOUND_HINT not in problem


# ---- bad inputs ------------------------------------------------------------------------------


def test_bad_audio_jam_inputs_are_one_line_errors(audio_preset, tmp_path, capsys) -> None:
    broken = tmp_path / "no-codec.toml"
    broken.write_text(
        audio_preset.read_text().replace('preset = "codec-24k"', 'preset = "no-such-codec"') + "",
    )
    (tmp_path / "tiny-audio").symlink_to(audio_preset.parent / "tiny-audio")
    midi = tiny_preset(tmp_path)
    cases = [
        (["--preset", str(broken)], "no codec preset 'no-such-codec'"),
        (["--preset", str(audio_preset), "--audio-device", "none"], "heard only through"),
        (["--preset", str(audio_preset), "--sample-rate", "44100"], "whole multiple"),
        (["--preset", str(midi), "--audio-in", "system:capture_1"], "needs an audio preset"),
        # No JACK server here: the name is taken for an input device, which does not exist.
        (["--preset", str(audio_preset), "--audio-in", "nowhere:out"], "--audio-in 'nowhere:out'"),
    ]
    for args, message in cases:
        code = livegen_main(["jam", "--headless", "--in", "none", "--out", "none", *args])
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and len(err.splitlines()) == 1, (args, err)


def test_the_tui_meters_show_an_audio_models_frames() -> None:
    from livegen.controls import Stats
    from livegen.tui.meters import meters_text

    stats = Stats(running=True, realtime_factor=1.84, frames_ahead=12.5, late_frames=2)
    plain = meters_text(stats, Controls()).plain
    assert "late 2" in plain and "RTF 1.8x" in plain and "input" not in plain
    assert all(len(line) <= 46 for line in plain.splitlines())  # fits beside the controls
    assert "input" in meters_text(Stats(running=True), Controls()).plain  # a MIDI model's


def test_the_tui_jams_with_an_audio_preset(
    jack: JackServer, tmp_path: Path, audio_preset: Path
) -> None:
    """The terminal UI (its engine in a process of its own, as a user runs it) with an audio
    preset: the computer keyboard's notes are heard by the model, which answers; the meters
    show its real-time factor."""
    import asyncio

    from livegen.engine_host import EngineProcess
    from livegen.midi_ports import forget_midi_clients
    from livegen.settings_file import SavedSettings
    from livegen.tui.app import JamApp
    from livegen.tui.meters import Meters

    settings = jack_settings(tmp_path, preset=str(audio_preset), input="none", audio_device=None)
    app = JamApp(
        SavedSettings(jam=settings, controls=Controls(silence_seconds=0.3)),
        engine_factory=EngineProcess,
        bench=None,
        settings_file=tmp_path / "config" / "settings.toml",
    )

    async def until(pilot, condition, timeout: float) -> bool:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            await pilot.pause(0.05)
        return True

    async def jam() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            assert await until(pilot, lambda: app.engine_state in ("running", "failed"), 60)
            assert app.engine_state == "running", app.start_problem
            await pilot.press("a")
            assert await until(pilot, lambda: app.engine.stats().model_speaking, 8.0)
            meters = app.jam_screen.query_one(Meters)
            assert await until(pilot, lambda: "RTF" in meters.render().plain, 3.0)
            await pilot.press("ctrl+q")
            assert await until(pilot, lambda: app.engine_state == "stopped", 15.0)

    try:
        asyncio.run(jam())
    finally:
        if app.engine is not None:
            app.engine.stop()
        forget_midi_clients()
