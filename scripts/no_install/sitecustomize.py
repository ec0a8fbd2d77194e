"""Import livegen from this source tree without installing it (scripts/gpu_check.sh uses this).

Why: a GPU machine may come with a CUDA build of torch already in its Python and no network, so
`pip install -e .` (which needs the build back-end, and would try to pull the pinned torch) is
not an option there. pyproject.toml maps the top-level folders into one namespace
(`livegen.models` is models/, ...); plain PYTHONPATH cannot express that mapping, so this file,
put on PYTHONPATH, installs a finder that does. Python imports `sitecustomize` at start-up in
every process, torchrun's workers and pytest's included.

The finder goes first on sys.meta_path: with the repository as the working directory, Python
would otherwise find livegen/ itself through sys.path and then miss livegen.models.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The same mapping as [tool.setuptools] package-dir in pyproject.toml.
PACKAGES = {
    "livegen": REPO / "livegen",
    "livegen.kernels": REPO / "kernels",
    "livegen.models": REPO / "models",
    "livegen.training": REPO / "training",
    "livegen.presets": REPO / "presets",
}


class SourceTreeFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        folder = PACKAGES.get(name)
        if folder is None or not (folder / "__init__.py").is_file():
            return None  # submodules: found by the normal finder through the package's __path__
        return importlib.util.spec_from_file_location(
            name, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


def run_shadowed_sitecustomize() -> None:
    """This file hides any sitecustomize further down sys.path (a Python image may set itself
    up in one): find that one and run it too."""
    here = str(Path(__file__).resolve().parent)
    rest = [entry for entry in sys.path if entry and str(Path(entry).resolve()) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


if (REPO / "pyproject.toml").is_file() and not any(
    isinstance(finder, SourceTreeFinder) for finder in sys.meta_path
):
    sys.meta_path.insert(0, SourceTreeFinder())
    run_shadowed_sitecustomize()
