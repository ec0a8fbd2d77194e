"""A fast pass over a standard MIDI file's bytes for what the parser does not say.

symusic pairs note-ons with note-offs and silently drops a note-on that never gets its
note-off (a truncated recording, a broken export). livegen keeps that rule (a note with no
end has no length to encode) but reports it: `unclosed_notes` counts, per file, the note-ons
still open at the end of their track. It walks the track chunks once in a numba loop (delta
times, running status, meta and sysex events skipped), so it costs a fraction of the parse.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from livegen.kernels.midi_codes import (
    CHANNEL_PRESSURE_STATUS,
    CHANNELS,
    DRUM_CHANNEL,
    NOTE_OFF_STATUS,
    NOTE_ON_STATUS,
    PROGRAM_CHANGE_STATUS,
)

# The MIDI numbers are module globals numba freezes into the compiled loop.


@njit(cache=True)
def _varlen(data, i, end):
    """(value, next index) of a variable-length quantity; index -1 when it runs off the end."""
    value = 0
    for _ in range(4):
        if i >= end:
            return 0, -1
        b = data[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, i
    return value, i


@njit(cache=True)
def _track_unclosed(data, i, end, include_drums):
    open_notes = np.zeros(CHANNELS * 128, dtype=np.int64)
    running = 0
    while i < end:
        _, i = _varlen(data, i, end)  # delta time
        if i < 0 or i >= end:
            break
        b = data[i]
        if b == 0xFF or b == 0xF0 or b == 0xF7:  # meta (type byte first) or sysex
            i += 2 if b == 0xFF else 1
            length, i = _varlen(data, i, end)
            if i < 0:
                break
            i += length
            continue
        if b >= 0xF0:
            break  # not allowed in a file: the rest of the track is garbage
        if b & 0x80:
            running = b
            i += 1
        elif running == 0:
            break
        kind = running & 0xF0
        size = 1 if kind == PROGRAM_CHANGE_STATUS or kind == CHANNEL_PRESSURE_STATUS else 2  # noqa: SIM109 (numba)
        if i + size > end:
            break
        channel = running & 0x0F
        if channel != DRUM_CHANNEL or include_drums:
            key = channel * 128 + (data[i] & 0x7F)
            if kind == NOTE_ON_STATUS and data[i + 1] > 0:
                open_notes[key] += 1
            elif (kind == NOTE_OFF_STATUS or kind == NOTE_ON_STATUS) and open_notes[key] > 0:  # noqa: SIM109
                open_notes[key] -= 1
        i += size
    return open_notes.sum()


@njit(cache=True)
def _unclosed(data, include_drums):
    n = data.shape[0]
    if n < 14:
        return 0
    header = (data[4] << 24) | (data[5] << 16) | (data[6] << 8) | data[7]
    i = 8 + header
    total = 0
    while i + 8 <= n:
        length = (data[i + 4] << 24) | (data[i + 5] << 16) | (data[i + 6] << 8) | data[i + 7]
        start = i + 8
        end = min(n, start + length)
        if data[i] == 0x4D and data[i + 1] == 0x54 and data[i + 2] == 0x72 and data[i + 3] == 0x6B:
            total += _track_unclosed(data, start, end, include_drums)
        i = start + length
    return total


def unclosed_notes(data: bytes, *, include_drums: bool = False) -> int:
    """Note-ons of a standard MIDI file that no note-off ends before their track does."""
    array = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    return int(_unclosed(array, include_drums))


def unclosed_report(path: object, count: int) -> str:
    """The one line tokenize, continue and data print for a file with unclosed notes."""
    notes = "note" if count == 1 else "notes"
    return f"{path}: {count} {notes} with no note-off left out (a note needs an end)"
