"""The adversarial phase of codec training: discriminators and their losses.

- Multi-period discriminator (HiFi-GAN): the waveform folded into [S / p, p] for a few prime
  periods p, 2-D convolutions along time per phase.
- Multi-scale STFT discriminator (EnCodec): 2-D convolutions over the real and imaginary
  parts of complex spectrograms at several resolutions.
Hinge losses, and feature matching (L1 between the discriminators' inner activations on real
and decoded audio, each layer normalised by the real activation's mean magnitude).

Meant for a GPU: from scratch on a CPU this phase is slow, and GAN training from scratch
tends to emit noise (RAVE trains spectral losses first, then the decoder alone against the
discriminators, which `freeze_encoder` does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PERIODS = (2, 3, 5, 7, 11)
STFT_SIZES = (2048, 1024, 512)


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, channels: int = 16) -> None:
        super().__init__()
        self.period = period
        widths = [1, channels, channels * 4, channels * 8]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)) for a, b in zip(widths, widths[1:])
        )
        self.out = nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0))

    def forward(self, audio: torch.Tensor) -> list[torch.Tensor]:
        B, S = audio.shape
        pad = (-S) % self.period
        x = F.pad(audio, (0, pad), mode="reflect" if pad < S else "constant")
        x = x.view(B, 1, -1, self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            features.append(x)
        features.append(self.out(x))
        return features


class STFTDiscriminator(nn.Module):
    def __init__(self, n_fft: int, channels: int = 16) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        widths = [2, channels, channels, channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, (3, 9), (1, 2) if i else (1, 1), padding=(1, 4))
            for i, (a, b) in enumerate(zip(widths, widths[1:]))
        )
        self.out = nn.Conv2d(widths[-1], 1, (3, 3), padding=(1, 1))

    def forward(self, audio: torch.Tensor) -> list[torch.Tensor]:
        spec = torch.stft(
            audio, self.n_fft, self.n_fft // 4, window=self.window, return_complex=True
        )
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, time, freq]
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            features.append(x)
        features.append(self.out(x))
        return features


class Discriminators(nn.Module):
    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.members = nn.ModuleList(
            [PeriodDiscriminator(p, channels) for p in PERIODS]
            + [STFTDiscriminator(n, channels) for n in STFT_SIZES]
        )

    def forward(self, audio: torch.Tensor) -> list[list[torch.Tensor]]:
        return [member(audio) for member in self.members]


def discriminator_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]):
    """Hinge loss of the discriminators (fake computed on detached audio)."""
    total = real[0][-1].new_zeros(())
    for r, f in zip(real, fake):
        total = total + F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean()
    return total / len(real)


def generator_losses(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]):
    """(adversarial hinge loss, feature matching loss) for the codec."""
    adversarial = fake[0][-1].new_zeros(())
    matching = fake[0][-1].new_zeros(())
    layers = 0
    for r, f in zip(real, fake):
        adversarial = adversarial + F.relu(1 - f[-1]).mean()
        for rl, fl in zip(r[:-1], f[:-1]):
            rl = rl.detach()
            matching = matching + (rl - fl).abs().mean() / (rl.abs().mean() + 1e-5)
            layers += 1
    return adversarial / len(fake), matching / max(layers, 1)
