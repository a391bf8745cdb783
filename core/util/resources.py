"""Where the bundled resources live (``resources/`` beside the packages, or ``$DEEPMARK_RESOURCES``)."""

from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    override = os.environ.get("DEEPMARK_RESOURCES")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)
