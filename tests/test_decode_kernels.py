"""The CPU decode kernels (kernels/decode_kernels.py) against the torch ops they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from livegen.kernels import decode_kernels as K
from livegen.models.config import PerceiverARConfig
from livegen.models.cpu_decode import RowsLinear, step_supported, with_row_kernels
from livegen.models.loading import quantize_int8
from livegen.models.perceiver_ar import PerceiverAR
from livegen.models.rotary import apply_rotary, inverse_frequencies, rotary_tables
from livegen.models.streaming import StreamingDecoder

gen = torch.Generator().manual_seed(0)
SCALE = np.float32(8**-0.5)  # float32 scalars, as CpuStep passes them (one compiled signature)


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen)


@pytest.mark.parametrize("rows", [1, 2, 3, 6, 9])
def test_linear_rows_equals_f_linear(rows):
    weight, x = randn(48, 40), randn(rows, 40)
    out = np.empty((rows, 48), np.float32)
    K.linear_rows(weight.numpy(), x.numpy(), out)
    torch.testing.assert_close(torch.from_numpy(out), F.linear(x, weight), atol=1e-5, rtol=1e-5)


def test_cross_attend_equals_masked_softmax_attention():
    heads, n, hd = 3, 50, 8
    q, keys, values = randn(heads, hd), randn(heads, n, hd), randn(heads, n, hd)
    slot_pos = torch.randperm(n, generator=gen) + 100  # a ring: slots out of position order
    slot_pos[7] = -1  # an empty slot is never seen
    lo, hi = np.array([100, 120, 149]), 140
    out = np.empty((3, heads, hd), np.float32)
    K.cross_attend(q.numpy(), keys.numpy(), values.numpy(), slot_pos.numpy(), lo, hi, SCALE, out)
    for m in range(3):
        visible = (slot_pos >= int(lo[m])) & (slot_pos <= hi)
        if not visible.any():  # row 2 sees nothing (lo > hi): zeros, not a division by 0
            assert not out[m].any()
            continue
        expected = F.scaled_dot_product_attention(q[:, None], keys, values, attn_mask=visible)
        torch.testing.assert_close(torch.from_numpy(out[m]), expected[:, 0], atol=1e-5, rtol=0)


def test_range_attend_reads_each_query_s_row_and_slot_range():
    rows, heads, slots, hd = 3, 2, 10, 8
    q, keys, values = (
        randn(2, heads, hd),
        randn(rows, heads, slots, hd),
        randn(rows, heads, slots, hd),
    )
    which, lo, hi = np.array([2, 0]), np.array([0, 3]), np.array([6, 3])
    out = np.empty((2, heads, hd), np.float32)
    K.range_attend(q.numpy(), keys.numpy(), values.numpy(), which, lo, hi, SCALE, out)
    for a in range(2):
        m, span = which[a], slice(lo[a], hi[a] + 1)
        expected = F.scaled_dot_product_attention(
            q[a][:, None], keys[m][:, span], values[m][:, span]
        )
        torch.testing.assert_close(torch.from_numpy(out[a]), expected[:, 0], atol=1e-5, rtol=0)


def test_layer_norm_and_gelu_equal_torch():
    norm = torch.nn.LayerNorm(24)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = randn(3, 24) * 5 + 2
    out = np.empty((3, 24), np.float32)
    K.layer_norm(
        x.numpy(), norm.weight.detach().numpy(), norm.bias.detach().numpy(), np.float32(1e-5), out
    )
    torch.testing.assert_close(torch.from_numpy(out), norm(x).detach(), atol=1e-5, rtol=1e-5)
    y = x.clone()
    K.gelu(y.numpy())
    torch.testing.assert_close(y, F.gelu(x), atol=1e-5, rtol=1e-5)


def test_rotary_rows_and_rotate_equal_models_rotary():
    hd, positions = 16, torch.tensor([0, 1, 4097, 10_000_000, 2**40])
    cos, sin = np.empty((5, hd), np.float32), np.empty((5, hd), np.float32)
    K.rotary_rows(positions.numpy(), inverse_frequencies(hd, 10000.0).numpy(), cos, sin)
    t_cos, t_sin = rotary_tables(positions, hd, 10000.0, torch.float32)
    torch.testing.assert_close(torch.from_numpy(cos), t_cos, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.from_numpy(sin), t_sin, atol=1e-6, rtol=0)
    x = randn(5, 3, hd)  # 5 positions, 3 heads each
    rotated = x.clone()
    K.rotate(rotated.numpy(), cos, sin)
    expected = apply_rotary(x, t_cos[:, None], t_sin[:, None])
    torch.testing.assert_close(rotated, expected, atol=1e-6, rtol=0)


def tiny_model() -> PerceiverAR:
    torch.manual_seed(0)
    config = PerceiverARConfig(context=64, latents=16, dim=32, heads=2, layers=2)
    return PerceiverAR(config).eval()


def test_row_kernel_view_shares_weights_and_leaves_the_model_alone():
    model = tiny_model()
    view = with_row_kernels(model)
    assert isinstance(view.cross.q, RowsLinear) and type(model.cross.q) is torch.nn.Linear
    assert view.cross.q.weight is model.cross.q.weight
    x = randn(2, 1, 32)
    with torch.no_grad():
        torch.testing.assert_close(view.cross.q(x), model.cross.q(x), atol=1e-6, rtol=0)
        many = randn(20, 32)  # past ROWS_MAX: torch's product
        torch.testing.assert_close(view.cross.q(many), model.cross.q(many), atol=1e-6, rtol=0)
    # The view's containers are its own: what is registered on it stays off the model.
    view.norm.register_buffer("extra", torch.zeros(1))
    calls = []
    view.embed.register_forward_hook(lambda *args: calls.append(1))
    assert "norm.extra" not in model.state_dict()
    model.embed(torch.tensor([1]))
    assert not calls  # the hook is the view's alone
    view.embed(torch.tensor([1]))
    assert calls == [1]


def test_which_models_get_the_numba_step():
    model = tiny_model()
    assert step_supported(model)
    assert not step_supported(quantize_int8(model))  # int8 Linears: the torch step
    assert StreamingDecoder(model).backend_name == "cpu-kernels"
    assert StreamingDecoder(model, cpu_kernels=False).backend_name == "torch"
    assert StreamingDecoder(quantize_int8(model)).backend_name == "torch"
    assert StreamingDecoder(model, dtype=torch.bfloat16).backend_name == "torch"
    assert StreamingDecoder(model, device_sampling=True).backend_name == "cuda-graph"


def test_the_torch_step_with_numba_attention_is_exact():
    """The path int8 models take (the torch step with the numba attention), checked here on
    float weights (RowsLinear serves too) against the plain torch step at a float tolerance."""
    model = tiny_model()
    # numba_step=False: the torch step, with the kernels inside it.
    kernels = StreamingDecoder(model, numba_step=False)
    plain = StreamingDecoder(model, cpu_kernels=False)
    assert kernels.backend_name == "torch" and kernels.cpu_kernels
    generator = torch.Generator().manual_seed(3)
    for token in torch.randint(0, 388, (200,), generator=generator).tolist():  # wraps the ring
        got, expected = kernels.append([token]), plain.append([token])
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
