"""Numba kernels for decoding one token at a time on a CPU.

A decode step multiplies a handful of rows (one per streaming window) by every weight matrix
and reads the whole cross-attention cache: memory-bound work. torch's CPU paths for it run
far below this machine's memory bandwidth: MKL's GEMM at 1-8 rows reaches about a third of
it, and the batched products plus softmax of attention read the cache several times. These
loops read each weight and each cached key/value once, in order, and numba vectorises the
inner products (BENCHMARKS.md, "CPU decode kernels", has the measurements).

All arrays are float32 and C-contiguous; callers (models/cpu_decode.py) guarantee both.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TWO_PI = 2.0 * math.pi


@njit(fastmath=True, cache=True)
def linear_rows(weight, x, out):  # pragma: no cover - compiled
    """out[r] = weight @ x[r] for weight [O, I], x [R, I], out [R, O].

    Each weight row is read once, from memory, for all rows of x; rows go in pairs (two
    accumulators share every weight load: 2.8 ms for a 16 M model's weights at 2 rows, against
    3.3 ms one row at a time).
    """
    rows, inner = x.shape
    for o in range(weight.shape[0]):
        r = 0
        while r + 1 < rows:
            a0 = np.float32(0.0)
            a1 = np.float32(0.0)
            for i in range(inner):
                w = weight[o, i]
                a0 += w * x[r, i]
                a1 += w * x[r + 1, i]
            out[r, o] = a0
            out[r + 1, o] = a1
            r += 2
        if r < rows:
            a0 = np.float32(0.0)
            for i in range(inner):
                a0 += weight[o, i] * x[r, i]
            out[r, o] = a0


@njit(fastmath=True, cache=True)
def cross_attend(q, keys, values, slot_pos, lo, hi, scale, out):  # pragma: no cover - compiled
    """Attention of one query per head over a ring of keys, masked per row by position.

    q [H, hd]; keys, values [H, N, hd]; slot_pos [N] (the position each slot holds, -1 for
    none). Row m sees the slots whose position lies in lo[m]..hi; out [M, H, hd]. Every row
    shares the scores, so keys and values are each read once for all rows.
    """
    heads, n_slots, hd = keys.shape
    rows = lo.shape[0]
    scores = np.empty(n_slots, np.float32)
    weights = np.empty((rows, n_slots), np.float32)
    acc = np.empty(hd, np.float32)
    for h in range(heads):
        for n in range(n_slots):
            s = np.float32(0.0)
            for d in range(hd):
                s += q[h, d] * keys[h, n, d]
            scores[n] = s * scale
        for m in range(rows):
            top = np.float32(-3.0e38)
            for n in range(n_slots):
                if lo[m] <= slot_pos[n] <= hi and scores[n] > top:
                    top = scores[n]
            total = np.float32(0.0)
            for n in range(n_slots):
                w = np.float32(0.0)
                if lo[m] <= slot_pos[n] <= hi:
                    w = np.exp(scores[n] - top)
                weights[m, n] = w
                total += w
            inv = np.float32(1.0) / total if total > 0.0 else np.float32(0.0)  # none visible: 0
            for n in range(n_slots):
                weights[m, n] *= inv
        for m in range(rows):
            acc[:] = 0.0
            for n in range(n_slots):
                w = weights[m, n]
                if w != 0.0:
                    for d in range(hd):
                        acc[d] += w * values[h, n, d]
            out[m, h, :] = acc


@njit(fastmath=True, cache=True)
def range_attend(q, keys, values, rows, lo, hi, scale, out):  # pragma: no cover - compiled
    """Per-row attention over a contiguous range of slots.

    q [A, H, hd]; keys, values [M, H, S, hd]; query a reads keys[rows[a]], slots lo[a]..hi[a];
    out [A, H, hd].
    """
    _, heads, _, hd = keys.shape
    weights = np.empty(keys.shape[2], np.float32)
    for a in range(q.shape[0]):
        m = rows[a]
        for h in range(heads):
            top = np.float32(-3.0e38)
            for n in range(lo[a], hi[a] + 1):
                s = np.float32(0.0)
                for d in range(hd):
                    s += q[a, h, d] * keys[m, h, n, d]
                s *= scale
                weights[n] = s
                top = max(top, s)
            total = np.float32(0.0)
            for n in range(lo[a], hi[a] + 1):
                weights[n] = np.exp(weights[n] - top)
                total += weights[n]
            for d in range(hd):
                out[a, h, d] = 0.0
            for n in range(lo[a], hi[a] + 1):
                w = weights[n] / total
                for d in range(hd):
                    out[a, h, d] += w * values[m, h, n, d]


@njit(fastmath=True, cache=True)
def layer_norm(x, weight, bias, eps, out):  # pragma: no cover - compiled
    """out[r] = LayerNorm(x[r]) for x, out [R, D]."""
    rows, dim = x.shape
    for r in range(rows):
        mean = np.float32(0.0)
        for i in range(dim):
            mean += x[r, i]
        mean /= dim
        var = np.float32(0.0)
        for i in range(dim):
            var += (x[r, i] - mean) ** 2
        inv = np.float32(1.0) / np.sqrt(var / dim + eps)
        for i in range(dim):
            out[r, i] = (x[r, i] - mean) * inv * weight[i] + bias[i]


@njit(fastmath=True, cache=True)
def gelu(x):  # pragma: no cover - compiled
    """x = GELU(x) in place (the exact, erf form torch uses by default), x [R, D]."""
    rows, dim = x.shape
    for r in range(rows):
        for i in range(dim):
            v = x[r, i]
            x[r, i] = 0.5 * v * (1.0 + math.erf(v * 0.7071067811865476))


@njit(cache=True)
def rotary_rows(positions, inv_freq, cos, sin):  # pragma: no cover - compiled
    """cos and signed sin tables [T, hd] of positions [T], as models/rotary.py makes them: the
    angle reduced modulo 2 pi in float64, pairs interleaved, sin signed (-, +) per pair."""
    for t in range(positions.shape[0]):
        for i in range(inv_freq.shape[0]):
            angle = (positions[t] * inv_freq[i]) % TWO_PI
            c, s = math.cos(angle), math.sin(angle)
            cos[t, 2 * i] = c
            cos[t, 2 * i + 1] = c
            sin[t, 2 * i] = -s
            sin[t, 2 * i + 1] = s


@njit(fastmath=True, cache=True)
def rotate(x, cos, sin):  # pragma: no cover - compiled
    """Rotate x [R, G, hd] in place, row r by tables cos/sin [R, hd] (models/rotary.apply_rotary;
    G: heads that share a position)."""
    rows, groups, hd = x.shape
    for r in range(rows):
        for g in range(groups):
            for i in range(0, hd, 2):
                a, b = x[r, g, i], x[r, g, i + 1]
                x[r, g, i] = a * cos[r, i] + b * sin[r, i]
                x[r, g, i + 1] = b * cos[r, i + 1] + a * sin[r, i + 1]
