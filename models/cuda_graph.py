"""One decode step (and one sample-then-decode step) as a captured CUDA graph.

Why: a small Perceiver AR step is ~100 tiny kernels; on a GPU each launch costs a few
microseconds of CPU time, so an eager step is launch-bound (DESIGN.md). TorchStep.step
(models/torch_step.py) is written for capture: static shapes, every index computed on the device from a 0-d `pos`
tensor, caches written in place. GraphStep records it once and replays it.

Sampling lives inside the graph too (`sample_on_device`): the masks the grammar computes on the
CPU (a bool per token), the knobs (temperature, density, top-k, top-p, min-p) and uniform
noise from the caller's seeded generator go to the device in ONE copy from a pinned buffer;
the graph masks, tempers, truncates, draws the token by Gumbel-max, feeds it straight back as
the next input and decodes it. The CPU reads one integer back per token (the grammar and the
MIDI output need it), which is the only synchronisation.

The same bodies run without capture (`capture=False`, the only mode on a CPU): that is how the
tests exercise this code on machines without a GPU, and what `device_sampling=True` on a CPU
decoder runs.

HONEST STATUS: the captured path was written against the torch.cuda.graphs API (warm-up on a
side stream, capture with torch.cuda.graph, static input tensors, replay) but has NOT been run:
no GPU was lent to the session that wrote it (BENCHMARKS.md: "not measured"). The uncaptured
bodies are tested on the CPU (tests/test_cuda_graph.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from livegen.kernels.vocab import NOTE_OFF, NOTE_ON, TIME_SHIFT
from livegen.models.torch_step import TorchStep

if TYPE_CHECKING:
    from livegen.models.sampling import SamplingParams
    from livegen.models.streaming import StreamingDecoder

# Positions of the knobs in the packed host -> device buffer (after allowed[V] and noise[V]).
TEMPERATURE, DENSITY, TOP_K, TOP_P, MIN_P = range(5)
NUM_KNOBS = 5
NEG_INF = float("-inf")


def truncate_on_device(
    logits: torch.Tensor, allowed: torch.Tensor, knobs: torch.Tensor, note_on: torch.Tensor
) -> torch.Tensor:
    """models/sampling.py's transform in static shapes with no host synchronisation: the
    masks, density, temperature, then top-k, top-p and min-p, each on what the previous left.

    logits [V]; allowed [V] bool; knobs [5] float32 (TEMPERATURE..MIN_P; top_k 0, top_p 1 and
    min_p 0 mean off); note_on [V] float32, 1 at NOTE_ON ids. Returns float32 [V], -inf where
    excluded.
    """
    vocab = logits.shape[0]
    x = logits.float().masked_fill(~allowed, NEG_INF)
    x = (x + knobs[DENSITY] * note_on) / knobs[TEMPERATURE]
    # top-k: keep what is >= the k-th largest value (ties kept, as on the CPU).
    ordered, order = torch.sort(x, descending=True)
    k = knobs[TOP_K].long()
    kth = ordered.gather(0, (k - 1).clamp(0, vocab - 1).reshape(1))
    x = x.masked_fill((k > 0) & (x < kth), NEG_INF)
    # top-p over the renormalised survivors; masking kept the sort order valid.
    probs = torch.softmax(x, dim=-1)
    sorted_probs = probs.gather(0, order)
    before = torch.cumsum(sorted_probs, 0) - sorted_probs
    drop_sorted = (before >= knobs[TOP_P]) & (knobs[TOP_P] < 1)
    drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
    x = x.masked_fill(drop, NEG_INF)
    # min-p relative to the most likely survivor.
    probs = torch.softmax(x, dim=-1)
    return x.masked_fill(probs < knobs[MIN_P] * probs.max(), NEG_INF)


def gumbel_max(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """argmax(x + G), G = -log(-log u) from uniform noise [V]: exactly a draw from softmax(x)."""
    u = noise.clamp(1e-12, 1.0 - 1e-7)
    return torch.argmax(x - torch.log(-torch.log(u))).reshape(1)


def sample_on_device(
    logits: torch.Tensor,
    allowed: torch.Tensor,
    knobs: torch.Tensor,
    noise: torch.Tensor,
    note_on: torch.Tensor,
) -> torch.Tensor:
    """The token [1] (long): truncate_on_device, then gumbel_max with uniform `noise` [V];
    TIME_SHIFT where nothing allowed survives, as sample_token gives (the argmax of all -inf
    would be token 0), chosen on the device: a graph cannot branch on a value."""
    x = truncate_on_device(logits, allowed, knobs, note_on)
    token = gumbel_max(x, noise)
    return torch.where(torch.isfinite(x).any(), token, torch.full_like(token, TIME_SHIFT))


def knob_values(params: SamplingParams) -> list[float]:
    values = [0.0] * NUM_KNOBS
    values[TEMPERATURE] = params.temperature
    values[DENSITY] = params.density
    values[TOP_K] = float(params.top_k)
    values[TOP_P] = params.top_p
    values[MIN_P] = params.min_p
    return values


class GraphStep:
    """decode_one_token(token, pos) -> logits and sample(...) -> token for one
    StreamingDecoder, each a replay of a captured CUDA graph (capture=True, CUDA only) or the
    same code run eagerly."""

    name = "cuda-graph"

    def __init__(
        self, decoder: StreamingDecoder, *, capture: bool | None = None, warmup: int = 3
    ) -> None:
        self.decoder = decoder
        self.torch_step = TorchStep(decoder)
        device = decoder.device
        self.capture = device.type == "cuda" if capture is None else capture
        if self.capture and device.type != "cuda":
            raise ValueError("capturing a CUDA graph needs a CUDA device")
        vocab = decoder.config.vocab_size
        self.vocab = vocab
        # Static inputs and outputs: the graph reads and writes these very tensors.
        self.token = torch.zeros(1, dtype=torch.long, device=device)
        self.pos = torch.zeros((), dtype=torch.long, device=device)
        self.logits = torch.zeros(1, vocab, dtype=torch.float32, device=device)
        self.sampled = torch.zeros(1, dtype=torch.long, device=device)
        self.packed = torch.zeros(2 * vocab + NUM_KNOBS, dtype=torch.float32, device=device)
        self.note_on = torch.zeros(vocab, dtype=torch.float32, device=device)
        self.note_on[NOTE_ON:NOTE_OFF] = 1.0
        # Host staging: pinned, so the one copy per sampled token is asynchronous.
        pin = device.type == "cuda"
        self.host = torch.zeros(2 * vocab + NUM_KNOBS, dtype=torch.float32, pin_memory=pin)
        self._decode_graph = None
        self._sample_graph = None
        if self.capture:
            self._record(warmup)

    # ---- the bodies: exactly what the graphs hold --------------------------------------------

    def _decode_body(self) -> None:
        self.logits.copy_(self.torch_step.step(self.token, self.pos))

    def _sample_body(self) -> None:
        v = self.vocab
        allowed = self.packed[:v] > 0.5
        token = sample_on_device(
            self.logits[0], allowed, self.packed[2 * v :], self.packed[v : 2 * v], self.note_on
        )
        self.sampled.copy_(token)
        self.token.copy_(token)  # the drawn token is the next input, without leaving the GPU
        self._decode_body()

    def _record(self, warmup: int) -> None:
        """Warm up on a side stream (cuBLAS handles, attention kernel choice, allocator), then
        capture both bodies into graphs sharing one memory pool. The warm-up writes garbage
        into the caches at position 0; the decoder's reset() below hides it (slot_pos = -1)."""
        # Capture and the side stream belong to the current device: make it the decoder's
        # (a decoder on cuda:1 in a process whose current device is cuda:0).
        with torch.cuda.device(self.decoder.device):
            self._capture(warmup)
        self.decoder.reset()

    def _capture(self, warmup: int) -> None:
        decoder = self.decoder
        self.token.fill_(decoder.config.begin_id)
        self.pos.zero_()
        self.packed.zero_()
        self.packed[: self.vocab] = 1.0  # everything allowed
        self.packed[self.vocab : 2 * self.vocab] = 0.5
        self.packed[2 * self.vocab + TEMPERATURE] = 1.0
        self.packed[2 * self.vocab + TOP_P] = 1.0
        side = torch.cuda.Stream(device=decoder.device)
        side.wait_stream(torch.cuda.current_stream(decoder.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(warmup):
                self._decode_body()
                self._sample_body()
        torch.cuda.current_stream(decoder.device).wait_stream(side)
        torch.cuda.synchronize(decoder.device)
        # Captured on a stream of the decoder's own device: torch's default capture stream is
        # made once per process, on whichever device was current then.
        decode_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(decode_graph, stream=side), torch.no_grad():
            self._decode_body()
        sample_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(sample_graph, pool=decode_graph.pool(), stream=side), torch.no_grad():
            self._sample_body()
        torch.cuda.synchronize(decoder.device)
        self._decode_graph, self._sample_graph = decode_graph, sample_graph

    # ---- the decoder's calls ------------------------------------------------------------------

    @torch.no_grad()
    def decode_one_token(self, token: int, pos: int) -> torch.Tensor:
        """Logits [V] (a copy: the static buffer changes at the next replay) after `token`."""
        self.token.fill_(token)
        self.pos.fill_(pos)
        if self._decode_graph is not None:
            self._decode_graph.replay()
        else:
            self._decode_body()
        return self.logits[0].clone()

    @torch.no_grad()
    def sample(
        self,
        logits: torch.Tensor,
        pos: int,
        allowed: torch.Tensor,
        params: SamplingParams,
        noise: torch.Tensor,
    ) -> int:
        """Draw a token from `logits` under the masks and knobs, decode it at `pos`; the new
        logits are in self.logits. Returns the token (the one device -> host read)."""
        v = self.vocab
        self.host[:v] = allowed.to(torch.float32)
        self.host[v : 2 * v] = noise
        self.host[2 * v :] = torch.tensor(knob_values(params), dtype=torch.float32)
        self.packed.copy_(self.host, non_blocking=True)
        self.logits[0].copy_(logits)
        self.pos.fill_(pos)
        if self._sample_graph is not None:
            self._sample_graph.replay()
        else:
            self._sample_body()
        return int(self.sampled[0])  # waits for the device; the pinned buffer is free after
