"""The bundled resources (taxonomy, default model, demo images, icons): the ``deepmark.resources`` package,
found through ``importlib.resources`` wherever the package is installed (a wheel, an editable checkout, a
frozen build), or the folder named by ``$DEEPMARK_RESOURCES``."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from deepmark.core.errors import DeepMarkError

RESOURCES_PACKAGE = "deepmark.resources"


def resources_dir() -> Path:
    """The resources folder on disk. onnxruntime, OpenCV and Alembic open files by path, so the package
    must be installed as plain files (every supported install is); DeepMarkError otherwise."""
    override = os.environ.get("DEEPMARK_RESOURCES")
    if override:
        return Path(override)
    root = resources.files(RESOURCES_PACKAGE)
    path = Path(str(root))
    if not path.is_dir():
        raise DeepMarkError(f"the bundled resources are not a folder on disk ({root}); reinstall DeepMark Studio")
    return path


def resource_path(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)
