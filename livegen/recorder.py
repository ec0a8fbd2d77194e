"""Session recording: a standard MIDI file (format 1: a player track and a model track) that is
always readable on disk.

Events are encoded as they arrive, appended to one byte buffer per track (delta time, status,
data: nothing is re-encoded later). A background thread rewrites the whole file every
`interval` seconds: header, each track with note-offs for whatever still sounds and an
end-of-track, written to a temporary file beside it and renamed over NAME
(livegen.kernels.atomic_write). A rename is atomic, so a reader (or a kill -9 at any instant)
sees the previous complete file or the new one, never a torn one: at most the last `interval`
of the session is lost. The folder is proved writable before the session starts; a write that
fails later (disk full) is kept in `error`, retried, and the file on disk keeps the session
up to `saved_seconds`.
"""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from livegen.kernels.atomic_write import ensure_writable_folder, write_bytes
from livegen.kernels.errors import LivegenError, WriteError
from livegen.kernels.midi_codes import (
    CHANNEL_MASK,
    KIND_MASK,
    NOTE_OFF_STATUS,
    NOTE_ON_STATUS,
    SYSTEM_STATUS,
)

PPQ = 960  # ticks per beat
PLAYER_TRACK = 0
MODEL_TRACK = 1


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _meta(kind: int, payload: bytes) -> bytes:
    return bytes([0xFF, kind]) + _varlen(len(payload)) + payload


@dataclass
class _Track:
    name: str
    data: bytearray = field(default_factory=bytearray)
    tick: int = 0  # tick of the last event written
    sounding: dict[tuple[int, int], int] = field(default_factory=dict)  # (channel, pitch) -> n

    def add(self, tick: int, message: bytes) -> None:
        self.data += _varlen(max(0, tick - self.tick)) + message
        self.tick = max(self.tick, tick)
        status = message[0] & KIND_MASK
        key = (message[0] & CHANNEL_MASK, message[1]) if len(message) > 1 else None
        if status == NOTE_ON_STATUS and message[2] > 0:
            self.sounding[key] = self.sounding.get(key, 0) + 1
        elif status in (NOTE_OFF_STATUS, NOTE_ON_STATUS) and key in self.sounding:
            self.sounding[key] -= 1
            if not self.sounding[key]:
                del self.sounding[key]

    def chunk(self, end_tick: int) -> bytes:
        """The track as an MTrk chunk, closed: note-offs for what sounds, then end-of-track."""
        tail = bytearray()
        tick = self.tick
        for (channel, pitch), count in sorted(self.sounding.items()):
            for _ in range(count):
                tail += _varlen(max(0, end_tick - tick)) + bytes(
                    [NOTE_OFF_STATUS | channel, pitch, 0]
                )
                tick = max(tick, end_tick)
        tail += b"\x00" + _meta(0x2F, b"")
        body = bytes(self.data) + bytes(tail)
        return b"MTrk" + struct.pack(">I", len(body)) + body


class Recorder:
    """Record timestamped raw MIDI messages (session seconds) to `path`, durably."""

    def __init__(self, path: str | Path, *, tempo_bpm: float = 120.0, interval: float = 0.5):
        self.path = Path(path)
        self.tempo_bpm = tempo_bpm
        self.interval = interval
        self._ticks_per_second = PPQ * tempo_bpm / 60.0
        self._tracks = [_Track("player"), _Track("model")]
        tempo = round(60_000_000 / tempo_bpm)
        self._tracks[0].data += b"\x00" + _meta(0x51, tempo.to_bytes(3, "big"))
        for track in self._tracks:
            track.data += b"\x00" + _meta(0x03, track.name.encode())
        self._lock = threading.Lock()
        self._dirty = True
        self._end = 0.0  # latest time seen (seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.writes = 0
        self.error: str | None = None
        self.saved_seconds = 0.0  # the session time the file on disk holds

    @property
    def seconds(self) -> float:
        return self._end

    def start(self) -> None:
        """Check the folder and write the (empty) file: WriteError now, before the session,
        if recording cannot happen (a file named like the folder, read-only, full)."""
        ensure_writable_folder(self.path.parent, "recording folder")
        if self.path.exists():
            raise WriteError(f"{self.path}: already exists; a recording never replaces a file")
        self.flush()
        if self.error:
            raise WriteError(self.error)
        self._thread = threading.Thread(target=self._loop, name="livegen-recorder", daemon=True)
        self._thread.start()

    def add(self, track: int, time_s: float, message: bytes | list[int]) -> None:
        """One channel message (note, CC, program...) at session time `time_s`."""
        data = bytes(message)
        if not data or data[0] < NOTE_OFF_STATUS or data[0] >= SYSTEM_STATUS:
            return  # only channel messages go into a standard MIDI file track
        tick = round(max(0.0, time_s) * self._ticks_per_second)
        with self._lock:
            self._tracks[track].add(tick, data)
            self._end = max(self._end, time_s)
            self._dirty = True

    def mark(self, time_s: float) -> None:
        """The session went on to `time_s`: the file's length follows the clock. It is
        rewritten for that only while a note sounds (the note's length grows); in silence
        the next event or the close writes it, so a quiet session is not rewritten and
        fsynced twice a second for nothing, and a kill -9 loses only trailing silence."""
        with self._lock:
            if time_s > self._end:
                self._end = time_s
                self._dirty = self._dirty or any(track.sounding for track in self._tracks)

    def snapshot(self) -> bytes:
        with self._lock:
            end_tick = round(self._end * self._ticks_per_second)
            chunks = [track.chunk(end_tick) for track in self._tracks]
            self._dirty = False
        header = b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), PPQ)
        return header + b"".join(chunks)

    def flush(self) -> None:
        """Write the file now (atomically: tmp + rename)."""
        seconds = self._end
        data = self.snapshot()
        try:
            write_bytes(self.path, data)
        except LivegenError as error:  # disk full, folder gone: report, keep it in memory
            self.error = f"recording failed: {error}"
            return
        self.writes += 1
        self.saved_seconds = seconds
        self.error = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self._dirty:
                self.flush()

    def close(self) -> None:
        """Stop the writer and write the final file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()


def session_path(folder: str | Path, suffix: str = ".mid") -> Path:
    """folder/livegen-YYYYmmdd-HHMMSS.mid (a number appended if that exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(folder) / f"livegen-{stamp}"
    path, n = base.with_suffix(suffix), 1
    while path.exists():
        path = Path(f"{base}-{n}{suffix}")
        n += 1
    return path
