"""`livegen ports`: the MIDI ports and audio devices livegen can use, by the names it accepts."""

from __future__ import annotations

import argparse
import json

from livegen.midi_ports import APIS

HELP = "list MIDI ports (per MIDI API) and audio output devices"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        choices=tuple(APIS),
        help="only this MIDI API (default: every one this machine has)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from livegen.audio_devices import audio_probe_error, list_audio_devices
    from livegen.midi_ports import MidiUnavailable, PortError, api_names, list_ports

    apis = [args.api] if args.api else api_names()
    midi: dict[str, dict[str, list[str]]] = {}
    problems: list[str] = []
    for api in apis:
        try:
            midi[api] = {"inputs": list_ports(api, "in"), "outputs": list_ports(api, "out")}
        except (MidiUnavailable, PortError) as error:
            problems.append(f"MIDI API {api}: not available ({error})")
    audio = list_audio_devices()
    if audio_probe_error():
        problems.append(f"audio: {audio_probe_error()}")
    if args.json:
        print(json.dumps({"midi": midi, "audio": audio, "problems": problems}))
        return 0
    for api, lists in midi.items():
        for kind in ("inputs", "outputs"):
            print(f"MIDI {kind} ({api}):")
            for name in lists[kind] or ["(none)"]:
                print(f"  {name}")
    print("Audio outputs:")
    for name in audio or ["(none)"]:
        print(f"  {name}")
    for line in problems:
        print(line)
    print('Name a port exactly or by a unique part of its name; "virtual" opens livegen\'s own.')
    return 0
