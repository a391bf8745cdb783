"""Grid search over cached raw heads."""

import json
from dataclasses import replace

import numpy as np
import pytest

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import PostprocessParams, RawHeads
from deepmark.core.errors import Cancelled
from deepmark.core.evaluation.evaluate import evaluate_detections
from deepmark.core.evaluation.tune import TuneError, grid_search
from deepmark.core.synthetic.simulate import random_scene, simulated_heads

SIZE = (256, 192)


@pytest.fixture(scope="module")
def labelled_set(taxonomy, semantic62):
    """12 images whose heatmap peaks sit 0.8 map px right of the truth while the regression is exact."""
    rng = np.random.default_rng(11)
    gt, heads = {}, {}
    for image_id in range(1, 13):
        items = random_scene(rng, taxonomy, SIZE)
        h = simulated_heads(items, SIZE, taxonomy, semantic62, rng, noise=0.02)
        offset = h.hp_offset.copy()
        offset[0] += 0.8
        gt[image_id], heads[image_id] = items, replace(h, hp_offset=offset)
    return gt, heads


def test_one_parameter_sweep_finds_the_better_gamma(taxonomy, semantic62, labelled_set):
    gt, heads = labelled_set
    result = grid_search(heads, gt, ["gamma"], taxonomy, semantic62)
    assert result.map_pt.shape == (21,)
    np.testing.assert_allclose(result.values[0], np.linspace(0, 1, 21))
    # Biased peaks: trusting the regression (γ = 0) must win, and accuracy fall as γ grows.
    assert result.best.gamma == 0.0 and result.best.location_refinement
    assert result.map_pt[0] > result.map_pt[-1] + 0.1
    assert np.all(np.diff(result.map_pt) <= 1e-9)
    # The table holds what decoding + evaluation give at that point.
    p = replace(PostprocessParams(location_refinement=True), gamma=0.5)
    direct = evaluate_detections(gt, {i: decode_detections(heads[i], p, taxonomy, semantic62) for i in gt}, taxonomy)
    assert result.map_pt[10] == pytest.approx(direct.map_pt)
    assert result.map_box[10] == pytest.approx(direct.map_box)
    assert result.best_result.map_pt == pytest.approx(result.map_pt.max())


def test_two_dimensional_grid_and_exports(tmp_path, taxonomy, semantic62, labelled_set):
    gt, heads = labelled_set
    calls = []
    result = grid_search(
        heads, gt, ["sigma_center", "sigma_keypoint"], taxonomy, semantic62,
        base=PostprocessParams(center_rescoring=True), values=[[0.0, 0.5, 1.0], [0.0, 0.45, 0.9]],
        progress=lambda done, total: calls.append((done, total)),
    )
    assert result.map_pt.shape == result.map_box.shape == (3, 3)
    assert calls[-1] == (9, 9)
    best = np.unravel_index(np.argmax(result.map_pt), (3, 3))
    best_values = (result.values[0][best[0]], result.values[1][best[1]])
    assert (result.best.sigma_center, result.best.sigma_keypoint) == best_values
    assert result.best.heatmap_rescoring and result.best.center_rescoring
    p = replace(result.best, sigma_center=1.0, sigma_keypoint=0.45)
    direct = evaluate_detections(gt, {i: decode_detections(heads[i], p, taxonomy, semantic62) for i in gt}, taxonomy)
    assert result.map_pt[2, 1] == pytest.approx(direct.map_pt)
    csv_path = result.save(tmp_path / "table.csv")
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "sigma_center,sigma_keypoint,map_pt,map_box" and len(lines) == 10
    data = json.loads(result.save(tmp_path / "table.json").read_text())
    assert data["best_values"] == result.best_values() and len(data["table"]) == 9


def test_cancel_and_bad_requests(taxonomy, semantic62, labelled_set):
    gt, heads = labelled_set
    with pytest.raises(Cancelled, match="cancelled after 2"):
        grid_search(heads, gt, ["alpha"], taxonomy, semantic62, progress=lambda done, total: done < 2)
    with pytest.raises(TuneError, match="unknown parameter"):
        grid_search(heads, gt, ["beta"], taxonomy, semantic62)
    with pytest.raises(TuneError, match="one or two"):
        grid_search(heads, gt, ["alpha", "gamma", "sigma_center"], taxonomy, semantic62)
    with pytest.raises(TuneError, match="no image"):
        grid_search({99: heads[1]}, gt, ["alpha"], taxonomy, semantic62)
    bad = dict(heads)
    bad[1] = RawHeads(*(a[:, :5] for a in heads[1].arrays().values()), heads[1].image_to_map, heads[1].image_size)
    broken = dict(bad)
    broken[1] = replace(bad[1], hm=bad[1].hm[:12])
    with pytest.raises(Exception, match="head 'hm' has shape"):
        grid_search(broken, gt, ["alpha"], taxonomy, semantic62)


def test_worker_processes_give_the_same_table(taxonomy, semantic62, labelled_set):
    gt, heads = labelled_set
    kwargs = dict(base=PostprocessParams(), values=[[0.2, 0.8], [0.0, 0.5, 1.0]])
    serial = grid_search(heads, gt, ["alpha", "gamma"], taxonomy, semantic62, workers=1, **kwargs)
    forked = grid_search(heads, gt, ["alpha", "gamma"], taxonomy, semantic62, workers=2, **kwargs)
    np.testing.assert_array_equal(serial.map_pt, forked.map_pt)
    np.testing.assert_array_equal(serial.map_box, forked.map_box)
    assert serial.best == forked.best


def test_each_metric_is_evaluated_once_per_distinct_detection_set(taxonomy, semantic62, labelled_set, monkeypatch):
    """γ moves landmarks only: box AP is computed once for the sweep, landmark AP once per distinct set,
    and every table cell is still what evaluating that point directly gives."""
    from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator

    gt, heads = labelled_set
    runs = []
    real_map = DeepFashion2Evaluator._fast_map

    def fast_map(self, arrays, iou_type):
        runs.append(iou_type)
        return real_map(self, arrays, iou_type)

    monkeypatch.setattr(DeepFashion2Evaluator, "_fast_map", fast_map)  # the grid's points
    values = [0.0, 0.25, 0.5, 0.75, 1.0]
    result = grid_search(heads, gt, ["gamma"], taxonomy, semantic62, values=[values], workers=1)
    assert runs.count("bbox") == 1 and runs.count("keypoints") == len(values)
    monkeypatch.setattr(DeepFashion2Evaluator, "_fast_map", real_map)
    for k, gamma in enumerate(values):
        p = replace(PostprocessParams(location_refinement=True), gamma=gamma)
        direct = evaluate_detections(gt, {i: decode_detections(heads[i], p, taxonomy, semantic62) for i in gt},
                                     taxonomy)
        assert (result.map_pt[k], result.map_box[k]) == (direct.map_pt, direct.map_box)
