"""A causal streaming audio codec: encoder, quantiser, decoder (SoundStream's plan, Vocos' head).

Encoder: each code frame of `hop` samples is seen as `fold` causal analysis windows (each
ending at its inner hop, reaching back `analysis_window` samples into the past), as power-law
compressed complex spectra; the folded spectra go through a linear layer and a stack of causal
ConvNeXt blocks at the frame rate, to a latent vector per frame.

Decoder: the quantised latent goes through its own causal stack; a linear head writes `fold`
spectra (log magnitude and phase) per frame, and an inverse FFT with overlap-add (Hann, 50%)
turns them into samples. Everything runs at the frame rate (62.5 Hz), none of it at the
sample rate, which is what makes it cheap on one CPU thread.

Streaming: `initial_state` / `encode_step` / `decode_step` take one frame (or a few) at a time
and carry every layer's left context explicitly; the result equals the offline forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from livegen.models.codec_config import CodecConfig
from livegen.models.quantizers import build_quantizer
from livegen.models.streaming_conv import ConvStack

COMPRESS = 0.3  # power-law compression of spectra going into the encoder


class Encoder(nn.Module):
    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        bins = config.analysis_window // 2 + 1
        self.register_buffer("window", torch.hann_window(config.analysis_window), persistent=False)
        self.proj = nn.Linear(config.fold * 2 * bins, config.channels)
        self.stack = ConvStack(
            config.channels, config.encoder_depth, config.kernel, config.mlp_ratio
        )
        self.out = nn.Linear(config.channels, config.latent_dim)

    @property
    def history(self) -> int:
        """Past samples an analysis window reaches back before its own inner hop."""
        return self.config.analysis_window - self.config.inner_hop

    def features(self, padded: torch.Tensor) -> torch.Tensor:
        """padded [B, history + T*hop] -> folded compressed spectra [B, T, fold * 2 * bins]."""
        c = self.config
        frames = padded.unfold(-1, c.analysis_window, c.inner_hop) * self.window
        spec = torch.fft.rfft(frames, dim=-1)
        spec = spec * (spec.abs() + 1e-6).pow(COMPRESS - 1.0)
        feats = torch.cat([spec.real, spec.imag], dim=-1)  # [B, T*fold, 2*bins]
        B, n, width = feats.shape
        return feats.reshape(B, n // c.fold, c.fold * width)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, T*hop] -> latents [B, T, latent_dim]."""
        padded = nn.functional.pad(audio, (self.history, 0))
        return self.out(self.stack(self.proj(self.features(padded))))

    def initial_state(self, batch: int, device="cpu") -> list[torch.Tensor]:
        return [
            torch.zeros(batch, self.history, device=device),
            *self.stack.initial_state(batch, device),
        ]

    def step(self, audio: torch.Tensor, state: list[torch.Tensor]):
        """audio [B, n*hop] (n whole frames) -> latents [B, n, latent_dim], next state."""
        full = torch.cat([state[0], audio], dim=-1)
        h, stack_state = self.stack.step(self.proj(self.features(full)), state[1:])
        return self.out(h), [full[:, full.shape[1] - self.history :], *stack_state]


