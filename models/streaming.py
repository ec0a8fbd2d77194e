"""Streaming decode of a Perceiver AR: one token in, next-token logits out, in bounded memory.

Windowing (identical to training, so streamed logits equal a full forward pass)
-------------------------------------------------------------------------------
Training sees crops of N tokens whose last L positions are latents. In streaming, the latents
of position p live in a *window* starting at w: latent q (w <= q <= p) attends to the
cross-attention keys of positions [w - (N - L), q] (clipped at 0) and to the self-attention keys
of latents [w, q] of the same window. The logits at p therefore equal the full forward pass over
tokens[max(0, w - (N - L)) : w + L] at latent index p - w.

Windows start at w_k = k * S with stride S = L - R + 1: when window k is full (it holds L
latents) and a token arrives, the next window holds the last R latents, new token included.
That is the REFILL: R latents recomputed from the cached cross-attention K/V. Rather than paying
for it in one spike, the decoder computes every token in all windows that contain it (at most
M = ceil(L / S) of them, 2 for R = L / 2) as one batch of M rows: when window k runs out,
window k + 1 already holds its latents, so no token ever pays for a refill. On a CPU the
matrix products read each weight once for all rows, so M = 2 rows cost little more than one.
An explicit burst refill (all of a window's latents in one batch) happens only after a
rollback or a long prefill, where it is needed; `refill_latents` runs one (what livegen
bench times).

The decode step itself, one token in and logits out, is `decode_one_token` here, and one plain
function per backend behind it: TorchStep.decode_one_token (models/torch_step.py: a GPU, int8
and bfloat16), CpuStep.decode_one_token (models/cpu_decode.py: a float32 model on a CPU) and
GraphStep.decode_one_token (models/cuda_graph.py: the torch step as a captured CUDA graph).

Caches (preallocated, written in place, never concatenated)
-----------------------------------------------------------
- cross-attention K/V: a ring of N slots (slot = position mod N); keys stored rotated.
  `slot_pos` says which position a slot holds, so masks need no slot order.
- self-attention K/V per block: [M windows, H, L + 1, hd], slot = q - w; the extra slot L is
  scratch that inactive rows write to, so the batched step has static shapes (CUDA graphs).
- a history of token ids (ring, default 2N): lets rollback rebuild cross K/V it overwrote.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from livegen.models.cpu_decode import CpuStep, Windows, applies, step_supported, with_row_kernels
from livegen.models.grammar import MODEL, GrammarState
from livegen.models.perceiver_ar import PerceiverAR
from livegen.models.sampling import SamplingParams, allowed_mask, forced_token, sample_token
from livegen.models.torch_step import TorchStep

# Appends up to this many tokens run as one CpuStep call (a player's note is 2-3 tokens); longer
# ones (prefills) take the batched torch path, whose big matrix products are faster there.
SHORT_APPEND = 4


class StreamingDecoder:
    def __init__(
        self,
        model: PerceiverAR,
        *,
        refill: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        cuda_graph: bool = False,
        device_sampling: bool = False,
        history: int | None = None,
        cpu_kernels: bool = True,
        numba_step: bool = True,
    ) -> None:
        """cuda_graph: replay each decode step (and each sample + decode) as a captured CUDA
        graph (models/cuda_graph.py; CUDA only). device_sampling: sample with the graph's
        on-device code without capturing (any device; what the CPU tests run). cpu_kernels:
        run a float32 model's few-row products on the CPU with numba (models/cpu_decode.py);
        False keeps torch's ops everywhere (the same math, slower on a CPU). numba_step=False
        keeps the torch step where the all-numba CpuStep would serve (its attention still
        numba's with cpu_kernels: the path int8 models take)."""
        config = model.config
        self.config = config
        self.N, self.L = config.context, config.latents
        self.R = refill if refill is not None else max(1, self.L // 2)
        if not 1 <= self.R <= self.L:
            raise ValueError(f"refill must be in 1..{self.L} (latents), got {self.R}")
        self.S = self.L - self.R + 1  # window stride
        self.M = (self.L - 1) // self.S + 1  # windows that can contain one position
        first = next(model.parameters())
        self.device = torch.device(device) if device is not None else first.device
        if self.device.type == "cuda" and self.device.index is None:
            # "cuda" means the current GPU; with its index it compares equal to the model's
            # device, so a model already there is not copied.
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.dtype = dtype if dtype is not None else first.dtype
        if first.device != self.device or (first.dtype != self.dtype and dtype is not None):
            model = copy.deepcopy(model).to(self.device, self.dtype)
        # The graph code (even uncaptured) runs the torch ops a GPU runs, so tests see them.
        graph = cuda_graph or device_sampling
        self.cpu_kernels = cpu_kernels and not graph and applies(model, self.device)
        self.model = model.eval()
        self.history_size = history if history is not None else 2 * self.N
        if self.history_size < self.N:
            raise ValueError(f"history must be >= context ({self.N})")
        self._allocate()
        self.reset()
        self._cpu_step: CpuStep | None = None
        if self.cpu_kernels and step_supported(self.model):
            self.model = with_row_kernels(self.model)  # the torch paths' few-row products
            if numba_step:
                self._cpu_step = CpuStep(
                    self.model,
                    self.ring_k,
                    self.ring_v,
                    self.slot_pos,
                    self.self_k,
                    self.self_v,
                    self.windows_holding,
                )
        self._graph = None
        if cuda_graph or device_sampling:
            from livegen.models.cuda_graph import GraphStep

            if cuda_graph and self.device.type != "cuda":
                raise ValueError("cuda_graph=True needs a CUDA device")
            self._graph = GraphStep(self, capture=cuda_graph)
        # The one-token step: the graph, else the numba step, else torch's.
        self.backend: GraphStep | CpuStep | TorchStep = (
            self._graph or self._cpu_step or TorchStep(self)
        )

    @property
    def backend_name(self) -> str:
        """Which decode step runs: "cuda-graph", "cpu-kernels" or "torch"."""
        return self.backend.name

    # ---- state -------------------------------------------------------------------------------

    def _allocate(self) -> None:
        c, dev, dt = self.config, self.device, self.dtype
        H, hd = c.heads, c.head_dim
        self.ring_k = torch.zeros(H, self.N, hd, device=dev, dtype=dt)
        self.ring_v = torch.zeros(H, self.N, hd, device=dev, dtype=dt)
        self.slot_pos = torch.full((self.N,), -1, dtype=torch.long, device=dev)
        shape = (self.M, H, self.L + 1, hd)
        self.self_k = [torch.zeros(shape, device=dev, dtype=dt) for _ in range(c.layers)]
        self.self_v = [torch.zeros(shape, device=dev, dtype=dt) for _ in range(c.layers)]
        self.tokens = torch.zeros(self.history_size, dtype=torch.long)  # CPU ring of ids
        # Constants of the burst refill.
        self._heads = torch.arange(H, device=dev)
        self._self_slots = torch.arange(self.L + 1, device=dev)

    def reset(self) -> None:
        """Forget the session: position 0, empty caches."""
        self.position = 0
        # One past the highest position the token history has held since the reset: a
        # rolled-back future overwrote history slots too, so rollback reach counts from here.
        self.written_end = 0
        self.slot_pos.fill_(-1)
        self.window_of_slot = [-1] * self.M  # which window k each self-attention slot holds
        self.filled = [0] * self.M  # how many latents of that window are computed
        self._logits = torch.zeros(self.config.vocab_size, device=self.device)

    def window_start(self, k: int) -> int:
        return k * self.S

    def active_windows(self, p: int) -> range:
        """Windows k that contain position p (their L latents span p); the first owns p's logits."""
        k_lo = max(0, -(-(p - self.L + 1) // self.S))
        return range(k_lo, p // self.S + 1)

    def logits(self) -> torch.Tensor:
        """Logits [V] for the next token (from the last append or rollback)."""
        if self.position == 0:
            raise RuntimeError("no tokens yet: append at least one (e.g. BEGIN) first")
        return self._logits

    # ---- public operations -------------------------------------------------------------------

    def append(self, tokens: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Add tokens (any number: chunked prefill); return the logits [V] for the next token."""
        ids = torch.as_tensor(tokens, dtype=torch.long).flatten().cpu()
        if ids.numel() == 0:
            return self.logits()
        if int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size:
            raise ValueError(f"token ids must be in 0..{self.config.vocab_size - 1}")
        if ids.numel() == 1:
            self.decode_one_token(int(ids[0]))
        elif self._cpu_step is not None and ids.numel() <= SHORT_APPEND:
            self._append_short(ids)
        else:
            self._append_many(ids)
        self.written_end = max(self.written_end, self.position)
        return self._logits

    def rollback(self, position: int) -> None:
        """Drop the tokens at positions >= position, exactly as if they were never appended."""
        if not 0 <= position <= self.position:
            raise ValueError(f"cannot roll back to {position}: context holds {self.position}")
        if position == self.position:
            return
        if position == 0:
            self.reset()
            return
        reach = self.history_size - self.N
        if self.written_end - position > reach:
            raise ValueError(
                f"cannot roll back to {position}: at most {reach} tokens behind the furthest "
                f"position reached ({self.written_end}) "
                f"(raise history= when building the decoder)"
            )
        self.slot_pos.masked_fill_(self.slot_pos >= position, -1)  # those K/V are now wrong
        for m, k in enumerate(self.window_of_slot):
            w = self.window_start(k)
            if k < 0 or w >= position:
                self.window_of_slot[m], self.filled[m] = -1, 0
            else:
                self.filled[m] = min(self.filled[m], position - w)
        self.position = position
        self._sync_windows(position - 1)

    @torch.no_grad()
    def sample(
        self,
        params: SamplingParams,
        state: GrammarState,
        generator: torch.Generator | None = None,
        restrict: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> int:
        """Mask the logits with the controls (and `restrict`, the caller's own rules: see
        sample_token; `bias`: nats [V] added to the logits first), sample, append; returns the
        token.

        `state` (a GrammarState) is advanced with the token as the model's own. With a graph
        (cuda_graph / device_sampling) the draw and the decode of the drawn token are one
        replay; the draw then uses Gumbel-max on the generator's uniform noise, so a seed gives
        other (equally distributed) tokens than the CPU path's multinomial.
        """
        forced = forced_token(state, params)
        if self._graph is None or forced is not None:
            token = (
                forced
                if forced is not None
                else sample_token(self._biased(bias), params, state, generator, restrict)
            )
            self.append([token])
        else:
            logits = self._biased(bias)
            allowed = allowed_mask(state, params, restrict)
            noise = torch.rand(self.config.vocab_size, generator=generator)
            p = self.position
            self._advance(p)
            token = self._graph.sample(logits, p, allowed, params, noise)
            self.tokens[p % self.history_size] = token
            self.written_end = max(self.written_end, self.position)
            self._logits = self._graph.logits[0].clone()
        state.update(token, MODEL)
        return token

    def _biased(self, bias: torch.Tensor | None) -> torch.Tensor:
        logits = self.logits()
        return logits if bias is None else logits + bias.to(logits.device, logits.dtype)

    # ---- the general path: any positions of any window, one batch per window ---------------

    @torch.no_grad()
    def _append_many(self, ids: torch.Tensor) -> None:
        start, end = self.position, self.position + ids.numel()
        positions = torch.arange(start, end)
        self.tokens[positions % self.history_size] = ids
        self.slot_pos.masked_fill_(self.slot_pos >= start, -1)
        self.position = end
        self._ensure_ring(max(start, end - self.N), end - 1)
        self._sync_windows(end - 1)

    @torch.no_grad()
    def _sync_windows(self, p: int) -> None:
        """Bring every window containing p up to date; compute the logits at p."""
        windows = self.active_windows(p)
        todo = []  # (window, first latent to compute)
        for k in windows:
            m, w = k % self.M, self.window_start(k)
            if self.window_of_slot[m] != k:
                self.window_of_slot[m], self.filled[m] = k, 0
            first = w + self.filled[m]
            if k == windows[0]:
                first = min(first, p)  # the logits need latent p even if it is cached
            if first <= p:
                todo.append((k, first))
        if self._cpu_step is not None and all(first == p for _, first in todo):
            # Only latent p is missing (after a rollback: the usual case): one CpuStep call.
            low = min(self.window_start(k) for k, _ in todo) - (self.N - self.L)
            self._ensure_ring(max(0, low), p)
            rows = [(k % self.M, self.window_start(k)) for k, _ in todo]
            token = int(self.tokens[p % self.history_size])
            self._logits = self._cpu_step.decode_tokens([token], p, [rows])
        else:
            # Windows that need the same latents go in one batched pass (a short append lands
            # in every window at once): the weights are read once for all of them.
            groups: dict[int, list[int]] = {}
            for k, first in todo:
                groups.setdefault(first, []).append(k)
            for first, ks in groups.items():
                hidden = self._compute_latents(ks, first, p)
                if ks[0] == windows[0]:  # todo keeps window order: it owns p
                    self._logits = self._head(hidden)
        for k, _ in todo:
            self.filled[k % self.M] = p - self.window_start(k) + 1

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        # [1, D]: int8 dynamic-quantised Linears take 2-d inputs only.
        return self.model.head(self.model.norm(hidden[None])).float().flatten()

    def _ensure_ring(self, lo: int, hi: int) -> None:
        """Make the ring hold the cross K/V of positions lo..hi (recompute the missing ones)."""
        positions = torch.arange(lo, hi + 1, device=self.device)
        slots = positions % self.N
        missing = positions[self.slot_pos[slots] != positions]
        if missing.numel() == 0:
            return
        if int(missing[0]) < self.written_end - self.history_size:
            raise RuntimeError("token history no longer holds positions the cache needs")
        ids = self.tokens[missing.cpu() % self.history_size].to(self.device)
        model = self.model
        normed = model.cross.norm(model.embed(ids))[None]
        cos, sin = model.rotary(missing, self.dtype)
        k, v = model.cross.keys_values(normed, cos, sin)
        slots = missing % self.N
        self.ring_k[:, slots] = k[0]
        self.ring_v[:, slots] = v[0]
        self.slot_pos[slots] = missing

    @torch.no_grad()
    def _compute_latents(self, ks: list[int], first: int, p: int) -> torch.Tensor:
        """Latents first..p of the windows ks (one batch row per window, all needing the same
        positions) from the cached cross K/V; writes their self K/V; returns hidden[p] of the
        first window (the owner of p's logits)."""
        model, dev = self.model, self.device
        rows = torch.tensor([k % self.M for k in ks], device=dev)
        starts = torch.tensor([self.window_start(k) for k in ks], device=dev)
        lows = (starts - (self.N - self.L)).clamp_min(0)
        self._ensure_ring(int(lows.min()), p)
        positions = torch.arange(first, p + 1, device=dev)
        ids = self.tokens[positions.cpu() % self.history_size].to(dev)
        x = model.embed(ids)[None]  # [1, T, D]: the same tokens for every window
        cos, sin = model.rotary(positions, self.dtype)
        queries = model.cross.queries(model.cross.norm(x), cos, sin)  # [1, H, T, hd]
        sp = self.slot_pos[None, None, :]
        visible = (sp >= lows[:, None, None]) & (sp <= positions[None, :, None])  # [R, T, N]
        batch = (len(ks), -1, -1, -1)
        y = F.scaled_dot_product_attention(
            queries.expand(batch),
            self.ring_k[None].expand(batch),
            self.ring_v[None].expand(batch),
            attn_mask=visible[:, None],
        )  # [R, H, T, hd]
        x = model.cross.finish(x.expand(len(ks), -1, -1), y)
        slots = positions[None, :] - starts[:, None]  # [R, T]: each window's slots
        seen = self._self_slots[None, None, :] <= slots[:, :, None]  # [R, T, L + 1]
        heads = self._heads[None, :, None]
        for block, kbuf, vbuf in zip(model.blocks, self.self_k, self.self_v):
            q, kk, vv = block.attn.project(block.norm(x), cos, sin)  # [R, H, T, hd]
            index = (rows[:, None, None], heads, slots[:, None, :])
            kbuf.index_put_(index, kk)
            vbuf.index_put_(index, vv)
            y = F.scaled_dot_product_attention(
                q, kbuf.index_select(0, rows), vbuf.index_select(0, rows), attn_mask=seen[:, None]
            )
            x = x + block.attn.output(y)
            x = x + block.mlp(x)
        return x[0, -1]

    # ---- the hot path: one token, every window that contains it, one batch ------------------

    def decode_one_token(self, token: int) -> torch.Tensor:
        """THE decode step: append one token, return the logits [V] for the next one."""
        p = self.position
        self.tokens[p % self.history_size] = token
        self._advance(p)
        self._logits = self.backend.decode_one_token(token, p)
        self.written_end = max(self.written_end, self.position)
        return self._logits

    def windows_holding(self, p: int) -> Windows:
        """(self-attention row, window start) of each window holding p, the owner first."""
        return [(k % self.M, self.window_start(k)) for k in self.active_windows(p)]

    def _append_short(self, ids: torch.Tensor) -> None:
        """A few tokens in one CpuStep call (a player's note): each weight is read once. The
        call is split where a window starting inside it would reuse the self-attention row of
        a window an earlier token of the call is in."""
        tokens = ids.tolist()
        while tokens:
            start, rows = self.position, {}
            windows: list[list[tuple[int, int]]] = []
            for t in range(len(tokens)):
                held = self.windows_holding(start + t)
                if any(rows.setdefault(m, w) != w for m, w in held):
                    break
                windows.append(held)
            for t in range(len(windows)):
                self.tokens[(start + t) % self.history_size] = tokens[t]
                self._advance(start + t)
            self._logits = self._cpu_step.decode_tokens(tokens[: len(windows)], start, windows)
            tokens = tokens[len(windows) :]

    def _advance(self, p: int) -> None:
        """Bookkeeping of one step at position p (the token itself does not matter here)."""
        for k in self.active_windows(p):  # bookkeeping mirrors what the step computes
            m = k % self.M
            if self.window_of_slot[m] != k:
                # Only a window starting at p may be new; the others were synced before.
                assert self.window_start(k) == p, "streaming state out of step"
                self.window_of_slot[m] = k
            self.filled[m] = p - self.window_start(k) + 1
        self.position = p + 1

    @torch.no_grad()
    def refill_latents(self) -> None:
        """One burst refill: recompute the last R latents of the window that owns the last
        position from the cached cross-attention K/V (what a rollback past a window start
        costs). The results equal what the caches hold, so the state stays as it was."""
        p = self.position - 1
        k = self.active_windows(p)[0]
        first = max(self.window_start(k), p - self.R + 1)
        self._compute_latents([k], first, p)
