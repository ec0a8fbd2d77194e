"""The JACK fixture gives a real MIDI graph: a note sent through python-rtmidi's JACK API
arrives at jack_midi_dump, a real peer in another process."""

from __future__ import annotations

import ctypes
import subprocess
import threading
import time

import mido
import pytest

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
            jack.connect(ours, dump_port)  # jack_midi_dump may not be active yet: retried
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


def test_connect_waits_for_a_client_that_is_not_active_yet(jack: JackServer) -> None:
    """A JACK client (libjack through ctypes, as jack_midi_dump does it in C) registers its
    port, and only 0.3 s later activates: jack_lsp lists the port at once, and JACK refuses
    to connect it until then (a CI run failed so with jack_midi_dump). JackServer.connect
    waits for the activation; a port that does not exist fails at once."""
    lib = ctypes.CDLL("libjack.so.0")
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_port_register.restype = ctypes.c_void_p
    lib.jack_port_register.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.jack_port_register.argtypes += [ctypes.c_ulong, ctypes.c_ulong]
    lib.jack_activate.argtypes = lib.jack_client_close.argtypes = [ctypes.c_void_p]
    midi, is_input = b"8 bit raw midi", 1
    status = ctypes.c_int()
    client = lib.jack_client_open(b"late-starter", 0, ctypes.byref(status))
    assert client, status.value
    try:
        assert lib.jack_port_register(client, b"input", midi, is_input, 0)
        port = jack.wait_for_port("late-starter:input")
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
        with backend.open_output("livegen-test-src", virtual=True):
            source = jack.wait_for_port("livegen-test-src")
            early = jack.run_tool("jack_connect", source, port)
            assert early.returncode != 0  # not active: JACK refuses, as it did in CI
            activate = threading.Timer(0.3, lib.jack_activate, (client,))
            activate.start()
            t0 = time.monotonic()
            jack.connect(source, port)
            assert time.monotonic() - t0 >= 0.25  # it waited for the activation
            assert port in jack.run_tool("jack_lsp", "-c", source).stdout
            activate.join()
            with pytest.raises(AssertionError, match="no-such-client"):
                jack.connect(source, "no-such-client:input")
    finally:
        lib.jack_client_close(client)
