"""`livegen-train eval-continuations`: the statistics against values worked out by hand on a
MIDI file made here, and the command end to end on a tiny real model and real MIDI files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mido
import numpy as np
import pytest

from livegen.kernels.tokenizer import Notes
from livegen.models.continuation import answer_tokens
from livegen.models.grammar import GrammarState
from livegen.models.loading import load_model_for
from livegen.models.sampling import SamplingParams
from livegen.models.streaming import StreamingDecoder
from livegen.models.turns import answer_notes, answer_seconds
from livegen.training import music_stats as ms
from livegen.training.cli import main
from livegen.training.continuations import (
    EvalOptions,
    cut_excerpt,
    judge,
    loop_floor,
    merged_notes,
    prompt_tokens,
)
from tests.presets import tiny_preset

TICKS = 480  # per beat; the default tempo (120 bpm) makes a second 960 ticks


def write_file(path: Path, tracks: list[tuple[int, list[tuple[float, float, int]]]]) -> Path:
    """A real MIDI file: one track per (channel, [(start s, end s, pitch)])."""
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    for channel, notes in tracks:
        events = []
        for start, end, pitch in notes:
            events.append((round(start * 960), 1, pitch))
            events.append((round(end * 960), 0, pitch))
        track = mido.MidiTrack()
        now = 0
        for tick, on, pitch in sorted(events):
            kind = "note_on" if on else "note_off"
            track.append(
                mido.Message(
                    kind, channel=channel, note=pitch, velocity=80 if on else 0, time=tick - now
                )
            )
            now = tick
        midi.tracks.append(track)
    midi.save(path)
    return path


def hand_file(path: Path) -> Path:
    """Prompt (0-4 s): C4 every 0.5 s, 0.4 s long. Then (4-8 s) an E-G chord each second, a
    second long, on another channel. Drums every 0.25 s throughout (they must be left out)."""
    melody = [(0.5 * i, 0.5 * i + 0.4, 60) for i in range(8)]
    chords = [(4.0 + i, 5.0 + i, p) for i in range(4) for p in (64, 67)]
    drums = [(0.25 * i, 0.25 * i + 0.1, 36) for i in range(32)]
    return write_file(path, [(0, melody), (1, chords), (9, drums)])


OPTIONS = EvalOptions(prompt_seconds=4.0, seconds=4.0, min_notes=4)


@pytest.fixture
def excerpt(tmp_path):
    return cut_excerpt("hand", merged_notes(hand_file(tmp_path / "hand.mid")), OPTIONS)


def test_excerpt_and_loop_floor_by_hand(excerpt) -> None:
    assert len(excerpt.prompt) == 8 and set(excerpt.prompt.pitch) == {60}  # no drums
    assert len(excerpt.real) == 8 and excerpt.real.start.min() == 0.0
    loop = loop_floor(excerpt.prompt, 4.0, 4.0)
    # The last half (2-4 s: four C4s) twice: onsets every 0.5 s from the prompt's end.
    assert np.allclose(loop.start, np.arange(8) * 0.5) and set(loop.pitch) == {60}
    assert np.allclose(loop.end - loop.start, 0.4)
    tokens = prompt_tokens(excerpt.prompt, 4.0)
    state = GrammarState()
    state.extend(tokens, 0)
    assert state.step == 400  # padded with silence to the prompt's end (3.9 s -> 4.0 s)


def test_statistics_by_hand(excerpt) -> None:
    real, prompt = excerpt.real, excerpt.prompt
    assert ms.notes_per_second(real, 4.0) == 2.0
    assert ms.mean_polyphony(real) == 2.0
    overlapping = Notes([0.0, 1.0], [2.0, 3.0], [60, 62], [80, 80], [0, 0])
    assert ms.mean_polyphony(overlapping) == pytest.approx(4 / 3)  # 4 note-seconds over 3 s
    assert ms.mean_pitch(real) == 65.5
    assert np.allclose(ms.pitch_class_histogram(real)[[4, 7]], [0.5, 0.5])
    ioi = ms.ioi_histogram(real)  # three 1 s gaps: all mass in the bin holding 1.0 s
    assert ioi.sum() == 1.0 and ioi[np.searchsorted(ms.IOI_EDGES, 1.0) - 1] == 1.0
    loop = loop_floor(prompt, 4.0, 4.0)
    c = ms.compare(loop, real, prompt, 4.0, 4.0)
    assert c.density == 0.0  # 8 notes in 4 s each
    assert c.polyphony == -1.0  # one voice against two
    assert c.register == 60 - 65.5
    assert c.key == 1.0  # C against E and G: nothing shared
    assert c.rhythm == 1.0  # 0.5 s gaps against 1 s gaps: different bins
    assert c.novelty == 0.0  # every window of the loop is a stretch of the prompt
    # Each second of the real part holds one onset at its start; every 1 s stretch of the
    # prompt holds two, so all four windows are new.
    assert ms.novelty(real, prompt, 4.0, 4.0) == 1.0
    assert c.melody == 0.0  # C C C ... against G G G G (the chords' top): steps of 0 both
    assert math.isnan(c.harmony)  # the loop never sounds two notes at once


def test_melody_and_harmony_by_hand(excerpt) -> None:
    real = excerpt.real  # E4 + G4 each second: top line G G G G, a minor third together
    assert ms.top_line_steps(real)[0] == 1.0
    assert ms.vertical_intervals(real)[3] == 1.0
    # A C major triad, then D4 and G4 as single notes: top line G4 D4 G4, steps 5 and 5;
    # together (at 0 s) C-E 4, C-G 7 (class 5), E-G 3; nothing sounds with D4 or the G4.
    line = Notes(
        [0.0] * 3 + [1.0, 2.0], [1.0] * 3 + [2.0, 3.0], [60, 64, 67, 62, 67], [80] * 5, [0] * 5
    )
    assert np.allclose(ms.top_line_steps(line)[[5]], [1.0])
    assert np.allclose(ms.vertical_intervals(line)[[3, 4, 5]], [1 / 3] * 3)
    c = ms.compare(line, real, excerpt.prompt, 4.0, 4.0)
    assert c.melody == 1.0  # steps of 5 against steps of 0
    assert c.harmony == pytest.approx(2 / 3)  # a third of the triad's intervals are thirds
    # A held note sounds with the notes struck under it; an octave is class 0, a step of
    # 13 semitones is counted as an octave or more.
    held = Notes([0.0, 0.5, 1.0], [2.0, 1.0, 1.5], [48, 60, 73], [80] * 3, [0] * 3)
    assert np.allclose(ms.vertical_intervals(held)[[0, 1]], [0.5, 0.5])  # 48-60, 48-73
    assert np.allclose(ms.top_line_steps(held)[[12]], [1.0])  # 48 -> 60 -> 73: 12, 13


def test_judge_an_octave_up(excerpt) -> None:
    real = excerpt.real
    up = Notes(real.start, real.end, real.pitch + 12, real.velocity, real.channel)
    result = judge(excerpt, up, OPTIONS)
    m = result.model
    assert (m.density, m.polyphony, m.register, m.key, m.rhythm) == (0.0, 0.0, 12.0, 0.0, 0.0)
    assert (m.melody, m.harmony) == (0.0, 0.0)  # the same steps and intervals, an octave up
    assert result.notes_per_second == {"model": 2.0, "loop": 2.0, "real": 2.0}
    empty = judge(excerpt, Notes.empty(), OPTIONS).model
    assert empty.density == math.log2(1 / 8) and empty.key == 1.0 and empty.rhythm == 1.0
    assert math.isnan(empty.novelty) and math.isnan(empty.register)


def test_answer_policy_and_note_budget(tmp_path) -> None:
    assert answer_seconds(0.2, 4.0) == 0.5 and answer_seconds(9.0, 4.0) == 4.0
    assert answer_notes(4) == 4 and answer_notes(0) == 1
    loaded = load_model_for(tiny_preset(tmp_path).with_suffix(""), device="cpu")
    decoder = StreamingDecoder(loaded.model)
    phrase = [60, 300, 188, 64, 300, 192]  # two notes
    params = SamplingParams(temperature=1.5, top_p=1.0)
    for seed in range(4):
        answer = answer_tokens(
            decoder, phrase, params, gap_steps=60, length_steps=300, max_notes=2, seed=seed
        )
        ons = [t for t in answer.tokens if t < 128]
        assert 1 <= len(ons) <= 2  # opens with a note; never more than the budget
        assert answer.start_step == 90 + 60 and answer.end_step <= answer.start_step + 300


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("midi")
    rng = np.random.default_rng(0)
    for n in range(3):
        onsets = np.sort(rng.uniform(0, 8, 40))
        notes = [(t, t + 0.3, int(p)) for t, p in zip(onsets, rng.integers(48, 84, 40))]
        write_file(folder / f"piece{n}.mid", [(0, notes)])
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00")
    return folder


def test_command_on_a_tiny_model(midi_dir, tmp_path, capsys) -> None:
    preset = str(tiny_preset(tmp_path))
    args = ["eval-continuations", str(midi_dir), "--preset", preset, "--no-progress"]
    timing = ["--prompt-seconds", "3", "--seconds", "3"]
    assert main([*args, *timing]) == 0
    text = capsys.readouterr().out
    assert "3 files" in text and "loop" in text and "skipped" in text and "broken.mid" in text
    assert main([*args, *timing, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["files"] == 3 and len(data["per_file"]) == 3
    assert data["loop"]["score"] == pytest.approx(
        np.mean([data["loop"][k] for k in ("density", "polyphony", "key", "rhythm")])
    )
    assert 0 <= data["model"]["novelty"] <= 1 and data["real"]["novelty"] > 0
    assert data["capped"] == 0 and data["follow"]["rhythm"] == 0
    follow = ["--follow-rhythm", "2", "--follow-key-bias", "1", "--json"]
    assert main([*args, *timing, *follow]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["follow"]["rhythm"] == 2 and data["follow"]["key_bias"] == 1.0
    assert main([*args, *timing, "--follow-rhythm", "9"]) == 2  # 0..4 parts
    assert "--follow-rhythm" in capsys.readouterr().err
    assert main([*args, *timing, "--follow-key-bias", "-1"]) == 2
    assert "--follow-key-bias: must be a finite number in 0.0..10.0" in capsys.readouterr().err
    # Every follow number is held to the preset's own bounds (models/preset.py FOLLOW_BOUNDS).
    for option, value in [("--follow-rhythm-variation", "1.5"), ("--follow-density", "nan")]:
        assert main([*args, *timing, option, value]) == 2
        assert f"{option}: must be a finite number" in capsys.readouterr().err
    assert main([*args, "--call", "--phrases", "2", "--json"]) == 0
    calls = json.loads(capsys.readouterr().out)
    assert calls["phrases"] == 6
    assert all(p["answer_notes"] <= p["phrase_notes"] for p in calls["per_phrase"])


def test_command_errors_are_one_line(midi_dir, tmp_path, capsys) -> None:
    assert main(["eval-continuations", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    # The sampling overrides are held to the bounds `continue` holds them to, when parsed.
    for option, value in [("--temperature", "0"), ("--top-p", "1.5"), ("--top-k", "-1")]:
        assert main(["eval-continuations", str(midi_dir), option, value]) == 2
        assert f"argument {option}: must be" in capsys.readouterr().err


def test_phrases_come_from_one_part(tmp_path) -> None:
    from livegen.training.answers import CallOptions, cut_phrases, judge_answer

    notes = merged_notes(hand_file(tmp_path / "hand.mid"))  # melody (0-4 s), chords (4-8 s)
    rng = np.random.default_rng(1)
    phrases = cut_phrases(notes, CallOptions(phrases_per_file=20), rng)
    assert len(phrases) == 20
    for phrase in phrases:
        assert len(set(phrase.channel)) == 1 and len(phrase) >= 2 and phrase.start[0] == 0.0
    melody = next(p for p in phrases if set(p.pitch) == {60})
    answer = Notes(melody.start, melody.end, melody.pitch + 7, melody.velocity, melody.channel)
    result = judge_answer("x", melody, answer)
    assert result.ratio == 1.0 and result.register == 7.0 and result.key == 1.0
    assert result.density == 0.0


def test_default_files_are_the_held_out_split(tmp_path, capsys) -> None:
    from livegen.training.continuation_cli import held_out_files
    from livegen.training.data import DataOptions, build_data
    from tests.training_fixtures import midi_folder

    folder = midi_folder(tmp_path, pieces=8, bad=False)
    index = build_data([folder], tmp_path / "data", DataOptions(progress=False))
    wanted = sorted(p.name.split("/")[-1] for p in index.pieces if p.split == "test")
    found = held_out_files(tmp_path / "data", "test")
    assert wanted and sorted(p.name for p in found) == wanted
    preset = str(tiny_preset(tmp_path))
    args = ["eval-continuations", "--data", str(tmp_path / "data"), "--preset", preset]
    assert main([*args, "--prompt-seconds", "3", "--seconds", "3", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == len(wanted)


def test_every_follow_setting_has_an_option_that_sets_it() -> None:
    """Each FollowSettings field a preset sets (all but the windows) can be overridden from
    the command line, and its option sets that field, not another."""
    import argparse
    import dataclasses

    from livegen.models.follow import FollowSettings
    from livegen.training import continuation_cli as cli

    fields = {f.name for f in dataclasses.fields(FollowSettings)} - {
        "window_seconds",
        "long_window_seconds",
    }
    assert {field for field, _, _ in cli.FOLLOW_OPTIONS.values()} == fields
    parser = argparse.ArgumentParser()
    cli.add_continuation_arguments(parser)
    base = FollowSettings()
    for flag, (field, metavar, _) in cli.FOLLOW_OPTIONS.items():
        if metavar is None:  # a switch: the other way from its default
            value = "0" if getattr(base, field) else "1"
        else:  # a number inside its bounds, not the default
            value = "0.5" if field == "rhythm_variation" else "3"
        args = parser.parse_args(["--no-follow", flag, value])
        changed = {
            name
            for name in fields
            if getattr(cli.follow_settings(args, None), name) != getattr(base, name)
        }
        assert changed == {field}, flag


def test_medians_leave_out_what_is_undefined() -> None:
    """A monophonic file has no harmony (NaN): the set's median is of the files that have."""
    assert ms.finite_median([0.1, math.nan, 0.3]) == pytest.approx(0.2)
    assert math.isnan(ms.finite_median([math.nan, math.nan]))


def test_a_played_copy_moves_each_onset_with_its_chord_and_keeps_lengths() -> None:
    """benchmarks/played_copies.py: notes that start together still do, each note keeps its
    length, and the onsets move by the spread asked for (2,000 onsets: within 5%)."""
    from benchmarks.played_copies import played

    steps = np.repeat(np.arange(2000) * 0.25, 2)  # two-note chords, a quarter apart
    notes = Notes(steps, steps + 0.2, np.tile([60, 64], 2000), np.full(4000, 80), np.zeros(4000))
    copy = played(notes, 0.015, np.random.default_rng(1))
    assert np.array_equal(copy.start[0::2], copy.start[1::2])  # a chord moves as one
    assert np.allclose(copy.end - copy.start, 0.2)
    moved = copy.start[2::2] - steps[2::2]
    assert np.std(moved) == pytest.approx(0.015, rel=0.05) and abs(np.mean(moved)) < 0.002
    assert copy.start.min() >= 0.0
