"""The codec's streaming step in NumPy, for one stream on one CPU thread (the live path).

A frame through the torch modules costs ~150 small tensor operations, and on a CPU each
costs several microseconds of dispatch whatever its size: the torch step was bound by that,
not by arithmetic. The same arithmetic on NumPy arrays (float32; SciPy's FFT keeps float32)
has a fraction of the overhead. It computes what Codec.encode_step / decode_step compute, to
float32 rounding (tested), with its state in plain arrays.
"""

from __future__ import annotations

import numpy as np
from scipy import fft
from scipy.special import erf

from livegen.models.codec import COMPRESS, Codec
from livegen.models.quantizers import ArgmaxQuantizer

LN_EPS = 1e-5


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32).copy()


def _hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


class _Linear:
    def __init__(self, module) -> None:
        self.w, self.b = _np(module.weight), _np(module.bias)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.w @ x + self.b


class _Norm:
    def __init__(self, module) -> None:
        self.w, self.b = _np(module.weight), _np(module.bias)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        centred = x - x.mean()
        return centred / np.sqrt((centred * centred).mean() + LN_EPS) * self.w + self.b


class _Stack:
    """A ConvStack for one frame at a time; state is one [C, kernel-1] array per block."""

    def __init__(self, stack) -> None:
        self.blocks = []
        for block in stack.blocks:
            conv = block.dwconv.conv
            self.blocks.append(
                (
                    _np(conv.weight)[:, 0],
                    _np(conv.bias),
                    _Norm(block.norm),
                    _Linear(block.pw1),
                    _Linear(block.pw2),
                    _np(block.gamma),
                )
            )
        self.norm = _Norm(stack.norm)

    def state(self) -> list[np.ndarray]:
        return [np.zeros((len(b[1]), b[0].shape[1] - 1), np.float32) for b in self.blocks]

    def __call__(self, x: np.ndarray, state: list[np.ndarray]) -> np.ndarray:
        for i, (w, b, norm, pw1, pw2, gamma) in enumerate(self.blocks):
            full = np.concatenate([state[i], x[:, None]], axis=1)
            state[i] = full[:, 1:]
            h = pw1(norm((full * w).sum(1) + b))
            h = 0.5 * h * (1.0 + erf(h * np.float32(0.7071067811865476)))  # exact GELU
            x = x + gamma * pw2(h)
        return self.norm(x)


