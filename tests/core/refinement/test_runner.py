"""Exported refiners: Refiner loads them, refines every detection of an image in one batch, and touches
nothing but the landmark positions; fp32 and int8 agree."""

import json
from pathlib import Path

import numpy as np
import pytest

from deepmark.core.domain.structures import Detection
from deepmark.core.imaging.read import read_image
from deepmark.core.refinement.inputs import garment_batch
from deepmark.core.refinement.runner import Refiner, read_refiner_info

CROP = (64, 64)  # tests/conftest.py's REFINER_CROP
DEMO = Path(__file__).resolve().parents[3] / "resources" / "demo"


def _detections(taxonomy, rng, n=4):
    """Made-up detections of assorted categories, landmarks scattered around their boxes."""
    out = []
    for k in range(n):
        cat = taxonomy.categories[(5 * k) % 13]
        x0, y0 = rng.uniform(0, 150, 2)
        box = np.array([x0, y0, x0 + rng.uniform(30, 150), y0 + rng.uniform(30, 150)])
        xy = box[:2] + rng.uniform(0, 1, (cat.num_landmarks, 2)) * (box[2:] - box[:2])
        score = rng.uniform(0, 1, (cat.num_landmarks, 1))
        out.append(Detection(cat.id, float(rng.uniform(0.2, 1)), 0.5, box, np.concatenate([xy, score], 1),
                             rng.uniform(size=cat.num_landmarks) > 0.5))
    return out


@pytest.fixture(scope="module")
def image():
    return read_image(sorted((DEMO / "image").iterdir())[0])


def test_metadata_describes_the_refiner(refiner_onnx, semantic62):
    info = read_refiner_info(refiner_onnx)
    assert info.crop_size == CROP and info.grouping_name == "semantic62" and len(info.category_ids) == 13
    assert info.detector["name"] == "deepmark-default-fp32.onnx" and len(info.detector["sha256"]) == 64
    assert info.error_stats == {"swap": [0.0] * 13} and info.recipe["config"]["data"]["crop_size"] == list(CROP)
    assert info.precision == "fp32" and not info.use_confidence and info.blend == 1.0


def test_refine_changes_only_landmark_positions(refiner_onnx, taxonomy, image):
    refiner = Refiner(refiner_onnx, threads=1)
    dets = _detections(taxonomy, np.random.default_rng(0))
    refined = refiner.refine(image, dets)
    assert len(refined) == len(dets)
    for before, after in zip(dets, refined, strict=True):
        assert after is not before
        assert (after.category_id, after.score, after.box_score) == (before.category_id, before.score, before.box_score)
        np.testing.assert_array_equal(after.box, before.box)
        np.testing.assert_array_equal(after.refined, before.refined)
        assert after.landmarks.shape == before.landmarks.shape
        np.testing.assert_array_equal(after.landmarks[:, 2], before.landmarks[:, 2])  # scores kept
        assert np.isfinite(after.landmarks).all()
    # untrained weights are the identity refiner: positions stay within a fraction of an output pixel
    moved = max(np.abs(a.landmarks[:, :2] - b.landmarks[:, :2]).max() for a, b in zip(dets, refined, strict=True))
    assert moved < 2.0
    assert refiner.refine(image, []) == []


def test_refine_is_pure_and_batch_independent(refiner_onnx, taxonomy, image):
    refiner = Refiner(refiner_onnx, threads=1)
    dets = _detections(taxonomy, np.random.default_rng(1), n=5)
    together = refiner.refine(image, dets)
    alone = [refiner.refine(image, [d])[0] for d in dets]
    again = refiner.refine(image, dets)
    for a, b, c in zip(together, alone, again, strict=True):
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)
        np.testing.assert_array_equal(a.landmarks, c.landmarks)


def test_inputs_use_only_the_category_channels(refiner_onnx, taxonomy, semantic62, image):
    dets = _detections(taxonomy, np.random.default_rng(2), n=6)
    batch = garment_batch(image, dets, semantic62, taxonomy, CROP, Refiner(refiner_onnx).info.normalisation)
    assert batch.image.shape == (6, 3, CROP[1], CROP[0]) and batch.pose.shape[:2] == (6, semantic62.num_groups)
    for k, det in enumerate(dets):
        used = set(np.flatnonzero(batch.pose[k].reshape(semantic62.num_groups, -1).max(1) > 0).tolist())
        assert used <= set(semantic62.category_groups[det.category_id - 1].tolist())


def test_int8_agrees_with_fp32(refiner_onnx, refiner_int8, taxonomy, image):
    assert read_refiner_info(refiner_int8).precision == "int8"
    dets = _detections(taxonomy, np.random.default_rng(3))
    fp32 = Refiner(refiner_onnx).refine(image, dets)
    int8 = Refiner(refiner_int8).refine(image, dets)
    for a, b in zip(fp32, int8, strict=True):
        assert np.abs(a.landmarks[:, :2] - b.landmarks[:, :2]).max() < 3.0


def test_confidence_column_when_the_metadata_asks(refiner_onnx, taxonomy, image, tmp_path):
    import onnx

    from deepmark.core.refinement.runner import REFINER_METADATA_KEY

    model = onnx.load(str(refiner_onnx))
    for prop in model.metadata_props:
        if prop.key == REFINER_METADATA_KEY:
            data = json.loads(prop.value)
            data["use_confidence"] = True
            prop.value = json.dumps(data)
    path = tmp_path / "conf.onnx"
    onnx.save(model, str(path))
    dets = _detections(taxonomy, np.random.default_rng(4), n=2)
    for det, out in zip(dets, Refiner(path).refine(image, dets), strict=True):
        assert ((out.landmarks[:, 2] >= 0) & (out.landmarks[:, 2] <= 1)).all()
        assert not np.array_equal(out.landmarks[:, 2], det.landmarks[:, 2])


def test_blend_moves_refined_landmarks_back_towards_the_detected(refiner_onnx, taxonomy, image, tmp_path):
    """blend 0 returns the detector's landmarks exactly; blend 0.5 lies halfway."""
    import onnx

    from deepmark.core.refinement.runner import REFINER_METADATA_KEY

    dets = _detections(taxonomy, np.random.default_rng(5), n=3)
    full = Refiner(refiner_onnx).refine(image, dets)
    for blend in (0.0, 0.5):
        model = onnx.load(str(refiner_onnx))
        for prop in model.metadata_props:
            if prop.key == REFINER_METADATA_KEY:
                prop.value = json.dumps({**json.loads(prop.value), "blend": blend})
        path = tmp_path / f"blend{blend}.onnx"
        onnx.save(model, str(path))
        for det, ref, out in zip(dets, full, Refiner(path).refine(image, dets), strict=True):
            expected = blend * ref.landmarks[:, :2] + (1 - blend) * det.landmarks[:, :2]
            np.testing.assert_allclose(out.landmarks[:, :2], expected, atol=1e-9)
