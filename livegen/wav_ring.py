"""What was heard, to a WAV file written while the jam runs (the audio process's recording)."""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path

import numpy as np


class WavRing:
    """What was heard, to a 16-bit WAV file: the callback copies each block into a ring; a
    thread writes it out and rewrites the header's sizes every second, so a killed session
    leaves a readable file missing at most the last second."""

    def __init__(self, path: str | Path, sample_rate: int, seconds: float = 8.0) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.ring = np.zeros((int(sample_rate * seconds), 2), dtype=np.float32)
        self.written = 0  # frames the callback put in (monotonic)
        self.saved = 0  # frames the thread wrote out
        self.overflows = 0
        self._running = False
        self._file = None
        self._handle = None  # the file under the wave writer: its header is patched live
        self._thread: threading.Thread | None = None

    def write(self, block: np.ndarray) -> None:
        n, size = len(block), len(self.ring)
        at = self.written % size
        first = min(n, size - at)
        self.ring[at : at + first] = block[:first]
        if first < n:
            self.ring[: n - first] = block[first:]
        self.written += n

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "wb")  # noqa: SIM115 - open for the session
        self._file = wave.open(self._handle, "wb")  # noqa: SIM115
        self._file.setnchannels(2)
        self._file.setsampwidth(2)
        self._file.setframerate(self.sample_rate)
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="livegen-wav", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        written, size = self.written, len(self.ring)
        if written - self.saved > size:  # the writer fell a whole ring behind
            self.overflows += 1
            self.saved = written - size
        while self.saved < written:
            at = self.saved % size
            n = min(written - self.saved, size - at)
            pcm = (np.clip(self.ring[at : at + n], -1.0, 1.0) * 32767).astype("<i2")
            self._file.writeframesraw(pcm.tobytes())
            self.saved += n

    def _loop(self) -> None:
        last_header = time.monotonic()
        while self._running:
            time.sleep(0.1)
            self._drain()
            if time.monotonic() - last_header >= 1.0:
                self._patch_header()
                last_header = time.monotonic()

    def _patch_header(self) -> None:
        # wave writes the true sizes only on close; patch them so a killed session is readable.
        handle = self._handle
        handle.flush()
        data_bytes = self.saved * 4
        end = handle.tell()
        handle.seek(4)
        handle.write((36 + data_bytes).to_bytes(4, "little"))
        handle.seek(40)
        handle.write(data_bytes.to_bytes(4, "little"))
        handle.seek(end)
        handle.flush()

    def close(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._file is not None:
            self._drain()
            self._file.close()  # wave leaves a handle it was given open
            self._handle.close()
            self._file = self._handle = None