class FastCodec:
    """encode_frame(hop samples) -> codes; decode_frame(codes) -> hop samples; batch 1."""

    def __init__(self, model: Codec) -> None:
        # A matrix-vector product this small is slower on several BLAS threads than on one
        # (and the live path has one core to give): pin BLAS to one thread, process-wide.
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        c = self.config = model.config
        enc, dec, q = model.encoder, model.decoder, model.quantizer
        self.analysis = _hann(c.analysis_window)
        self.synthesis = _hann(c.n_fft)
        self.history = c.analysis_window - c.inner_hop
        self.enc_proj, self.enc_out = _Linear(enc.proj), _Linear(enc.out)
        self.enc_stack, self.dec_stack = _Stack(enc.stack), _Stack(dec.stack)
        self.dec_in, self.head = _Linear(dec.inp), _Linear(dec.head)
        self.argmax = isinstance(q, ArgmaxQuantizer)
        if self.argmax:
            self.logits = _Linear(q.logits)
            self.books = [_np(e) for e in q.embed]
        else:
            self.books = [_np(b.embed) for b in q.codebooks]
            self.norms = [(b * b).sum(1) for b in self.books]
            self.project = q.project
            if q.project:
                self.inputs = [_Linear(m) for m in q.inputs]
                self.outputs = [_Linear(m) for m in q.outputs]
        self.reset()

    def reset(self) -> None:
        c = self.config
        self.samples = np.zeros(self.history, np.float32)
        self.enc_state, self.dec_state = self.enc_stack.state(), self.dec_stack.state()
        self.tail = np.zeros(c.delay, np.float32)

    def encode_frame(self, audio: np.ndarray, levels: int | None = None) -> np.ndarray:
        c = self.config
        full = np.concatenate([self.samples, np.asarray(audio, np.float32)])
        self.samples = full[len(full) - self.history :]
        windows = np.lib.stride_tricks.sliding_window_view(full, c.analysis_window)
        spec = fft.rfft(windows[:: c.inner_hop] * self.analysis, axis=-1)
        spec = spec * (np.abs(spec) + np.float32(1e-6)) ** np.float32(COMPRESS - 1.0)
        feats = np.concatenate([spec.real, spec.imag], axis=-1).reshape(-1)
        h = self.enc_stack(self.enc_proj(feats.astype(np.float32)), self.enc_state)
        return self._quantize(self.enc_out(h), levels or c.levels)

    def _quantize(self, z: np.ndarray, levels: int) -> np.ndarray:
        if self.argmax:
            groups = np.maximum(self.logits(z), 0).reshape(self.config.levels, -1)
            return groups.argmax(axis=1)[:levels]
        codes = np.empty(levels, np.int64)
        residual = z
        for level in range(levels):
            x = residual
            if self.project:
                x = self.inputs[level](residual)
                x = x / max(float(np.sqrt((x * x).sum())), 1e-12)
            index = int(np.argmin(self.norms[level] - 2.0 * (self.books[level] @ x)))
            codes[level] = index
            out = self.books[level][index]
            residual = residual - (self.outputs[level](out) if self.project else out)
        return codes

    def _dequantize(self, codes: np.ndarray) -> np.ndarray:
        total = None
        for level, index in enumerate(codes):
            part = self.books[level][index]
            if not self.argmax and self.project:
                part = self.outputs[level](part)
            total = part if total is None else total + part
        return total

    def decode_frame(self, codes: np.ndarray) -> np.ndarray:
        c = self.config
        h = self.dec_stack(self.dec_in(self._dequantize(codes)), self.dec_state)
        out = self.head(h).reshape(c.fold, 2, -1)
        magnitude = np.exp(np.minimum(out[:, 0], np.float32(6.0)))
        spec = magnitude * np.cos(out[:, 1]) + 1j * (magnitude * np.sin(out[:, 1]))
        frames = fft.irfft(spec.astype(np.complex64), n=c.n_fft, axis=-1) * self.synthesis
        signal = np.zeros(c.hop + c.delay, np.float32)
        for j in range(c.fold):
            signal[j * c.inner_hop : j * c.inner_hop + c.n_fft] += frames[j]
        signal[: c.delay] += self.tail
        self.tail = signal[c.hop :].copy()
        return signal[: c.hop]


def fast_round_trip(model: Codec, audio: np.ndarray, levels: int | None = None):
    """stream_round_trip for one mono signal, frame by frame through FastCodec; returns a
    RoundTrip (audio [1, S] aligned with the input, codes [1, T, levels], compute seconds)
    with per-frame times in `frame_seconds` ([T, 2]: encode, decode)."""
    import time

    import torch

    from livegen.models.codec import RoundTrip

    fast = FastCodec(model)
    c = model.config
    length = len(audio)
    total = -(-(length + c.delay) // c.hop) * c.hop
    padded = np.zeros(total, np.float32)
    padded[:length] = audio
    frames = total // c.hop
    codes = np.empty((frames, levels or c.levels), np.int64)
    out = np.empty(total, np.float32)
    times = np.empty((frames, 2))
    for t in range(frames):
        tick = time.perf_counter()
        codes[t] = fast.encode_frame(padded[t * c.hop : (t + 1) * c.hop], levels)
        tock = time.perf_counter()
        out[t * c.hop : (t + 1) * c.hop] = fast.decode_frame(codes[t])
        times[t] = (tock - tick, time.perf_counter() - tock)
    trip = RoundTrip(
        torch.from_numpy(out[c.delay : c.delay + length].copy())[None],
        torch.from_numpy(codes)[None],
        float(times[:, 0].sum()),
        float(times[:, 1].sum()),
    )
    trip.frame_seconds = times
    return trip
