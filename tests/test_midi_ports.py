"""MIDI ports by name through a real JACK graph: listing, exact or unique-substring names, and
errors that list what exists; `livegen ports`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from livegen.engine import JamEngine
from livegen.midi_ports import (
    PortError,
    forget_midi_clients,
    list_midi_inputs,
    list_midi_outputs,
    resolve_port,
)
from tests.jack import JackServer
from tests.jam_peers import Keyboard, engine_preset, jack_settings


def test_resolve_exact_substring_ambiguous_missing() -> None:
    ports = ["USB Keys:MIDI 1", "USB Keys:MIDI 2", "Digital Piano:out"]
    assert resolve_port("USB Keys:MIDI 2", ports, "MIDI input") == "USB Keys:MIDI 2"
    assert resolve_port("piano", ports, "MIDI input") == "Digital Piano:out"
    with pytest.raises(PortError, match="ambiguous.*USB Keys:MIDI 1, USB Keys:MIDI 2"):
        resolve_port("usb", ports, "MIDI input")
    with pytest.raises(PortError, match="(?s)no MIDI input matches .organ.*Digital Piano:out"):
        resolve_port("organ", ports, "MIDI input")


def test_ports_by_name_through_jack(jack: JackServer, tmp_path: Path) -> None:
    keyboard = Keyboard(jack, name="stage-piano")
    try:
        inputs = list_midi_inputs("jack")
        assert "stage-piano:out" in inputs
        assert "system:playback_1" not in list_midi_outputs("jack")  # audio ports are not MIDI
        settings = jack_settings(tmp_path, input="organ")
        with pytest.raises(PortError, match="no MIDI input matches 'organ'") as error:
            JamEngine(settings).start()
        assert "stage-piano:out" in str(error.value)  # it says what exists
        listed = subprocess.run(
            [sys.executable, "-m", "livegen", "ports", "--api", "jack", "--json"],
            env=jack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        ports = json.loads(listed.stdout.splitlines()[-1])
        assert "stage-piano:out" in ports["midi"]["jack"]["inputs"]
        assert any("JACK" in device for device in ports["audio"]), ports
        wrong = subprocess.run(
            [sys.executable, "-m", "livegen", "jam", "--headless", "--api", "jack"]
            + ["--in", "organ", "--preset", str(engine_preset(tmp_path))],
            env=jack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert wrong.returncode == 2
        assert "livegen jam: error: no MIDI input matches 'organ'" in wrong.stderr
        assert "stage-piano:out" in wrong.stderr
    finally:
        keyboard.close()
        forget_midi_clients()
