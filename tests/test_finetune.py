"""livegen-train finetune: the shipped piano preset, trained a little further on takes the
jam's own recorder wrote (real MIDI files), learns them; export makes a preset found by name."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest

from livegen.kernels.tokenizer import encode_file, write_midi
from livegen.models.checkpoint import load_model
from livegen.models.loading import load_preset_model
from livegen.models.preset import load_preset, user_presets_dir
from livegen.recorder import MODEL_TRACK, PLAYER_TRACK, Recorder
from livegen.training.checkpointing import latest_checkpoint, read_state
from livegen.training.cli import main
from livegen.training.finetune import split_nll_of, stage_recordings
from livegen.training.train import read_log
from tests.training_fixtures import melody

# The piano preset's weights at a short context, so a step takes milliseconds: the weights'
# shapes do not depend on the context, and the mechanism is the same at N = 1024.
FAST = """
[model]
context = 96
latents = 32

[train]
eval_windows = 8
log_interval = 1
"""


def record_take(path, seed: int, seconds: float = 30.0) -> None:
    """A take as the jam records it: the player's riff on track 0, the model's on track 1."""
    recorder = Recorder(path, interval=60.0)
    notes = melody(seed, count=160)
    # The player repeats a short riff: something a few steps of fine-tuning can learn.
    root = 55 + seed  # each take in its own key: no two are the same file
    riff = [(i * 0.25, root + (0, 4, 7, 12, 7, 4)[i % 6], 100) for i in range(int(seconds * 4))]
    for start, pitch, velocity in riff:
        recorder.add(PLAYER_TRACK, start, [0x90, pitch, velocity])
        recorder.add(PLAYER_TRACK, start + 0.2, [0x80, pitch, 0])
    for start, end, pitch in zip(notes.start, notes.end, notes.pitch):
        recorder.add(MODEL_TRACK, float(start) + 0.1, [0x91, int(pitch), 70])
        recorder.add(MODEL_TRACK, float(end) + 0.1, [0x81, int(pitch), 0])
    recorder.close()


@pytest.fixture
def takes(tmp_path):
    folder = tmp_path / "Music" / "livegen"
    folder.mkdir(parents=True)
    for i in range(4):
        record_take(folder / f"livegen-2026120{i}-200000.mid", seed=i)
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    return folder


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVEGEN_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


def test_player_tracks_keep_only_what_the_musician_played(tmp_path, takes):
    other = tmp_path / "daw"
    other.mkdir()
    write_midi(other / "song.mid", [("piano", melody(9))])
    stage = tmp_path / "stage"
    report = stage_recordings([takes, other], stage, "player")
    assert (report.files, report.takes, report.whole) == (6, 4, 2)  # broken + song: whole
    take = stage / "livegen" / "livegen-20261200-200000.mid"
    names = [t.name for t in mido.MidiFile(take).tracks]
    assert names == ["player"]
    played = [m.note for m in mido.MidiFile(take).tracks[0] if m.type == "note_on"]
    assert set(played) == {55, 59, 62, 67}
    whole = stage_recordings([takes], tmp_path / "all", "all")
    assert whole.takes == 4
    both = encode_file(tmp_path / "all" / "livegen" / "livegen-20261200-200000.mid")
    assert len(both) > len(encode_file(take))  # the model's notes are in too


def test_finetune_learns_the_takes_and_exports_a_preset_found_by_name(tmp_path, takes):
    config = tmp_path / "fast.toml"
    config.write_text(FAST, encoding="utf-8")
    run = tmp_path / "run"
    args = ["finetune", "--preset", "piano", "--midi", str(takes), "--out", str(run)]
    args += ["--config", str(config), "--steps", "12", "--lr", "1e-3", "--batch-size", "4"]
    assert main([*args, "--no-progress", "--threads", "1", "--stop-after", "6"]) == 0
    assert read_state(latest_checkpoint(run)).step == 6
    assert main([*args, "--no-progress", "--threads", "1", "--resume"]) == 0
    assert read_state(latest_checkpoint(run)).step == 12
    assert main([*args, "--no-progress"]) == 2  # not over a run without --resume
    assert [int(r["step"]) for r in read_log(run)] == list(range(1, 13))

    info = json.loads((run / "finetune.json").read_text())
    assert info["staged"]["takes"] == 4 and info["tracks"] == "player"
    skipped = (run / "data" / "skipped.txt").read_text()
    assert "broken.mid" in skipped

    # The NLL on the recordings it learnt from goes down, from the preset's own weights.
    from livegen.training.finetune import starting_model
    from livegen.training.warm_start import resolve_init

    tuned = load_model(latest_checkpoint(run) / "model")
    start = starting_model(resolve_init("piano"), _run_config(run))
    before = split_nll_of(start, run / "data", "train", windows=16)
    after = split_nll_of(tuned, run / "data", "train", windows=16)
    print(f"NLL on the takes: {before:.3f} -> {after:.3f}")
    assert after < before - 0.3, (before, after)

    assert main(["export", str(run), "--name", "mine", "--weights", "float16"]) == 0
    assert (user_presets_dir() / "mine.toml").is_file()
    mine, piano = load_preset("mine"), load_preset("piano")
    assert mine.source.parent == user_presets_dir()
    assert mine.sampling == piano.sampling and mine.sound == piano.sound
    assert mine.training["init"]["preset"] == "piano"
    assert mine.training["finetune"]["tracks"] == "player"
    # what the weights had seen before the takes
    base_seen = piano.training.get("tokens_seen_total", piano.training["tokens_seen"])
    assert mine.training["base"]["preset"] == "piano"
    assert mine.training["tokens_seen_total"] == mine.training["tokens_seen"] + base_seen
    loaded = load_preset_model(mine, "cpu")
    weights = dict(loaded.model.state_dict())
    for name, tensor in tuned.state_dict().items():
        np.testing.assert_allclose(weights[name].numpy(), tensor.numpy(), atol=2e-3, rtol=2e-3)


def _run_config(run):
    from livegen.training.config import RunConfig
    from livegen.training.train import read_run_file

    return RunConfig.from_dict(read_run_file(run)["config"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--preset", "no-such-preset"], "no preset named 'no-such-preset'"),
        (["--tracks", "player", "--steps", "0"], "--steps must be positive"),
        (["--config", "BAD"], "may change only context, latents, dropout"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, takes, capsys, extra, message):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\ndim = 512\n", encoding="utf-8")
    extra = [str(bad) if item == "BAD" else item for item in extra]
    args = ["finetune", "--preset", "piano", "--midi", str(takes), "--out", str(tmp_path / "r")]
    assert main([*args, *extra, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_too_little_playing_for_the_context_is_an_error(tmp_path, capsys):
    short = tmp_path / "short"
    short.mkdir()
    record_take(short / "livegen-20261201-100000.mid", seed=0, seconds=5.0)
    args = ["finetune", "--preset", "piano", "--midi", str(short), "--out", str(tmp_path / "r")]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "the model reads 1,025 at a time" in err and len(err.strip().splitlines()) == 1


def test_a_folder_without_midi_is_an_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["finetune", "--preset", "piano", "--midi", str(empty), "--out", str(tmp_path / "r")]
    assert main(args) == 2
    assert "no MIDI files" in capsys.readouterr().err


def test_ar_init_starts_from_a_presets_weights_and_refuses_another_shape(tmp_path, capsys):
    from livegen.training.data import DataOptions, build_data
    from tests.presets import tiny_preset
    from tests.training_fixtures import midi_folder, tiny_config

    preset = tiny_preset(tmp_path / "presets", context=64, latents=16, dim=32, layers=1)
    data = tmp_path / "data"
    options = DataOptions(val_fraction=0.2, test_fraction=0.0, progress=False)
    build_data([midi_folder(tmp_path, pieces=6, bad=False)], data, options)
    config = tiny_config(tmp_path / "c.toml", steps=1)  # context 48: may differ from 64
    config.write_text(config.read_text().replace("lr = 3e-3", "lr = 1e-9"))
    run = tmp_path / "run"
    args = ["ar", "--config", str(config), "--data", str(data), "--out", str(run)]
    assert main([*args, "--init", str(preset), "--no-progress"]) == 0
    trained = load_model(latest_checkpoint(run) / "model").state_dict()
    original = load_model(preset.parent / "tiny").state_dict()
    for name, tensor in original.items():
        np.testing.assert_allclose(trained[name].numpy(), tensor.numpy(), atol=1e-6)
    assert json.loads((run / "run.json").read_text())["init"]["preset"] == "tiny"

    # A run warm-started from that run exports with the preset's sampling and sound.
    from livegen.training.export import base_preset

    chained = tmp_path / "run2"
    assert main([*args[:-1], str(chained), "--init", str(run), "--no-progress"]) == 0
    assert base_preset(chained).name == "tiny"
    assert json.loads((chained / "run.json").read_text())["init"]["tokens_seen"] == 4 * 16

    # The first run exported over its own base preset, then the chain exported: the total
    # counts each run once (the base as the warm start saw it, not the file as it is now).
    base_seen = load_preset(preset).training.get("tokens_seen", 0)
    assert main(["export", str(run), "--name", "tiny", "--dir", str(preset.parent)]) == 0
    assert main(["export", str(chained), "--name", "chain", "--dir", str(tmp_path / "out")]) == 0
    chain = load_preset(tmp_path / "out" / "chain.toml").training
    assert chain["tokens_seen_total"] == 4 * 16 + 4 * 16 + base_seen

    wide = tiny_preset(tmp_path / "presets", name="wide", dim=64)
    assert main([*args[:-1], str(tmp_path / "r2"), "--init", str(wide)]) == 2
    err = capsys.readouterr().err
    assert "dim 64 -> 32" in err and len(err.strip().splitlines()) == 1


def test_eval_measures_a_preset_on_any_data(tmp_path, capsys):
    """Held-out MIDI is measured against what users play: a preset, not only a run."""
    from livegen.training.data import DataOptions, build_data
    from tests.presets import tiny_preset
    from tests.training_fixtures import midi_folder

    preset = tiny_preset(tmp_path / "presets", context=64, latents=16)
    data = tmp_path / "heldout"
    options = DataOptions(val_fraction=0.0, test_fraction=0.0, progress=False)
    build_data([midi_folder(tmp_path, pieces=3, bad=False)], data, options)
    args = ["eval", str(preset), "--data", str(data), "--split", "train", "--json"]
    assert main([*args, "--stream-tokens", "40"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tokens"] > 0 and 4.0 < report["nll"] < 8.0  # random weights: ~ln(391)
    assert report["stream"]["agrees"]


def test_a_run_resumed_on_rebuilt_data_records_what_it_trains_on(tmp_path):
    from livegen.training.config import load_run_config
    from livegen.training.data import DataOptions, build_data
    from livegen.training.train import read_run_file, train
    from tests.training_fixtures import midi_folder, tiny_config

    options = DataOptions(val_fraction=0.2, test_fraction=0.0, progress=False)
    small, full = tmp_path / "small", tmp_path / "full"
    build_data([midi_folder(tmp_path / "a", pieces=4, bad=False)], small, options)
    build_data([midi_folder(tmp_path / "b", pieces=8, bad=False)], full, options)
    config = load_run_config(tiny_config(tmp_path / "c.toml", steps=6))
    train(tmp_path / "run", config, small, progress=False, stop_after=3)
    train(tmp_path / "run", config, full, progress=False, resume=True)
    info = read_run_file(tmp_path / "run")
    assert info["data"] == str(full.resolve()) and info["data_summary"]["files"] == 8
    assert info["data_history"] == [{"until_step": 3, "data": str(small.resolve()), "files": 4}]
