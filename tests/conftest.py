"""Shared fixtures: the bundled taxonomy and groupings (loaded once per session), and one throwaway
PostgreSQL server for every test that needs one."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "core" / "store"))
import store_pg  # noqa: E402

from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy  # noqa: E402


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server of its own (skipped when none can be started, unless CI requires one)."""
    server = store_pg.start_server()
    if isinstance(server, str):
        if os.environ.get("DEEPMARK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"DEEPMARK_REQUIRE_POSTGRES=1 but {server}")
        pytest.skip(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def taxonomy():
    return load_taxonomy()


@pytest.fixture(scope="session")
def semantic62(taxonomy):
    return load_grouping("semantic62", taxonomy)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, taxonomy, semantic62):
    """An exported MobileNetV2 CenterNet with random weights at 128×96 (real network outputs, fast)."""
    import torch

    from deepmark.core.formats.model_file import model_info
    from deepmark.core.network import build_model
    from deepmark.core.training.export import export_onnx

    torch.manual_seed(0)
    model = build_model("mobilenetv2", semantic62, head_conv=32).eval()
    return export_onnx(model, model_info("mobilenetv2", semantic62, taxonomy, (128, 96)),
                       tmp_path_factory.mktemp("model") / "tiny.onnx")
