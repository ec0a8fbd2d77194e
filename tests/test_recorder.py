"""The session recorder: a standard MIDI file that is complete on disk at every instant."""

from __future__ import annotations

import time
from pathlib import Path

import mido

from livegen.recorder import MODEL_TRACK, PLAYER_TRACK, Recorder
from tests.jam_peers import wait_until


def _notes(path: Path) -> list[list[tuple[float, str, int]]]:
    midi = mido.MidiFile(path)
    tracks = []
    for track in midi.tracks:
        ticks, out = 0, []
        for message in track:
            ticks += message.time
            if message.type in ("note_on", "note_off"):
                on = message.type == "note_on" and message.velocity > 0
                seconds = mido.tick2second(ticks, midi.ticks_per_beat, 500000)
                out.append((round(seconds, 4), "on" if on else "off", message.note))
        tracks.append(out)
    return tracks


def _count(path: Path, track: int) -> int:
    """Note events in a track of the file on disk now (-1: no file yet)."""
    try:
        return len(_notes(path)[track])
    except (OSError, EOFError, IndexError):
        return -1


def test_two_tracks_exact_times_and_open_notes_closed(tmp_path: Path) -> None:
    path = tmp_path / "take.mid"
    recorder = Recorder(path, tempo_bpm=120.0, interval=10.0)
    recorder.start()
    recorder.add(PLAYER_TRACK, 0.5, [0x90, 60, 100])
    recorder.add(PLAYER_TRACK, 0.75, [0x80, 60, 0])
    recorder.add(MODEL_TRACK, 1.0, [0x91, 67, 80])
    recorder.add(PLAYER_TRACK, 1.25, [0xF0, 1, 2, 0xF7])  # not a channel message: skipped
    recorder.mark(2.0)
    recorder.flush()
    player, model = _notes(path)
    assert player == [(0.5, "on", 60), (0.75, "off", 60)]
    # The model's note still sounds: the file on disk ends it where the session is.
    assert model == [(1.0, "on", 67), (2.0, "off", 67)]
    recorder.add(MODEL_TRACK, 2.5, [0x81, 67, 0])
    recorder.close()
    assert _notes(path)[1] == [(1.0, "on", 67), (2.5, "off", 67)]


def test_the_file_is_rewritten_while_recording_and_never_torn(tmp_path: Path) -> None:
    path = tmp_path / "take.mid"
    recorder = Recorder(path, interval=0.05)
    recorder.start()
    try:
        for k in range(40):
            recorder.add(PLAYER_TRACK, k * 0.01, [0x90, 60 + k % 12, 90])
            recorder.add(PLAYER_TRACK, k * 0.01 + 0.005, [0x80, 60 + k % 12, 0])
            time.sleep(0.005)
            mido.MidiFile(path)  # any instant: a complete file (tmp + rename)
        # Written without close(): at most `interval` old.
        assert wait_until(lambda: _count(path, 0) == 80)
        assert recorder.writes >= 3
    finally:
        recorder.close()
    assert not list(tmp_path.glob("*.tmp"))


def test_the_clock_alone_rewrites_the_file_only_while_a_note_sounds(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "take.mid", interval=0.02)
    recorder.start()
    try:
        recorder.add(PLAYER_TRACK, 0.1, [0x90, 60, 100])
        recorder.add(PLAYER_TRACK, 0.2, [0x80, 60, 0])
        assert wait_until(lambda: _count(recorder.path, 0) == 2)
        before = recorder.writes
        for k in range(10):  # silence: the clock moves on, nothing sounds
            recorder.mark(0.3 + k * 0.1)
            time.sleep(0.03)
        assert recorder.writes == before
        recorder.add(MODEL_TRACK, 1.5, [0x91, 67, 80])  # a held note: its length grows
        assert wait_until(lambda: _count(recorder.path, 1) == 2)
        held = recorder.writes
        for k in range(10):
            recorder.mark(1.6 + k * 0.1)
            time.sleep(0.03)
        assert recorder.writes >= held + 5
        assert _notes(recorder.path)[1][-1][0] >= 2.2  # ends where the clock was, about
    finally:
        recorder.close()
