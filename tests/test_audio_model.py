"""Audio models (issue 14, offline): codec token data from rendered MIDI and audio files, a
real training step on those tokens, the level mask, `livegen continue` and `bench` with a
tiny audio preset, and the export that names the codec. Real FluidSynth, the real shipped
codec, tiny models."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from livegen.cli import main as livegen_main
from livegen.kernels.audio_vocab import AudioVocab
from livegen.kernels.errors import LivegenError
from livegen.kernels.tokenizer import write_midi
from livegen.models.audio_continuation import prompt_ids, sample_level
from livegen.models.sampling import SamplingParams
from livegen.training.cli import main as train_main
from livegen.training.config import RunConfig
from livegen.training.shards import TokenShards, read_index
from livegen.training.train import train
from tests.training_fixtures import melody

SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
LEVELS = 2
HOP, RATE = 384, 24000
TINY_AUDIO = {
    "model": {
        "tokens": "audio",
        "codec": "codec-24k",
        "levels": LEVELS,
        "codebook_size": 1024,
        "context": 32,
        "latents": 8,
        "dim": 32,
        "heads": 2,
        "layers": 1,
    },
    "train": {
        "steps": 2,
        "batch_size": 2,
        "warmup_steps": 1,
        "eval_interval": 2,
        "eval_windows": 2,
        "checkpoint_interval": 2,
        "prefix_keep": 0.5,
        "augment": {"enabled": False},
    },
}


def _inputs(root: Path) -> tuple[Path, Path]:
    midi, audio = root / "midi", root / "audio"
    midi.mkdir()
    audio.mkdir()
    for i in range(3):
        write_midi(midi / f"tune{i}.mid", [("piano", melody(i, count=10))])
    (midi / "broken.mid").write_bytes(b"MThd not really")
    t = np.arange(RATE) / RATE
    sf.write(audio / "tone.wav", 0.3 * np.sin(2 * np.pi * 220 * t), RATE)
    sf.write(audio / "quiet.wav", np.zeros(RATE // 2), RATE)
    (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x00")
    return midi, audio


@pytest.fixture(scope="module")
def audio_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    midi, audio = _inputs(root)
    out = root / "data"
    code = train_main(
        ["data", "--midi", str(midi), "--audio", str(audio), "--render", SOUNDFONT]
        + ["--codec", "codec-24k", "--levels", str(LEVELS), "--out", str(out)]
        + ["--val", "0.2", "--test", "0.2", "--no-progress"]
    )
    assert code == 0
    return out


def test_data_encodes_rendered_midi_and_audio_and_lists_bad_files(audio_data, capsys) -> None:
    index = read_index(audio_data)
    kind = index.summary["tokens_kind"]
    assert (kind["kind"], kind["levels"], kind["codebook_size"]) == ("audio", LEVELS, 1024)
    assert kind["frame_rate"] == 62.5
    names = sorted(p.name for p in index.pieces)
    assert names == ["audio/tone.wav", "midi/tune0.mid", "midi/tune1.mid", "midi/tune2.mid"]
    skipped = (audio_data / "skipped.txt").read_text()
    assert "broken.mid" in skipped and "corrupt.wav" in skipped
    assert "quiet.wav: silent" in skipped
    vocab = AudioVocab(LEVELS, 1024)
    tone = next(p for p in index.pieces if p.name.endswith("tone.wav"))
    assert tone.tokens == 63 * LEVELS  # 1 s -> ceil(24000 / 384) frames
    for split in ("train", "val", "test"):
        shards = TokenShards(audio_data, split, index)
        for array in shards.arrays:
            ids = np.asarray(array, dtype=np.int64)
            assert ids[0] == vocab.begin and ids[-1] == vocab.end
            body = ids[(ids != vocab.begin) & (ids != vocab.end)]
            levels = body // 1024
            assert np.array_equal(levels, np.tile(np.arange(LEVELS), len(body) // LEVELS))
    # A second build encodes nothing again (cache) and writes the same shards.
    before = {p.name: p.tokens for p in index.pieces}
    midi, audio = audio_data.parent / "midi", audio_data.parent / "audio"
    code = train_main(
        ["data", "--midi", str(midi), "--audio", str(audio), "--render", SOUNDFONT]
        + ["--codec", "codec-24k", "--levels", str(LEVELS), "--out", str(audio_data)]
        + ["--val", "0.2", "--test", "0.2", "--no-progress", "--json"]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 3
    assert {p.name: p.tokens for p in read_index(audio_data).pieces} == before


def test_data_refuses_midi_without_a_soundfont_and_a_bad_codec(tmp_path, capsys) -> None:
    midi, _ = _inputs(tmp_path)
    base = ["data", "--midi", str(midi), "--out", str(tmp_path / "d"), "--no-progress"]
    assert train_main([*base, "--codec", "codec-24k"]) == 2
    assert "--render" in capsys.readouterr().err
    assert train_main([*base, "--codec", "no-such-codec", "--render", SOUNDFONT]) == 2
    assert "no-such-codec" in capsys.readouterr().err


def test_one_training_step_on_audio_tokens(audio_data, tmp_path) -> None:
    run = RunConfig.from_dict(TINY_AUDIO)
    assert run.model.vocab_size == LEVELS * 1024 + 3 and run.model.pad_id == LEVELS * 1024
    result = train(tmp_path / "run", run, audio_data, progress=False)
    assert result.state.step == 2 and np.isfinite(result.state.val_nll)
    assert result.state.val_nll < 9.0  # ln(2051) = 7.6 at random; a broken loss is far off
    wrong = RunConfig.from_dict(
        {**TINY_AUDIO, "model": {**TINY_AUDIO["model"], "levels": 3}}, "three levels"
    )
    with pytest.raises(LivegenError, match="2 levels"):
        train(tmp_path / "wrong", wrong, audio_data, progress=False)
    augmented = RunConfig.from_dict({**TINY_AUDIO, "train": {**TINY_AUDIO["train"], "augment": {}}})
    with pytest.raises(LivegenError, match="augment"):
        train(tmp_path / "aug", augmented, audio_data, progress=False)


def test_a_midi_model_refuses_audio_data(audio_data, tmp_path) -> None:
    model = {k: v for k, v in TINY_AUDIO["model"].items() if k in ("context", "latents", "dim")}
    run = RunConfig.from_dict({"model": {**model, "heads": 2}, "train": TINY_AUDIO["train"]})
    with pytest.raises(LivegenError, match="audio tokens"):
        train(tmp_path / "midi-run", run, audio_data, progress=False)


def test_level_mask_allows_only_the_level_of_the_position() -> None:
    vocab = AudioVocab(3, 16)
    logits = torch.zeros(vocab.size)
    logits[vocab.level_range(2)[0]] = 50.0  # the model "wants" a level-2 code
    logits[vocab.begin] = 60.0  # and a special id even more
    generator = torch.Generator().manual_seed(0)
    params = SamplingParams(temperature=1.0, top_p=1.0)
    for level in range(3):
        lo, hi = vocab.level_range(level)
        drawn = {sample_level(logits, vocab, level, params, generator) for _ in range(40)}
        assert all(lo <= t < hi for t in drawn)
    assert sample_level(logits, vocab, 2, params, generator) == vocab.level_range(2)[0]
    codes = np.array([[1, 2, 3], [15, 0, 7]])
    assert np.array_equal(vocab.unflatten(vocab.flatten(codes)), codes)
    assert vocab.next_level(vocab.begin) == 0 and vocab.next_level(vocab.flatten(codes)[-2]) == 2
    assert prompt_ids(vocab, codes, 64)[0] == vocab.begin
    assert len(prompt_ids(vocab, np.zeros((40, 3), int), 64)) == 63  # 21 whole frames


@pytest.fixture(scope="module")
def tiny_preset(audio_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("preset")
    train(root / "run", RunConfig.from_dict(TINY_AUDIO), audio_data, progress=False)
    assert train_main(["export", str(root / "run"), "--name", "tiny", "--dir", str(root)]) == 0
    return root / "tiny.toml"


def test_export_names_the_codec(tiny_preset, capsys) -> None:
    data = tomllib.loads(tiny_preset.read_text())
    assert data["kind"] == "audio" and data["codec"]["preset"] == "codec-24k"
    assert json.loads((tiny_preset.parent / "tiny" / "config.json").read_text())
    from livegen.models.audio_preset import load_audio_models, load_audio_preset

    preset = load_audio_preset(tiny_preset)
    loaded, codec = load_audio_models(preset, "cpu")
    assert loaded.model.config.codec == "codec-24k" and codec.config.hop == HOP


def test_continue_is_deterministic_and_as_long_as_asked(tiny_preset, tmp_path, capsys) -> None:
    prompt = tmp_path / "prompt.mid"
    write_midi(prompt, [("piano", melody(7, count=8))])
    outs = []
    for name, seed in (("a.wav", 5), ("b.wav", 5), ("c.wav", 6)):
        out = tmp_path / name
        args = ["continue", str(prompt), "-o", str(out), "--preset", str(tiny_preset)]
        assert livegen_main([*args, "--seconds", "0.5", "--seed", str(seed)]) == 0
        outs.append(sf.read(out, dtype="float32"))
    (a, rate), (b, _), (c, _) = outs
    assert rate == RATE
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    from livegen.training.render import render_midi

    covered = len(render_midi(prompt, SOUNDFONT, RATE)) // HOP * HOP  # whole prompt frames
    assert len(a) == covered + 32 * HOP  # then ceil(0.5 s x 62.5) frames
    assert "continuation: 0.51 s" in capsys.readouterr().out
    wav_prompt = tmp_path / "prompt.wav"
    sf.write(wav_prompt, a[: 10 * HOP + 100], RATE)
    out = tmp_path / "from-wav.wav"
    args = ["continue", str(wav_prompt), "-o", str(out), "--preset", str(tiny_preset)]
    assert livegen_main([*args, "--seconds", "0.2"]) == 0
    assert len(sf.read(out)[0]) == (10 + 13) * HOP  # whole prompt frames + ceil(0.2 x 62.5)


def test_bench_reports_the_codec_and_the_rate_needed(tiny_preset, capsys) -> None:
    args = ["bench", "--preset", str(tiny_preset), "--tokens", "16", "--json"]
    assert livegen_main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["needed_tokens_per_s"] == 62.5 * LEVELS
    assert report["codec_ms_per_frame_mean"] > 0 and report["realtime_factor"] > 0
    assert report["context_seconds"] == pytest.approx(32 / (62.5 * LEVELS))


def test_eval_scores_an_audio_preset_through_the_streaming_decoder(
    tiny_preset, audio_data, tmp_path, capsys
) -> None:
    args = ["eval", str(tiny_preset), "--data", str(audio_data), "--split", "train"]
    assert train_main([*args, "--windows", "2", "--stream-tokens", "24", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stream"]["agrees"] and report["tokens"] > 0
    midi = tmp_path / "midi-data"
    (tmp_path / "m").mkdir()
    write_midi(tmp_path / "m" / "a.mid", [("piano", melody(1))])
    write_midi(tmp_path / "m" / "b.mid", [("piano", melody(2))])
    assert (
        train_main(["data", "--midi", str(tmp_path / "m"), "--out", str(midi), "--no-progress"])
        == 0
    )
    capsys.readouterr()
    assert train_main(["eval", str(tiny_preset), "--data", str(midi)]) == 2
    assert "midi tokens" in capsys.readouterr().err
