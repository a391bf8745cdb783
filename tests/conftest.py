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


REFINER_CROP = (64, 64)  # the test refiner's crop (W, H): tiny, so the refiner tests stay fast
DEMO_DATA = Path(__file__).resolve().parent.parent / "resources" / "demo"


@pytest.fixture(scope="session")
def refiner_checkpoint(tmp_path_factory, semantic62):
    """A refiner checkpoint with untrained weights — the identity refiner (deepmark.core.refinement.network) —
    at ``REFINER_CROP``, written as ``train-refiner`` writes it (no training needed)."""
    import torch

    from deepmark.core.network.checkpoint import save_checkpoint
    from deepmark.core.refinement.config import parse_refiner_config
    from deepmark.core.refinement.network import RefinerNet
    from deepmark.core.refinement.train import DetectorRun, RefinerState, checkpoint_payload

    torch.manual_seed(0)
    config = parse_refiner_config({"data": {"train": "x", "detector": "d.onnx", "crop_size": list(REFINER_CROP)}})
    model = RefinerNet(semantic62.num_groups, 0.25, (32, 32, 16, 16), 16)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    run = DetectorRun("deepmark-default-fp32.onnx", "0" * 64, True, (0.85, 0.95, 1.1), {})
    path = tmp_path_factory.mktemp("refiner") / "refiner.pt"
    save_checkpoint(path, checkpoint_payload(model, optimizer, scheduler, RefinerState(), config, semantic62,
                                             {"swap": [0.0] * 13}, run))
    return path


@pytest.fixture(scope="session")
def refiner_onnx(refiner_checkpoint):
    """``refiner_checkpoint`` exported (fp32)."""
    from deepmark.core.refinement.export import export_refiner

    return export_refiner(refiner_checkpoint, refiner_checkpoint.with_suffix(".onnx"))


@pytest.fixture(scope="session")
def refiner_int8(refiner_onnx):
    """``refiner_onnx`` quantised (static int8), calibrated on the demo images' garments."""
    from deepmark.core.refinement.export import calibration_batches, quantize_refiner

    out = refiner_onnx.with_name("refiner-int8.onnx")
    return quantize_refiner(refiner_onnx, out, calibration_batches(refiner_onnx, DEMO_DATA, 3))
