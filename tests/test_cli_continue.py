"""`livegen continue`: a real tiny preset, a real MIDI prompt, real FluidSynth and a real PNG."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import mido
import numpy as np
import pytest

from livegen.cli import main
from livegen.kernels.tokenizer import Notes, encode_file, write_midi
from tests.presets import tiny_preset


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> Path:
    return tiny_preset(tmp_path_factory.mktemp("preset"))


def phrase(count: int = 8) -> Notes:
    start = np.arange(count) * 0.25
    pitch = 60 + (np.arange(count) * 5) % 24
    return Notes(start, start + 0.2, pitch, 50 + (np.arange(count) * 7) % 60, [0] * count)


@pytest.fixture
def prompt(tmp_path) -> Path:
    path = tmp_path / "prompt.mid"
    write_midi(path, [("prompt", phrase())])
    return path


def track_notes(path: Path, index: int) -> list[tuple[int, int, int, int]]:
    """(pitch, on tick, off tick, velocity) of one track, paired oldest first."""
    midi = mido.MidiFile(path)
    now, open_, notes = 0, {}, []
    for message in midi.tracks[index]:
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            open_.setdefault(message.note, []).append((now, message.velocity))
        elif message.type in ("note_on", "note_off"):
            on, velocity = open_[message.note].pop(0)
            notes.append((message.note, on, now, velocity))
    return sorted(notes, key=lambda n: (n[1], n[0]))


def run_continue(prompt: Path, out: Path, preset: Path, *extra: str) -> int:
    args = ["continue", str(prompt), "-o", str(out), "--preset", str(preset), "--seconds", "4"]
    return main([*args, *extra])


def test_continue_writes_prompt_and_continuation(prompt, preset, tmp_path, capsys):
    out, wav, png = tmp_path / "out.mid", tmp_path / "out.wav", tmp_path / "roll.png"
    assert run_continue(prompt, out, preset, "--wav", str(wav), "--png", str(png)) == 0
    assert "continuation:" in capsys.readouterr().out

    midi = mido.MidiFile(out)
    assert len(midi.tracks) == 2
    assert track_notes(out, 0) == track_notes(prompt, 0)  # the prompt, untouched
    continuation = track_notes(out, 1)
    assert len(continuation) > 0
    prompt_end = max(off for _, _, off, _ in track_notes(prompt, 0))
    assert min(on for _, on, _, _ in continuation) >= prompt_end
    # 4 s of model time after the prompt (2 s): nothing runs past it, nothing is stuck.
    ticks_per_second = 2 * midi.ticks_per_beat
    assert max(off for _, _, off, _ in continuation) <= prompt_end + 5 * ticks_per_second
    assert all(off - on <= 4.0 * ticks_per_second for _, on, off, _ in continuation)
    # The whole file reads back through the tokenizer.
    assert len(encode_file(out)) > len(encode_file(prompt))

    with wave.open(str(wav)) as audio:
        assert audio.getnchannels() == 2 and audio.getframerate() == 48000
        samples = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2")
    assert np.abs(samples).max() > 1000  # sound, not silence
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_continuation_is_deterministic_for_a_seed(prompt, preset, tmp_path):
    paths = [tmp_path / f"{name}.mid" for name in ("a", "b", "c")]
    assert run_continue(prompt, paths[0], preset, "--seed", "3") == 0
    assert run_continue(prompt, paths[1], preset, "--seed", "3") == 0
    assert run_continue(prompt, paths[2], preset, "--seed", "4") == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert track_notes(paths[0], 1) != track_notes(paths[2], 1)
    assert track_notes(paths[0], 0) == track_notes(paths[2], 0)


def test_prompt_longer_than_the_context_streams(preset, tmp_path):
    long_prompt = tmp_path / "long.mid"
    write_midi(long_prompt, [("prompt", phrase(60))])
    assert len(encode_file(long_prompt)) > 3 * 64  # the tiny preset's context is 64
    out = tmp_path / "out.mid"
    assert run_continue(long_prompt, out, preset, "--top-p", "0.9", "--temperature", "0.8") == 0
    assert len(track_notes(out, 0)) == 60 and len(track_notes(out, 1)) > 0


def test_sampling_overrides_change_the_result(prompt, preset, tmp_path):
    plain, greedy = tmp_path / "plain.mid", tmp_path / "greedy.mid"
    assert run_continue(prompt, plain, preset) == 0
    assert run_continue(prompt, greedy, preset, "--top-k", "1") == 0
    assert track_notes(plain, 1) != track_notes(greedy, 1)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing prompt", "no such file"),
        ("corrupt prompt", "not a MIDI file"),
        ("missing preset", "no preset named"),
        ("malformed preset", "not valid TOML"),
        ("bad temperature", "argument --temperature: must be a finite number in (0, 100]"),
        ("bad seconds", "argument --seconds: must be a finite number in (0, 86400]"),
        ("missing output folder", "does not exist"),
        ("bad device", "unknown device"),
    ],
)
def test_bad_inputs_give_one_line_errors(case, message, prompt, preset, tmp_path, capsys):
    out = tmp_path / "out.mid"
    args = ["continue", str(prompt), "-o", str(out), "--preset", str(preset), "--seconds", "1"]
    if case == "missing prompt":
        args[1] = str(tmp_path / "nothing.mid")
    elif case == "corrupt prompt":
        bad = tmp_path / "bad.mid"
        bad.write_bytes(b"this is not a MIDI file at all")
        args[1] = str(bad)
    elif case == "missing preset":
        args[5] = "no-such-preset"
    elif case == "malformed preset":
        broken = tmp_path / "broken.toml"
        broken.write_text("name = [unclosed")
        args[5] = str(broken)
    elif case == "bad temperature":
        args += ["--temperature", "0"]
    elif case == "bad seconds":
        args[7] = "0"
    elif case == "missing output folder":
        args[3] = str(tmp_path / "no" / "such" / "out.mid")
    elif case == "bad device":
        args += ["--device", "tpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("livegen continue: error:")
    assert message in err
    assert not out.exists()


def test_exit_code_and_message_through_the_real_entry_point(preset, tmp_path):
    """The installed console script path: a missing default preset is one line, exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "livegen", "continue", str(tmp_path / "x.mid"), "-o", "y.mid"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "error:" in result.stderr
