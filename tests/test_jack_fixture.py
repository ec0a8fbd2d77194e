"""The JACK fixture gives a real MIDI graph: a note sent through python-rtmidi's JACK API
arrives at jack_midi_dump, a real peer in another process."""

from __future__ import annotations

import subprocess
import time

import mido

from tests.jack import JackServer


def test_note_through_jack_reaches_jack_midi_dump(jack: JackServer) -> None:
    dump = subprocess.Popen(
        ["jack_midi_dump", "-a"],
        env=jack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        dump_port = jack.wait_for_port("midi-monitor:input")
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
        with backend.open_output("livegen-test-out", virtual=True) as out:
            ours = jack.wait_for_port("livegen-test-out")
            connected = jack.run_tool("jack_connect", ours, dump_port)
            assert connected.returncode == 0, connected.stderr
            time.sleep(0.2)
            out.send(mido.Message("note_on", note=60, velocity=100))
            out.send(mido.Message("note_off", note=60, velocity=0))
            time.sleep(0.5)
    finally:
        dump.terminate()
        output, _ = dump.communicate(timeout=5)
    # jack_midi_dump prints the raw bytes in hex: 90 3c 64 then 80 3c 00.
    assert "90 3c 64" in output.lower(), output
    assert "80 3c 00" in output.lower(), output
