"""A preset's model, ready to decode: device, dtype and quantisation chosen in one place.

`livegen continue`, `livegen bench` and the jam engine all call load_preset_model, so they run
the same weights the same way:

- device: "auto" (or None) picks CUDA, then MPS, then the CPU;
- dtype: bfloat16 on CUDA (small decode steps are launch-bound; bf16 halves the cache reads),
  float32 on the CPU (bf16 gave nothing there: DESIGN.md) and on MPS (bf16 there needs a recent
  macOS and was never measured by this project);
- [model].quantize = "int8": dynamic int8 quantisation of every Linear (weights int8,
  activations quantised per call), CPU only: with device "auto" on a GPU machine the preset
  runs unquantised on the GPU; asking for int8 on a named GPU is an error. Its NLL cost is measured by
  benchmarks/bench_decode.py and recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from livegen.kernels.errors import LivegenError, ModelFileError
from livegen.models.checkpoint import load_model
from livegen.models.perceiver_ar import PerceiverAR
from livegen.models.preset import Preset

DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(LivegenError):
    """A device that is not present (e.g. --device cuda on a machine without a GPU)."""


@dataclass(frozen=True)
class LoadedModel:
    model: PerceiverAR
    device: torch.device
    dtype: torch.dtype
    quantized: bool

    def __iter__(self):
        """`model, device = load_preset_model(...)` unpacks like a pair."""
        return iter((self.model, self.device))

    def describe(self) -> str:
        what = "int8 dynamic" if self.quantized else str(self.dtype).removeprefix("torch.")
        return f"{self.device.type} {what}"


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """ "auto"/None: CUDA, then MPS, then CPU. A named device must be present."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise DeviceError(f"unknown device {name!r}; use one of {', '.join(DEVICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda: no CUDA GPU is visible to torch on this machine")
    if kind == "mps" and not mps_available():
        raise DeviceError("--device mps: MPS (Apple GPU) is not available on this machine")
    return torch.device(name)


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def quantize_int8(model: PerceiverAR) -> PerceiverAR:
    """Dynamic int8 quantisation of the Linear layers (CPU). Returns a new module."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which this project does not
        # depend on; the eager dynamic path still works in torch 2.13 and is what we measured.
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    return quantized.eval()


def load_model_for(
    model_dir: object,
    *,
    device: str | torch.device | None = None,
    quantize: str = "none",
    dtype: torch.dtype | None = None,
) -> LoadedModel:
    """Load a model folder onto a device, cast, optionally quantise (see the module notes)."""
    target = choose_device(device)
    if quantize not in ("none", "int8"):
        raise ModelFileError(f"quantize must be 'none' or 'int8', got {quantize!r}")
    model = load_model(model_dir)  # float32 on the CPU
    if quantize == "int8" and target.type != "cpu" and device not in (None, "auto"):
        raise DeviceError(
            f"int8 quantisation runs on the CPU only; this preset cannot use {target}"
        )
    # int8 is how a preset says "on a CPU, decode in int8": where auto found a GPU, the GPU's
    # own precision is faster than any CPU path, so the preset runs there unquantised.
    if quantize == "int8" and target.type == "cpu":
        return LoadedModel(quantize_int8(model), target, torch.float32, True)
    chosen = dtype if dtype is not None else default_dtype(target)
    model = model.to(device=target, dtype=chosen).eval()
    return LoadedModel(model, target, chosen, False)


def load_preset_model(
    preset: Preset,
    device: str | torch.device | None = None,
    *,
    quantize: str | None = None,
    dtype: torch.dtype | None = None,
) -> LoadedModel:
    """The preset's model on `device` ("auto"/None: the best present), its dtype and
    quantisation ([model].quantize unless `quantize` overrides it)."""
    return load_model_for(
        preset.model_dir,
        device=device,
        quantize=preset.model.quantize if quantize is None else quantize,
        dtype=dtype,
    )
