"""livegen-train data: real MIDI folders -> shards, cache, skipped files, split, music21."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from livegen.kernels.errors import LivegenError
from livegen.kernels.tokenizer import encode_file
from livegen.kernels.vocab import BEGIN, END
from livegen.training.cli import main
from livegen.training.data import CACHE_DIR, DataOptions, build_data
from livegen.training.shards import TokenShards, assign_splits, read_index, split_of
from tests.training_fixtures import midi_folder


def build(tmp_path, **options):
    folder = midi_folder(tmp_path)
    out = tmp_path / "data"
    return folder, out, build_data([folder], out, DataOptions(progress=False, **options))


def test_shards_hold_every_good_piece_framed_and_the_bad_files_are_reported(tmp_path):
    folder, out, index = build(tmp_path)
    assert index.summary["files"] == 8
    assert index.summary["skipped"] == 2
    reasons = {item["file"]: item["reason"] for item in index.skipped}
    assert set(reasons) == {"midi/corrupt.mid", "midi/empty.mid"}
    assert "empty" in reasons["midi/empty.mid"]
    skipped_txt = (out / "skipped.txt").read_text()
    assert "midi/corrupt.mid" in skipped_txt and "midi/empty.mid" in skipped_txt
    # Each piece sits in its shard as BEGIN + exactly the tokenizer's ids + END.
    for piece in index.pieces:
        shard = np.fromfile(out / piece.shard, dtype="<i2")
        framed = shard[piece.offset : piece.offset + piece.tokens + 2]
        expected = encode_file(folder / piece.name.split("/", 1)[1])
        assert framed[0] == BEGIN and framed[-1] == END
        np.testing.assert_array_equal(framed[1:-1], expected)
    assert index.summary["notes"] == sum(p.notes for p in index.pieces) > 0
    assert index.summary["hours"] > 0


def test_split_is_by_piece_deterministic_and_every_split_is_used(tmp_path):
    _, out, index = build(tmp_path, val_fraction=0.1, test_fraction=0.1)
    splits = {p.name: p.split for p in index.pieces}
    assert set(splits.values()) == {"train", "val", "test"}
    options = DataOptions(val_fraction=0.1, test_fraction=0.1, progress=False)
    again = build_data([tmp_path / "midi"], tmp_path / "again", options)
    assert {p.name: p.split for p in again.pieces} == splits
    for split in ("train", "val", "test"):
        shards = TokenShards(out, split)
        expected = sum(p.tokens + 2 for p in index.pieces if p.split == split)
        assert shards.total_tokens == expected


def test_split_of_is_a_stable_uniform_draw_per_hash():
    digests = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(2000)]
    splits = [split_of(d, 0.2, 0.1) for d in digests]
    assert splits == [split_of(d, 0.2, 0.1) for d in digests]
    assert 0.15 < splits.count("val") / len(splits) < 0.25
    assert 0.05 < splits.count("test") / len(splits) < 0.15


def test_rerun_encodes_only_new_files(tmp_path):
    folder, out, first = build(tmp_path)
    cache_files = sorted((out / CACHE_DIR).rglob("*.*"))
    stamps = {p: p.stat().st_mtime_ns for p in cache_files}
    (folder / "piece1.mid").rename(folder / "renamed.mid")  # same bytes: still cached
    from livegen.kernels.tokenizer import write_midi
    from tests.training_fixtures import melody

    write_midi(folder / "new.mid", [("piano", melody(99))])
    second = build_data([folder], out, DataOptions(progress=False))
    now = sorted((out / CACHE_DIR).rglob("*.*"))
    assert len(now) == len(cache_files) + 1
    assert all(p.stat().st_mtime_ns == stamps[p] for p in cache_files)
    assert second.summary["files"] == first.summary["files"] + 1


def test_duplicate_files_count_once(tmp_path):
    folder = midi_folder(tmp_path, pieces=3, bad=False)
    (folder / "copy.mid").write_bytes((folder / "piece1.mid").read_bytes())
    index = build_data([folder], tmp_path / "data", DataOptions(progress=False))
    assert index.summary["files"] == 3 and index.summary["duplicates"] == 1


def test_folder_without_midi_is_an_error(tmp_path):
    with pytest.raises(LivegenError, match="no MIDI files"):
        build_data([tmp_path], tmp_path / "out", DataOptions(progress=False))


def test_tiny_corpus_still_gets_validation_and_test_pieces(tmp_path):
    from livegen.training.shards import Piece

    pieces = [Piece(f"p{i}", f"{i:02x}" * 20, "train", 10, 1, 1.0) for i in range(3)]
    assign_splits(pieces, 0.05, 0.05)
    assert sorted(p.split for p in pieces) == ["test", "train", "val"]


def test_cli_data_prints_a_json_summary(tmp_path, capsys):
    folder = midi_folder(tmp_path)
    code = main(["data", "--midi", str(folder), "--out", str(tmp_path / "d"), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["files"] == 8 and summary["skipped"] == 2
    assert read_index(tmp_path / "d").summary["tokens"] == summary["tokens"]


def test_cli_data_error_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["data", "--midi", str(tmp_path / "nope"), "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "not a folder" in err


@pytest.mark.slow
def test_music21_collection_to_shards_cached(tmp_path, capsys):
    from livegen.training.music21_source import ESSEN, list_sources

    assert not any(s.startswith(ESSEN) for s in list_sources())
    assert any(s.startswith(ESSEN) for s in list_sources(include_essen=True))
    with pytest.raises(LivegenError, match="unknown music21 collection"):
        list_sources(["no-such-collection"])
    out = tmp_path / "m21"
    args = ["data", "--music21", "bach", "--limit", "4", "--out", str(out), "--json"]
    assert main(args) == 0
    midi = sorted((out / "music21-midi" / "bach").glob("*.mid"))
    assert len(midi) == 4
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["files"] == 4 and summary["notes"] > 100
    stamps = [p.stat().st_mtime_ns for p in midi]
    assert main(args) == 0  # cached: nothing converted again
    assert [p.stat().st_mtime_ns for p in midi] == stamps
