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


@pytest.fixture
def mistaken_project(tmp_path, taxonomy):
    """``make(model_path)``: the demo project (28 imported garments) whose model run of ``model_path`` predicted
    every garment where its label is (±1.5 px), and whose labels were then imported with four injected errors:
    landmarks moved by 0.3 × the garment's size (two items), two left/right pairs swapped, a wrong category.
    Returns (project, {annotation id: what was injected})."""
    import numpy as np

    from deepmark.core.domain.structures import Detection
    from deepmark.core.store import ItemData
    from deepmark.core.studio.display import open_demo_project

    made = []

    def make(model_path):
        project, _ = open_demo_project(tmp_path / "mistaken")
        made.append(project)
        run = project.model_runs.add("the model's run", model_path=model_path)
        rng = np.random.default_rng(0)
        items = {i.id: i for image_id in project.images.ids() for i in project.annotations.for_image(image_id)}
        for image_id in project.images.ids():
            detections = []
            for item in (i for i in items.values() if i.image_id == image_id):
                marks = np.array(item.landmarks, np.float64)
                marks[:, :2] += rng.normal(0, 1.5, (len(marks), 2))
                marks[:, 2] = 0.8
                detections.append(Detection(item.category_id, 0.9, 0.9, np.array(item.box, np.float64), marks,
                                            np.ones(len(marks), bool)))
            project.predictions.add(image_id, run.id, detections)
        injected = {}

        def relabel(item, what, category_id=None, landmarks=None):
            project.annotations.delete_item(item.id)
            data = ItemData(category_id=category_id or item.category_id, box=np.array(item.box),
                            landmarks=np.array(item.landmarks if landmarks is None else landmarks))
            receipt = project.annotations.add_item(item.image_id, data, origin="imported")
            injected[receipt.annotation_id] = what

        for annotation_id in (17, 26):  # a short sleeve top, a short sleeve outwear: four landmarks moved
            item = items[annotation_id]
            marks = np.array(item.landmarks)
            size = float(np.sqrt(np.prod(item.box[2:] - item.box[:2])))
            marks[[0, 3, 5, 8], 0] += 0.3 * size
            relabel(item, "moved", landmarks=marks)
        item = items[22]  # a long sleeve top: two left/right pairs swapped
        pairs = taxonomy.category(item.category_id).flip_pairs[[2, 5]]
        marks = np.array(item.landmarks)
        marks[pairs.reshape(-1)] = marks[pairs[:, ::-1].reshape(-1)]
        relabel(item, "swapped", landmarks=marks)
        relabel(items[6], "category", category_id=6)  # a vest labelled as a sling (both 15 landmarks)
        return project, injected

    yield make
    for project in made:
        project.close()
