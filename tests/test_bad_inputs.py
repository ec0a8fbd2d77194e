"""The bad-input suite, livegen's side: every command of `livegen`, run the way a user runs
it (main() in-process; real files, a real tiny preset, a real full disk or read-only folder
from tests/faults.py). Each case must end in a one-line error naming the problem and a
non-zero exit, or in a report and a skip; never a traceback; and nothing the user had may
change (tests/bad_input_world.py judges every case the same way). The training commands'
cases are in tests/test_bad_training_inputs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from livegen.kernels.tokenizer import write_midi
from tests.bad_input_world import Case, World, cont, phrase, run_case, unclosed_midi
from tests.presets import tiny_preset


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> Path:
    return tiny_preset(tmp_path_factory.mktemp("preset"))


@pytest.fixture
def world(preset: Path, tmp_path: Path) -> World:
    write_midi(tmp_path / "prompt.mid", [("prompt", phrase())])
    return World(tmp_path, preset)


CASES = [
    Case(
        "continue --temperature inf",
        lambda w: cont(w, "--temperature", "inf"),
        "argument --temperature: must be a finite number",
    ),
    Case(
        "continue --seconds nan",
        lambda w: [*cont(w)[:-1], "nan"],
        "argument --seconds: must be a finite number",
    ),
    Case(
        "continue --seconds inf",
        lambda w: [*cont(w)[:-1], "inf"],
        "argument --seconds: must be a finite number",
    ),
    Case(
        "continue --seed too large",
        lambda w: cont(w, "--seed", str(2**64)),
        "argument --seed: must be an integer in 0..4294967295",
    ),
    Case("continue --top-p 0", lambda w: cont(w, "--top-p", "0"), "argument --top-p"),
    Case(
        "bench --threads 0", lambda w: ["livegen", "bench", "--threads", "0"], "argument --threads"
    ),
    Case("bench --seed -1", lambda w: ["livegen", "bench", "--seed", "-1"], "argument --seed"),
    Case(
        "jam --program 500",
        lambda w: ["livegen", "jam", "--headless", "--program", "500"],
        "argument --program: must be an integer in 0..127, got '500'",
    ),
    Case(
        "jam --temperature nan",
        lambda w: ["livegen", "jam", "--headless", "--temperature", "nan"],
        "argument --temperature",
    ),
    Case(
        "jam --tempo 1e9",
        lambda w: ["livegen", "jam", "--headless", "--tempo", "1e9"],
        "argument --tempo: must be a finite number in 20.0..400.0",
    ),
    Case(
        "jam --duration inf",
        lambda w: ["livegen", "jam", "--headless", "--duration", "inf"],
        "argument --duration",
    ),
    Case(
        "continue X.mid -o X.mid",
        lambda w: [*cont(w)[:3], "-o", str(w.prompt), *cont(w)[5:]],
        "is the input; livegen never overwrites its input",
    ),
    Case(
        "continue onto an existing file",
        lambda w: (write_midi(w.root / "out.mid", [("mine", phrase(3))]), cont(w))[1],
        "out.mid: already exists (--force replaces it)",
    ),
    Case(
        "tokenize X.mid -o X.mid",
        lambda w: ["livegen", "tokenize", str(w.prompt), "-o", str(w.prompt)],
        "never overwrites its input",
    ),
    Case(
        "jam --record names a file",
        lambda w: (
            (w.root / "take.mid").write_bytes(b"mine"),
            ["livegen", "jam", "--headless", "--record", str(w.root / "take.mid")],
        )[1],
        "the recording folder is a file, not a folder",
    ),
    Case(
        "tokenize a file with an unclosed note",
        lambda w: ["livegen", "tokenize", str(unclosed_midi(w.root / "u.mid"))],
        "u.mid: 1 note with no note-off left out",
        code=0,
    ),
    Case(
        "continue a prompt with an unclosed note",
        lambda w: [
            "livegen",
            "continue",
            str(unclosed_midi(w.root / "u.mid")),
            "-o",
            str(w.root / "o.mid"),
            "--preset",
            str(w.preset),
            "--seconds",
            "0.5",
        ],
        "1 note with no note-off left out",
        code=0,
    ),
    Case(
        "tokenize -o on a full disk",
        lambda w: ["livegen", "tokenize", str(w.prompt), "-o", str(w.root / "t.json")],
        "t.json: cannot write",
        fault="full",
    ),
    Case(
        "detokenize -o on a full disk",
        lambda w: (
            (w.root / "t.json").write_text("[60, 256, 188]"),
            ["livegen", "detokenize", str(w.root / "t.json"), "-o", str(w.root / "o.mid")],
        )[1],
        "o.mid: cannot write",
        fault="full",
    ),
    Case("continue on a full disk", lambda w: cont(w), "out.mid: cannot write", fault="full"),
    Case(
        "jam --record on a full disk",
        lambda w: ["livegen", "jam", "--headless", "--record", str(w.root / "takes")],
        "cannot write in the recording folder",
        fault="full",
    ),
    Case(
        "tokenize -o in a read-only folder",
        lambda w: ["livegen", "tokenize", str(w.prompt), "-o", str(w.root / "ro" / "t.json")],
        "t.json: cannot write",
        fault="read-only",
    ),
    Case(
        "jam --record in a read-only folder",
        lambda w: ["livegen", "jam", "--headless", "--record", str(w.root / "ro")],
        "cannot write in the recording folder",
        fault="read-only",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, world: World, capsys) -> None:
    run_case(case, world, capsys)


def test_the_ui_says_last_that_its_take_failed(capsys) -> None:
    """The jam UI: a recording problem still standing when the musician quits is the last
    line on the terminal and exit 1; without one, the UI's own exit status stands."""
    from livegen.tui.launch import final_word

    failed = "recording failed: /music/take.mid: cannot write (the disk is full)"
    assert final_word(["no MIDI: no ports", failed], 0) == 1
    assert capsys.readouterr().err == f"livegen: error: {failed}\n"
    assert final_word(["no MIDI: no ports"], 0) == 0
    assert capsys.readouterr().err == ""


def test_an_unreadable_settings_file_is_kept_before_a_rewrite(tmp_path: Path) -> None:
    """The jam UI copies a settings file it could not read whole aside before saving over it
    (the tmux test shows it end to end); a second copy is not made of the same text."""
    from livegen.settings_file import SavedSettings, back_up_settings, load_settings, save_settings

    path = tmp_path / "settings.toml"
    mine = "[jam\npreset = 'my piano'\n"  # not TOML: the user's text all the same
    path.write_text(mine)
    _, problems = load_settings(path)
    assert problems and "not valid TOML" in problems[0]
    kept = back_up_settings(path)
    save_settings(SavedSettings(), path)
    assert kept == tmp_path / "settings.toml.bak" and kept.read_text() == mine
    assert back_up_settings(path) == tmp_path / "settings.toml.bak.1"  # a different text
    path.write_text(mine)
    assert back_up_settings(path) == kept  # the same text is kept once
