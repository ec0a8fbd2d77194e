"""Streaming resampling by an integer factor, between the device's rate and the codec's.

The codec runs at its own rate (codec-24k: 24 kHz) and a JACK server typically at 48 kHz: the
audio model's worker decimates what was heard on the way in and interpolates the model's
sound on the way out. Chunks are whole codec frames, so the factor always divides them; the
filter's state carries across chunks, so chunk after chunk equals one long signal.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from livegen.kernels.errors import LivegenError

TAPS_PER_FACTOR = 16  # a 32-tap low-pass at 2x: ~0.3 ms of delay at 48 kHz


def resampling_factor(device_rate: int, codec_rate: int) -> int:
    """The device's rate as a whole multiple of the codec's; anything else is refused."""
    if device_rate % codec_rate:
        multiples = ", ".join(str(codec_rate * k) for k in (1, 2, 4))
        raise LivegenError(
            f"an audio preset's codec runs at {codec_rate} Hz; the sound must run at a whole "
            f"multiple of it ({multiples}), not {device_rate} Hz: give --sample-rate"
        )
    return device_rate // codec_rate


class Resampler:
    """`down(chunk)`: device rate -> codec rate; `up(chunk)`: codec rate -> device rate.
    One object per direction and stream (each keeps its filter's state)."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        if factor > 1:
            taps = TAPS_PER_FACTOR * factor
            self.filter = signal.firwin(taps, 0.9 / factor).astype(np.float32)
            self.state = np.zeros(taps - 1, np.float32)

    def down(self, chunk: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return np.asarray(chunk, np.float32)
        filtered, self.state = signal.lfilter(self.filter, 1.0, chunk, zi=self.state)
        return filtered[:: self.factor].astype(np.float32)

    def up(self, chunk: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return np.asarray(chunk, np.float32)
        spread = np.zeros(len(chunk) * self.factor, np.float32)
        spread[:: self.factor] = chunk
        filtered, self.state = signal.lfilter(self.filter * self.factor, 1.0, spread, zi=self.state)
        return filtered.astype(np.float32)
