"""`livegen tokenize` and `livegen detokenize`, through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from livegen.cli import main
from livegen.kernels.tokenizer import Notes, encode_file, write_midi
from livegen.kernels.vocab import token_name


@pytest.fixture
def phrase(tmp_path) -> Path:
    notes = Notes(
        [0.0, 0.0, 0.5, 1.0], [0.5, 1.0, 0.75, 2.5], [60, 64, 67, 72], [80, 80, 90, 40], [0] * 4
    )
    path = tmp_path / "phrase.mid"
    write_midi(path, [("piano", notes)])
    return path


def test_tokenize_prints_names_on_one_line(phrase, capsys) -> None:
    assert main(["tokenize", str(phrase)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.split() == [token_name(int(t)) for t in encode_file(phrase)]
    assert out.startswith("VELOCITY_20 NOTE_ON_60 NOTE_ON_64 TIME_SHIFT_50 NOTE_OFF_60")


def test_tokenize_json_prints_ids(phrase, capsys) -> None:
    assert main(["tokenize", "--json", str(phrase)]) == 0
    assert json.loads(capsys.readouterr().out) == encode_file(phrase).tolist()


def test_detokenize_reads_ids_names_and_tokenize_text(phrase, tmp_path, capsys) -> None:
    ids_file = tmp_path / "ids.json"
    assert main(["tokenize", str(phrase), "-o", str(ids_file)]) == 0
    names_text = capsys.readouterr().out
    ids = json.loads(ids_file.read_text())
    names_file = tmp_path / "names.json"
    names_file.write_text(json.dumps(names_text.split()))
    text_file = tmp_path / "names.txt"
    text_file.write_text(names_text)
    for source in (ids_file, names_file, text_file):
        out = tmp_path / f"{source.stem}-{source.suffix[1:]}.mid"
        assert main(["detokenize", str(source), "-o", str(out)]) == 0
        assert encode_file(out).tolist() == ids


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty file"),
        (b"hello, not a midi file", "not a MIDI file"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x01\x00\x00\x90", "truncated"),
    ],
)
def test_tokenize_bad_files_exit_2_naming_the_file(tmp_path, capsys, content, message) -> None:
    path = tmp_path / "bad.mid"
    if content is not None:
        path.write_bytes(content)
    assert main(["tokenize", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and message in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2", "not valid JSON"),
        ('{"a": 1}', "expected a list"),
        ("[0, 999]", "outside 0..390"),
        ('["NOTE_ON_60", "NOTE_ON_200"]', "item 1"),
        ("NOTE_ON_60 BANANA", "not a token name"),
        ("[0, 1.5]", "not a token id"),
    ],
)
def test_detokenize_bad_token_files_exit_2(tmp_path, capsys, content, message) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["detokenize", str(path), "-o", str(tmp_path / "out.mid")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and message in err
    assert not (tmp_path / "out.mid").exists()


def test_installed_entry_point_runs_tokenize(phrase) -> None:
    livegen = Path(sys.executable).parent / "livegen"
    result = subprocess.run(
        [str(livegen), "tokenize", "--json", str(phrase)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == encode_file(phrase).tolist()
    missing = subprocess.run(
        [str(livegen), "tokenize", str(phrase.with_name("gone.mid"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "gone.mid" in missing.stderr
