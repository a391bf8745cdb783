"""Store fixtures: a project on each back end (a real SQLite file in tmp_path, and a fresh database on a
throwaway PostgreSQL server), and a small synthetic DeepFashion2 dataset with images.

The PostgreSQL half is skipped, with the reason, when no server binaries are installed; with
``DEEPMARK_REQUIRE_POSTGRES=1`` (CI) it fails instead, so a missing server cannot pass unnoticed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


from deepmark.core.store import Project  # noqa: E402
from deepmark.core.synthetic import SynthConfig, generate_dataset  # noqa: E402

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def project_url(backend, tmp_path, request) -> str:
    """A URL of a new, empty database on ``backend``."""
    if backend == "sqlite":
        return str(tmp_path / "project.deepmark")
    return request.getfixturevalue("pg_server").new_database()


@pytest.fixture
def project(project_url, tmp_path):
    with Project.create(project_url, root=tmp_path) as opened:
        yield opened


@pytest.fixture
def sqlite_project(tmp_path):
    with Project.create(tmp_path / "project.deepmark", root=tmp_path) as opened:
        yield opened


@pytest.fixture(scope="session")
def df2_master(tmp_path_factory) -> Path:
    """A DF2 dataset: train/ (12 images) and validation/ (4 images), 96×96 synthetic garments."""
    root = tmp_path_factory.mktemp("df2-master")
    config = SynthConfig(image_size=(96, 96), max_items=3)
    generate_dataset(root / "train", 12, seed=3, config=config)
    generate_dataset(root / "validation", 4, seed=4, config=config, start=101)
    return root


@pytest.fixture
def df2(df2_master, tmp_path) -> Path:
    """A private copy of the dataset inside the test's folder (the project root)."""
    target = tmp_path / "df2"
    shutil.copytree(df2_master, target)
    return target
