"""The wheel a user installs holds the one `livegen` namespace and nothing at the top level
that could shadow other projects (`models`, `kernels`, `training`)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("livegen-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_every_source_file_is_in_the_wheel(wheel_names: set[str]) -> None:
    """Every module (subpackages such as livegen/tui included) and every Textual stylesheet."""
    roots = {"livegen": "livegen", "kernels": "livegen/kernels", "models": "livegen/models"}
    roots["training"] = "livegen/training"
    for folder, package in roots.items():
        for pattern in ("*.py", "*.tcss"):
            for source in (ROOT / folder).rglob(pattern):
                if "__pycache__" in source.parts:
                    continue
                shipped = f"{package}/{source.relative_to(ROOT / folder).as_posix()}"
                assert shipped in wheel_names, f"{folder}/{source.name} not shipped"


def test_presets_ship_as_package_data(wheel_names: set[str]) -> None:
    for preset in (ROOT / "presets").glob("*.toml"):
        assert f"livegen/presets/{preset.name}" in wheel_names
    for weights in (ROOT / "presets").glob("*/model.safetensors"):
        assert f"livegen/presets/{weights.parent.name}/model.safetensors" in wheel_names


def test_no_bare_top_level_packages(wheel_names: set[str]) -> None:
    tops = {name.split("/")[0] for name in wheel_names if not name.startswith("livegen-")}
    assert tops == {"livegen"}


def test_entry_points_declared(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("entry_points.txt")]
        text = archive.read(name).decode()
    assert "livegen = livegen.cli:main" in text
    assert "livegen-train = livegen.training.cli:main" in text
