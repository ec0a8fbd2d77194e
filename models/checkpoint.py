"""Model files: a folder with a readable config.json and the weights as model.safetensors.

Pickles (.pt, .bin, .pth, .ckpt from torch.save) can run code when loaded, so they are refused
with a message saying what to do instead; safetensors holds tensors and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from livegen.kernels.atomic_write import write_bytes
from livegen.kernels.errors import ModelFileError
from livegen.models.config import PerceiverARConfig
from livegen.models.perceiver_ar import PerceiverAR

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "livegen-perceiver-ar"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle"}


def save_model(
    model: PerceiverAR,
    directory: str | Path,
    *,
    metadata: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write config.json + model.safetensors into directory (created); returns the folder.

    metadata (JSON-able: training steps, data, loss...) is stored in config.json under "meta".
    dtype (e.g. torch.float16) stores the weights in that precision: a shipped preset half the
    size; load_model casts them back to the model's float32.
    """
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    if any(not t.is_floating_point() for t in tensors.values()):
        raise ValueError("save_model takes a float model (quantise after loading, not before)")
    bad = _non_finite(tensors)
    if bad:
        raise ModelFileError(f"{directory}: not saving weights that are not finite ({bad})")
    if dtype is not None:
        tensors = {name: t.to(dtype) for name, t in tensors.items()}
    header = {"format": FORMAT, "version": FORMAT_VERSION, "config": model.config.to_dict()}
    if metadata:
        header["meta"] = metadata
    write_bytes(directory / WEIGHTS_FILE, save(tensors, metadata={"format": FORMAT}))
    text = json.dumps(header, indent=2, sort_keys=False) + "\n"
    write_bytes(directory / CONFIG_FILE, text.encode("utf-8"))
    return directory


def _non_finite(tensors: dict[str, torch.Tensor]) -> str:
    """'' when every weight is finite, else which tensors hold NaN or inf (the first few)."""
    names = [name for name, t in tensors.items() if not bool(torch.isfinite(t).all())]
    if not names:
        return ""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"NaN or inf in {', '.join(names[:3])}{more}"


def refuse_pickles(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelFileError(
            f"{path}: refusing to load a pickle ({path.suffix}) file: it can run arbitrary code. "
            f"Convert it to a livegen model folder ({CONFIG_FILE} + {WEIGHTS_FILE})"
        )


def read_header(
    directory: str | Path, fmt: str, version: int, what: str
) -> tuple[dict[str, Any], Path]:
    """A folder's config.json, checked to be a livegen file of format `fmt` at `version`
    (`what` names the folder's kind in the errors: "model", "codec")."""
    path = Path(directory) / CONFIG_FILE
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing (a {what} folder needs {CONFIG_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: not readable JSON: {error}") from None
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise ModelFileError(f"{path}: not a livegen {what} config (format != {fmt!r})")
    if header.get("version") != version:
        raise ModelFileError(f"{path}: {what} file version {header.get('version')!r} unsupported")
    return header, path


def load_config(directory: str | Path) -> tuple[PerceiverARConfig, dict[str, Any]]:
    """The model config and the "meta" table of a model folder."""
    header, _ = read_header(directory, FORMAT, FORMAT_VERSION, "model")
    return PerceiverARConfig.from_dict(header.get("config")), dict(header.get("meta") or {})


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing (a model folder needs {WEIGHTS_FILE})") from None
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read: {error}") from None
    if data[:2] == b"PK" or data[:1] == b"\x80":  # torch.save zip archive or a raw pickle
        raise ModelFileError(f"{path}: this is a pickle (torch.save), not safetensors; refused")
    try:
        return load(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{path}: not a valid safetensors file: {error}") from None


def match_weights(
    file: Path,
    tensors: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
    optional: tuple[str, ...] = (),
) -> None:
    """Refuse `file`'s `tensors` unless they are the module's `expected` state by name and
    shape (names ending in one of `optional` may be missing: state a preset leaves out)."""
    missing = sorted(
        name for name in set(expected) - set(tensors) if name.rsplit(".", 1)[-1] not in optional
    )
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{file}: weights do not match the config "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise ModelFileError(
                f"{file}: {name} has shape {tuple(tensor.shape)}, "
                f"the config needs {tuple(expected[name].shape)}"
            )


def load_model(directory: str | Path, device: str | torch.device | None = None) -> PerceiverAR:
    """A model folder (or a path to its config.json / model.safetensors) -> PerceiverAR in eval."""
    path = Path(directory)
    refuse_pickles(path)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise ModelFileError(f"{path}: no such model folder")
    if not (path / WEIGHTS_FILE).exists():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            refuse_pickles(path / pickles[0])
    config, _ = load_config(path)
    tensors = read_weights(path / WEIGHTS_FILE)
    model = PerceiverAR(config)
    expected = model.state_dict()
    match_weights(path / WEIGHTS_FILE, tensors, expected)
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise ModelFileError(f"{path / WEIGHTS_FILE}: {name} is not a float tensor")
    bad = _non_finite(tensors)
    if bad:
        raise ModelFileError(
            f"{path / WEIGHTS_FILE}: weights are not finite ({bad}): the model diverged in "
            "training; use an earlier checkpoint"
        )
    model.load_state_dict({k: t.to(expected[k].dtype) for k, t in tensors.items()})
    model.eval()
    if device is not None:
        model.to(device)
    return model
