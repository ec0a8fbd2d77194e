"""The MIDI ports and audio devices the set-up screen offers, listed off the UI thread.

The listing itself belongs to the engine (it opens the ports the same way); this module only
gathers its three lists into one snapshot and turns a missing MIDI or audio system into a
sentence instead of an exception.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceLists:
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    audio: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


Lister = Callable[[str | None], DeviceLists]


def audio_device_name(listed: str) -> str:
    """The device name the engine opens, from a listed "name (host API)": the host API in
    the listing tells devices apart for the eye, the engine matches names."""
    name, sep, rest = listed.rpartition(" (")
    return name if sep and rest.endswith(")") and name else listed


def list_devices(api: str | None = None) -> DeviceLists:
    """Every MIDI input, MIDI output and audio output device present now."""
    from livegen.audio_devices import audio_probe_error, list_audio_devices
    from livegen.midi_ports import list_midi_inputs, list_midi_outputs

    problems: list[str] = []

    def attempt(what: str, lister: Callable[[], list[str]]) -> tuple[str, ...]:
        try:
            return tuple(lister())
        except Exception as error:  # a missing MIDI/audio system must not take the UI down
            problems.append(f"cannot list {what}: {error}")
            return ()

    lists = DeviceLists(
        inputs=attempt("MIDI inputs", lambda: list_midi_inputs(api)),
        outputs=attempt("MIDI outputs", lambda: list_midi_outputs(api)),
        audio=attempt("audio devices", list_audio_devices),
    )
    audio_error = audio_probe_error()
    if audio_error:
        problems.append(f"no audio devices: {audio_error}")
    return dataclasses.replace(lists, problems=tuple(problems))
