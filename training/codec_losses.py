"""Reconstruction losses and distances for the codec, computed on the same features the
evaluation reports: multi-scale log-mel L1 (as DAC), multi-resolution STFT (spectral
convergence + log magnitude, as Parallel WaveGAN), waveform L1, and SI-SDR.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

MEL_SCALES = ((2048, 128), (1024, 80), (512, 64), (256, 32), (128, 16))  # (n_fft, mel bands)
STFT_SCALES = (2048, 1024, 512)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10 ** (mel / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, bands: int) -> torch.Tensor:
    """Triangular filters [bands, n_fft // 2 + 1] on the HTK mel scale, 0 Hz to Nyquist."""
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(0, _hz_to_mel(np.array(sample_rate / 2)), bands + 2))
    low, mid, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None, :] - low) / np.maximum(mid - low, 1e-9)
    fall = (high - freqs[None, :]) / np.maximum(high - mid, 1e-9)
    return torch.from_numpy(np.maximum(0.0, np.minimum(rise, fall))).float()


def _magnitude(audio: torch.Tensor, n_fft: int, window: torch.Tensor) -> torch.Tensor:
    spec = torch.stft(
        audio, n_fft, hop_length=n_fft // 4, window=window, center=True, return_complex=True
    )
    return spec.abs()


class SpectralLosses(nn.Module):
    """Multi-scale mel and multi-resolution STFT distances between two batches [B, S]."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        for n_fft, bands in MEL_SCALES:
            self.register_buffer(f"mel_{n_fft}", mel_filterbank(sample_rate, n_fft, bands), False)
        for n_fft in {n for n, _ in MEL_SCALES} | set(STFT_SCALES):
            self.register_buffer(f"win_{n_fft}", torch.hann_window(n_fft), False)

    def mel(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(())
        for n_fft, _ in MEL_SCALES:
            window, bank = getattr(self, f"win_{n_fft}"), getattr(self, f"mel_{n_fft}")
            mx = bank @ _magnitude(x, n_fft, window)
            my = bank @ _magnitude(y, n_fft, window)
            total = total + (mx.clamp_min(1e-5).log10() - my.clamp_min(1e-5).log10()).abs().mean()
        return total / len(MEL_SCALES)

    def stft(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(())
        for n_fft in STFT_SCALES:
            window = getattr(self, f"win_{n_fft}")
            mx, my = _magnitude(x, n_fft, window), _magnitude(y, n_fft, window)
            convergence = torch.linalg.norm(my - mx) / (torch.linalg.norm(my) + 1e-7)
            log_mag = (mx.clamp_min(1e-5).log() - my.clamp_min(1e-5).log()).abs().mean()
            total = total + convergence + log_mag
        return total / len(STFT_SCALES)


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Scale-invariant SDR in dB per example (Le Roux et al. 2019), inputs [B, S]."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (
        reference.pow(2).sum(-1, keepdim=True) + 1e-9
    )
    target = scale * reference
    noise = estimate - target
    ratio = target.pow(2).sum(-1) / (noise.pow(2).sum(-1) + 1e-9)
    return 10 * torch.log10(ratio + 1e-9)


def perplexity(codes: torch.Tensor, size: int) -> tuple[float, float]:
    """(perplexity, fraction of the codebook used) of a flat tensor of code indices."""
    counts = torch.bincount(codes.reshape(-1), minlength=size).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float(math.exp(float(entropy))), float((counts > 0).double().mean())