class Decoder(nn.Module):
    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        self.bins = config.n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        self.inp = nn.Linear(config.latent_dim, config.channels)
        self.stack = ConvStack(
            config.channels, config.decoder_depth, config.kernel, config.mlp_ratio
        )
        self.head = nn.Linear(config.channels, config.fold * 2 * self.bins)

    def _windows(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden [B, T, C] -> windowed synthesis frames [B, T*fold, n_fft]."""
        B, T, _ = h.shape
        out = self.head(h).view(B, T * self.config.fold, 2, self.bins)
        magnitude = torch.exp(out[:, :, 0].clamp(max=6.0))  # clamp: no overflow early in training
        phase = out[:, :, 1]
        spec = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
        return torch.fft.irfft(spec, n=self.config.n_fft, dim=-1) * self.window

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, n, n_fft] at hop n_fft/2 -> [B, (n + 1) * inner_hop] summed signal."""
        B, n, size = frames.shape
        hop = self.config.inner_hop
        length = (n - 1) * hop + size
        folded = nn.functional.fold(
            frames.transpose(1, 2), output_size=(1, length), kernel_size=(1, size), stride=(1, hop)
        )
        return folded.view(B, length)

    def forward(self, quantized: torch.Tensor) -> torch.Tensor:
        """quantised latents [B, T, latent_dim] -> audio [B, T*hop] (lagging by config.delay)."""
        h = self.stack(self.inp(quantized))
        signal = self._overlap_add(self._windows(h))
        return signal[:, : quantized.shape[1] * self.config.hop]

    def initial_state(self, batch: int, device="cpu") -> list[torch.Tensor]:
        tail = torch.zeros(batch, self.config.delay, device=device)
        return [tail, *self.stack.initial_state(batch, device)]

    def step(self, quantized: torch.Tensor, state: list[torch.Tensor]):
        """[B, n, latent_dim] -> the next n*hop final samples [B, n*hop], next state."""
        h, stack_state = self.stack.step(self.inp(quantized), state[1:])
        signal = self._overlap_add(self._windows(h))
        tail = state[0]
        head = torch.cat([signal[:, : tail.shape[1]] + tail, signal[:, tail.shape[1] :]], dim=1)
        done = quantized.shape[1] * self.config.hop
        return head[:, :done], [head[:, done:], *stack_state]


class CodecOutput(NamedTuple):
    audio: torch.Tensor  # [B, T*hop], lagging the input by config.delay samples
    codes: torch.Tensor  # [B, T, levels]
    quantizer_loss: torch.Tensor


@dataclass
class StreamState:
    """Everything a streamed codec carries from one frame to the next."""

    encoder: list[torch.Tensor]
    decoder: list[torch.Tensor]


class Codec(nn.Module):
    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = build_quantizer(config)
        self.decoder = Decoder(config)

    def forward(self, audio: torch.Tensor, levels: torch.Tensor | None = None) -> CodecOutput:
        """audio [B, T*hop]; levels [B] per-example level counts (quantiser dropout)."""
        q = self.quantizer(self.encoder(audio), levels)
        return CodecOutput(self.decoder(q.quantized), q.codes, q.loss)

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        return self.quantizer.encode(self.encoder(audio), levels or self.config.levels)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.decode(codes))

    def initial_state(self, batch: int = 1, device="cpu") -> StreamState:
        return StreamState(
            self.encoder.initial_state(batch, device), self.decoder.initial_state(batch, device)
        )

    @torch.no_grad()
    def encode_step(
        self, audio: torch.Tensor, state: StreamState, levels: int | None = None
    ) -> torch.Tensor:
        """audio [B, n*hop] -> codes [B, n, levels]; updates state.encoder."""
        z, state.encoder = self.encoder.step(audio, state.encoder)
        return self.quantizer.encode(z, levels or self.config.levels)

    @torch.no_grad()
    def decode_step(self, codes: torch.Tensor, state: StreamState) -> torch.Tensor:
        """codes [B, n, k] -> the next n*hop output samples; updates state.decoder."""
        audio, state.decoder = self.decoder.step(self.quantizer.decode(codes), state.decoder)
        return audio


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass
class RoundTrip:
    audio: torch.Tensor  # [B, S]: the decoded signal, aligned with the input, same length
    codes: torch.Tensor  # [B, T, levels]
    encode_seconds: float  # compute time spent encoding
    decode_seconds: float
    frame_seconds: object = None  # per-frame (encode, decode) times, where measured


@torch.no_grad()
def stream_round_trip(
    model: Codec, audio: torch.Tensor, levels: int | None = None, frames_per_call: int = 1
) -> RoundTrip:
    """Encode and decode audio [B, S] through the streaming path, `frames_per_call` frames at
    a time, timing each side; the output is shifted back by the codec's delay and has S
    samples (the tail is flushed with silence)."""
    import time

    hop, delay = model.config.hop, model.config.delay
    length = audio.shape[1]
    total = -(-(length + delay) // hop) * hop
    padded = torch.nn.functional.pad(audio, (0, total - length))
    state = model.initial_state(audio.shape[0], audio.device)
    codes, out = [], []
    encode = decode = 0.0
    step = hop * frames_per_call
    # GPU work is queued: each time waits for the device, or it would count only the launch.
    sync = torch.cuda.synchronize if audio.is_cuda else (lambda *_: None)
    for start in range(0, total, step):
        sync(audio.device)
        tick = time.perf_counter()
        c = model.encode_step(padded[:, start : start + step], state, levels)
        sync(audio.device)
        tock = time.perf_counter()
        out.append(model.decode_step(c, state))
        sync(audio.device)
        decode += time.perf_counter() - tock
        encode += tock - tick
        codes.append(c)
    decoded = torch.cat(out, dim=1)[:, delay : delay + length]
    return RoundTrip(decoded, torch.cat(codes, dim=1), encode, decode)
