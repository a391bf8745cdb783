"""`deepmark predict --refine` (a real subprocess): the written predictions are the refiner's output for the
detector's detections — same garments, boxes and scores, refined landmark positions; without the option
nothing is refined."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmark.core.formats.df2 import read_predictions
from deepmark.core.imaging.read import read_image
from deepmark.core.network.checkpoint import save_checkpoint
from deepmark.core.refinement.export import export_refiner
from deepmark.core.refinement.runner import Refiner
from deepmark.core.refinement.train import load_refiner_checkpoint

DEMO = Path(__file__).resolve().parents[3] / "resources" / "demo"


@pytest.fixture(scope="module")
def moving_refiner(refiner_checkpoint, tmp_path_factory):
    """The test refiner with a weak prior (0.3): it visibly pulls landmarks towards the crop's centre, so a
    refined file cannot pass for an unrefined one."""
    payload = load_refiner_checkpoint(refiner_checkpoint)
    payload["model"]["prior_scale"] = torch.tensor(0.3)
    folder = tmp_path_factory.mktemp("moving")
    save_checkpoint(folder / "moving.pt", payload)
    return export_refiner(folder / "moving.pt", folder / "moving.onnx")


def _predict(out: Path, *extra: str) -> subprocess.CompletedProcess:
    images = sorted((DEMO / "image").iterdir())[:3]
    return subprocess.run([sys.executable, "-m", "deepmark.core.cli.main", "predict", *map(str, images), "--out",
                           str(out), "--quiet", *extra], capture_output=True, text=True, timeout=300)


def test_predict_refine_writes_refined_landmarks(moving_refiner, tmp_path):
    plain, refined = tmp_path / "plain", tmp_path / "refined"
    assert _predict(plain).returncode == 0
    run = _predict(refined, "--refine", str(moving_refiner))
    assert run.returncode == 0, run.stderr
    assert "warning" in run.stderr  # the test refiner names another detector file's sha256
    before, _ = read_predictions(plain)
    after, _ = read_predictions(refined)
    assert sorted(before) == sorted(after) and sum(map(len, after.values())) > 0
    refiner = Refiner(moving_refiner, threads=1)
    moved = 0.0
    for image_id, dets in before.items():
        path = next(p for p in (DEMO / "image").iterdir() if p.stem == f"{image_id:06d}")
        expected = refiner.refine(read_image(path), dets)
        assert len(after[image_id]) == len(dets)
        for a, b, e in zip(dets, after[image_id], expected, strict=True):
            assert (a.category_id, a.score) == (b.category_id, b.score)
            np.testing.assert_allclose(a.box, b.box, atol=1e-6)
            np.testing.assert_allclose(b.landmarks[:, :2], e.landmarks[:, :2], atol=0.02)
            moved = max(moved, float(np.abs(a.landmarks[:, :2] - b.landmarks[:, :2]).max()))
    assert moved > 1.0
