"""Where DeepMark keeps files it can always make again (thumbnails, raw heads of the network): the
user cache folder, or ``$DEEPMARK_CACHE_DIR`` (tests point it at a temporary folder)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from core.store.engine import APP_NAME

CACHE_ENV = "DEEPMARK_CACHE_DIR"


def cache_root() -> Path:
    """``$DEEPMARK_CACHE_DIR`` when set, else ``<user cache dir>/deepmark-studio`` (not created here)."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def thumbnails_dir() -> Path:
    return cache_root() / "thumbnails"


def heads_dir() -> Path:
    return cache_root() / "heads"
