"""`livegen codec` (a round trip through the shipped codec) and `livegen presets`."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from livegen.cli import main


def test_round_trip_takes_any_rate_and_channels_and_keeps_the_length(tmp_path, capsys) -> None:
    rate = 44100
    t = np.arange(int(rate * 0.75)) / rate
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], 1)
    source = tmp_path / "in.flac"
    sf.write(source, stereo, rate)
    out = tmp_path / "out.wav"
    assert main(["codec", str(source), "-o", str(out), "--levels", "4", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "kbps",
        "sample_rate",
        "frame_rate",
        "levels",
        "codebook_size",
        "rtf",
        "latency_ms",
    ):
        assert key in figures
    assert figures["levels"] == 4 and figures["kbps"] == 2.5 and figures["latency_ms"] == 20.0
    decoded, decoded_rate = sf.read(out)
    assert decoded_rate == figures["sample_rate"] == 24000 and decoded.ndim == 1
    assert len(decoded) == round(0.75 * decoded_rate)
    # The trained codec gives the tones back: the same loudness and the same pitch.
    middle = decoded[2000:-2000]
    assert 0.5 < np.sqrt(np.mean(middle**2)) / np.sqrt(np.mean(stereo.mean(1) ** 2)) < 2.0
    spectrum = np.abs(np.fft.rfft(middle))
    peak = np.argmax(spectrum) * decoded_rate / len(middle)
    assert abs(peak - 440) < 20 or abs(peak - 330) < 20


def test_bad_inputs_are_one_line_errors(tmp_path, capsys) -> None:
    text = tmp_path / "song.wav"
    text.write_text("RIFF but not really")
    assert main(["codec", str(text), "-o", str(tmp_path / "o.wav")]) == 2
    assert "not a readable audio file" in capsys.readouterr().err
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 8000)
    assert main(["codec", str(empty), "-o", str(tmp_path / "o.wav")]) == 2
    assert "empty" in capsys.readouterr().err
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(800), 8000)
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(good.read_bytes()[:60])
    assert main(["codec", str(truncated), "-o", str(tmp_path / "o.wav")]) == 2
    capsys.readouterr()
    assert main(["codec", str(good), "-o", str(tmp_path / "o.wav"), "--levels", "99"]) == 2
    assert "--levels" in capsys.readouterr().err
    assert main(["codec", str(good), "-o", str(tmp_path / "o.wav"), "--preset", "nope"]) == 2
    assert "codec-24k" in capsys.readouterr().err


def test_presets_lists_every_kind_as_json(capsys) -> None:
    assert main(["presets", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert entries["piano"]["kind"] == "midi"
    codec = entries["codec-24k"]
    assert codec["kind"] == "codec" and codec["size_bytes"] > 1_000_000
    assert "TimGM6mb" in codec["trained_on"]
    assert codec["figures"]["codec"]["visqol"] > codec["figures"]["opus_6"]["visqol"]
    assert main(["presets"]) == 0
    assert "[codec]" in capsys.readouterr().out
