"""Model and codec folders whose weights are not the model's: each refused with the file and
what is wrong named (models/checkpoint.py match_weights), never loaded half-way."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from livegen.kernels.errors import ModelFileError
from livegen.models.checkpoint import WEIGHTS_FILE, load_model, save_model
from livegen.models.codec import Codec
from livegen.models.codec_config import CodecConfig
from livegen.models.codec_files import load_codec, save_codec
from livegen.models.config import PerceiverARConfig
from livegen.models.perceiver_ar import PerceiverAR


def rewritten(folder: Path, change) -> Path:  # noqa: ANN001
    """`folder`'s weights with `change(tensors)` applied, saved back."""
    tensors = load_file(folder / WEIGHTS_FILE)
    change(tensors)
    save_file(tensors, folder / WEIGHTS_FILE)
    return folder


def drop(name: str):  # noqa: ANN201
    return lambda tensors: tensors.pop(name)


def add(name: str):  # noqa: ANN201
    return lambda tensors: tensors.update({name: torch.zeros(2)})


def reshape(name: str):  # noqa: ANN201
    return lambda tensors: tensors.update({name: torch.zeros(3, 3)})


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    config = PerceiverARConfig(context=64, latents=16, dim=32, heads=2, layers=1)
    return save_model(PerceiverAR(config), tmp_path / "model")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (drop("head.weight"), "missing ['head.weight']"),
        (add("extra.weight"), "unexpected ['extra.weight']"),
        (reshape("head.weight"), "head.weight has shape (3, 3)"),
    ],
    ids=["missing", "unexpected", "shape"],
)
def test_a_model_whose_weights_are_not_its_configs_is_refused(model_dir, change, said) -> None:
    load_model(model_dir)  # as saved: loads
    rewritten(model_dir, change)
    with pytest.raises(ModelFileError, match=r"model\.safetensors: ") as error:
        load_model(model_dir)
    assert said in str(error.value)


def test_a_codec_may_leave_out_its_training_state_and_nothing_else(tmp_path: Path) -> None:
    config = CodecConfig(
        sample_rate=8000, hop=64, fold=4, analysis_window=64, channels=16, encoder_depth=2,
        decoder_depth=2, kernel=3, latent_dim=8, levels=3, codebook_size=16, min_levels=1,
    )  # fmt: skip
    slim = save_codec(Codec(config), tmp_path / "slim", inference_only=True)
    assert not any("embed_avg" in name for name in load_file(slim / WEIGHTS_FILE))
    load_codec(slim)  # the EMA statistics a preset leaves out are made anew
    embed = next(n for n in load_file(slim / WEIGHTS_FILE) if n.endswith(".embed"))
    rewritten(slim, drop(embed))
    with pytest.raises(ModelFileError, match="weights do not match the config") as error:
        load_codec(slim)
    assert embed in str(error.value)
