"""`livegen-train codec`, `eval-codec`, `export-codec` on tiny real data: audio files written
here, MIDI rendered by the real FluidSynth, a real Opus round trip."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from livegen.kernels.errors import LivegenError, PresetError
from livegen.models.codec_files import load_codec
from livegen.models.codec_preset import load_codec_preset
from livegen.models.preset import DEFAULT_SOUNDFONT, list_presets, load_preset
from livegen.training.checkpointing import latest_checkpoint
from livegen.training.cli import main
from livegen.training.codec_config import DataConfig
from livegen.training.codec_data import CropSampler, scan_sources
from tests.training_fixtures import midi_folder

TINY = """
[model]
sample_rate = 8000
hop = 64
analysis_window = 64
channels = 16
encoder_depth = 1
decoder_depth = 1
kernel = 3
latent_dim = 8
levels = 3
codebook_size = 16
min_levels = 1

[train]
steps = {steps}
batch_size = 4
warmup_steps = 2
eval_interval = 2
checkpoint_interval = 2
log_interval = 1

[train.loss]
adversarial = {adversarial}

[train.data]
segment_seconds = 0.25
val_segments = 2
val_fraction = 0.0
"""


def audio_folder(root: Path) -> Path:
    """Three real clips (tones, two rates, one stereo), a text file posing as WAV, an empty WAV."""
    folder = root / "audio"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, rate in enumerate((8000, 16000, 11025)):
        t = np.arange(rate) / rate
        tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.01 * rng.standard_normal(rate)
        data = np.stack([tone, tone[::-1]], 1) if i == 2 else tone
        sf.write(folder / f"clip{i}.wav", data, rate)
    (folder / "notes.wav").write_text("not audio at all")
    sf.write(folder / "empty.wav", np.zeros(0), 8000)
    return folder


def write_config(root: Path, steps: int, adversarial: bool = False) -> Path:
    path = root / "tiny.toml"
    path.write_text(TINY.format(steps=steps, adversarial=str(adversarial).lower()))
    return path


def rows(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_train_skips_bad_files_and_resume_is_exact(tmp_path, capsys) -> None:
    audio = audio_folder(tmp_path)
    config = write_config(tmp_path, steps=4)
    common = ["codec", "--config", str(config), "--audio", str(audio), "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "straight")]) == 0
    skipped = (tmp_path / "straight" / "skipped.txt").read_text()
    assert "notes.wav" in skipped and "empty.wav" in skipped
    assert "clip0" not in skipped
    assert main([*common, "--out", str(tmp_path / "split"), "--stop-after", "2"]) == 0
    assert main(["codec", "--out", str(tmp_path / "split"), "--resume", "--no-progress"]) == 0
    a, b = rows(tmp_path / "straight"), rows(tmp_path / "split")
    assert [r["step"] for r in a] == ["1", "2", "3", "4"]
    for key in ("loss", "mel", "quantizer", "ppl_0", "val_mel"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    wa = load_codec(latest_checkpoint(tmp_path / "straight") / "model").state_dict()
    wb = load_codec(latest_checkpoint(tmp_path / "split") / "model").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert float(a[0]["ppl_0"]) > 1.0  # k-means spread the first batch over several codes


def test_midi_crops_render_through_fluidsynth_deterministically(tmp_path) -> None:
    train, _ = scan_sources([], [midi_folder(tmp_path, pieces=3)], 0.0)
    assert len(train.midi) == 3 and len(train.skipped) == 2  # the corrupt and the empty file
    sampler = CropSampler(train, [Path(DEFAULT_SOUNDFONT)], DataConfig(), 8000, 4000, seed=3)
    try:
        first, other, again = sampler.batch(5, 2), sampler.batch(6, 2), sampler.batch(5, 2)
    finally:
        sampler.close()
    assert first.shape == (2, 4000)
    assert float(first.pow(2).mean().sqrt()) > 1e-3  # notes sound
    assert torch.equal(first, again)  # a pure function of (seed, step, index)
    assert not torch.equal(first, other)


def test_adversarial_phase_trains_discriminators_and_init_reuses_weights(tmp_path) -> None:
    audio = audio_folder(tmp_path)
    plain = ["codec", "--audio", str(audio), "--no-progress"]
    assert (
        main([*plain, "--config", str(write_config(tmp_path, 2)), "--out", str(tmp_path / "a")])
        == 0
    )
    adv = write_config(tmp_path, 2, adversarial=True)
    args = [
        *plain,
        "--config",
        str(adv),
        "--out",
        str(tmp_path / "b"),
        "--init",
        str(tmp_path / "a"),
    ]
    assert main(args) == 0
    log = rows(tmp_path / "b")
    assert all(r["discriminator"] and r["feature_matching"] for r in log)
    info = json.loads((tmp_path / "b" / "run.json").read_text())
    assert info["init"].endswith("model")
    encoder = "encoder.proj.weight"  # frozen in the adversarial phase: unchanged from the init
    start = load_codec(latest_checkpoint(tmp_path / "a") / "model").state_dict()[encoder]
    after = load_codec(latest_checkpoint(tmp_path / "b") / "model").state_dict()[encoder]
    assert torch.equal(start, after)


def test_bad_config_and_missing_data_are_one_line_errors(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nlevels = 0\n")
    assert (
        main(
            ["codec", "--config", str(bad), "--audio", str(tmp_path), "--out", str(tmp_path / "r")]
        )
        == 2
    )
    assert "levels" in capsys.readouterr().err
    config = write_config(tmp_path, 2)
    assert main(["codec", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    assert "training data" in capsys.readouterr().err


def test_eval_against_opus_and_export_a_codec_preset(tmp_path, capsys) -> None:
    audio = audio_folder(tmp_path)
    config = write_config(tmp_path, 2)
    run = tmp_path / "run"
    assert (
        main(
            [
                "codec",
                "--config",
                str(config),
                "--audio",
                str(audio),
                "--out",
                str(run),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    args = ["eval-codec", str(run), "--audio", str(audio), "--seconds", "0.5", "--json"]
    assert main([*args, "--no-visqol"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clips"] == 3 and report["kbps"] == pytest.approx(3 * 4 * 125 / 1000)
    assert report["opus_kbps"] == [6.0, 12.0]
    overall = report["overall"]
    # Opus at 12 kbps on a clean tone is far better than an untrained codec: the comparison
    # is measured, not assumed.
    assert overall["opus_12"]["mel"] < overall["codec"]["mel"]
    assert overall["opus_12"]["si_sdr"] > 5.0
    assert len(report["perplexity"]) == 3 and len(report["skipped"]) == 2
    # One folder, one group: its perplexity is the overall one.
    assert report["perplexity_by_group"] == {audio.name: report["perplexity"]}
    # Two folders: each group's figure is the one that folder gives on its own.
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(audio / "clip0.wav", lone / "clip0.wav")
    quick = ["--seconds", "0.5", "--json", "--no-visqol", "--no-opus"]
    assert main(["eval-codec", str(run), "--audio", str(lone), *quick]) == 0
    alone = json.loads(capsys.readouterr().out)["perplexity"]
    assert main(["eval-codec", str(run), "--audio", str(audio), str(lone), *quick]) == 0
    both = json.loads(capsys.readouterr().out)
    assert both["perplexity_by_group"] == {audio.name: report["perplexity"], "lone": alone}
    (tmp_path / "report.json").write_text(json.dumps(report))
    presets = tmp_path / "presets"
    presets.mkdir()
    export = ["export-codec", str(run), "--name", "tiny", "--dir", str(presets)]
    assert main([*export, "--figures", str(tmp_path / "report.json"), "--trained-on", "tones"]) == 0
    preset = load_codec_preset(presets / "tiny.toml")
    assert preset.training["trained_on"] == "tones"
    assert preset.figures["codec"]["mel"] == overall["codec"]["mel"]
    assert load_codec(preset.model_dir).config.levels == 3
    assert list_presets(presets) == [] and list_presets(presets, kind="codec") == ["tiny"]
    with pytest.raises(PresetError, match="codec preset"):
        load_preset(presets / "tiny.toml")
    with pytest.raises(LivegenError):
        load_codec_preset(tmp_path / "nothing.toml")


def testvisqol_scores_a_clean_copy_above_a_noisy_one() -> None:
    from livegen.training.codec_eval import visqol_score

    rng = np.random.default_rng(0)
    t = np.arange(24000) / 24000
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    ref = (tone + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    noisy = ref + (0.05 * rng.standard_normal(len(t))).astype(np.float32)
    clean, degraded = visqol_score((ref, ref, 24000)), visqol_score((ref, noisy, 24000))
    assert clean > 4.0 and degraded < clean - 0.5
