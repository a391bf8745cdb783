"""Round trip: random scenes → encode → the heads a perfect network gives → decode → evaluate = 1.0."""

import numpy as np
import pytest

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.domain.taxonomy import load_grouping
from deepmark.core.evaluation.evaluate import evaluate_detections
from deepmark.core.synthetic.simulate import random_scene, simulated_heads


def _scenes(taxonomy, count, seed, size=(512, 384)):
    rng = np.random.default_rng(seed)
    # Every category appears: image k's first item is of category (k mod 13) + 1.
    scenes = {}
    for k in range(count):
        n = int(rng.integers(1, 6))
        cats = [k % 13 + 1] + [int(c) for c in rng.choice(taxonomy.category_ids, n - 1)]
        scenes[k + 1] = random_scene(rng, taxonomy, size, num_items=n, category_ids=cats)
    return scenes


@pytest.mark.parametrize("params", [PostprocessParams(), PostprocessParams.all_techniques()], ids=["baseline", "all"])
@pytest.mark.parametrize("grouping_name", ["semantic62", "none"])
def test_perfect_heads_give_perfect_map(taxonomy, params, grouping_name):
    grouping = load_grouping(grouping_name, taxonomy)
    scenes = _scenes(taxonomy, 26, seed=7)
    detections = {
        image_id: decode_detections(simulated_heads(items, (512, 384), taxonomy, grouping), params, taxonomy, grouping)
        for image_id, items in scenes.items()
    }
    assert sum(len(d) for d in detections.values()) == sum(len(s) for s in scenes.values())
    result = evaluate_detections(scenes, detections, taxonomy)
    assert result.map_box == pytest.approx(1.0, abs=1e-9)
    assert result.map_pt == pytest.approx(1.0, abs=1e-9)
    assert set(result.per_category_pt) >= set(range(1, 14))
    assert all(v == pytest.approx(1.0) for v in result.per_category_pt.values())


def test_decoded_geometry_matches_ground_truth(taxonomy, semantic62):
    for items in _scenes(taxonomy, 13, seed=3).values():
        dets = decode_detections(simulated_heads(items, (512, 384), taxonomy, semantic62),
                                 PostprocessParams(), taxonomy, semantic62)
        for item in items:
            match = [d for d in dets if d.category_id == item.category_id and np.allclose(d.box, item.box, atol=1e-3)]
            assert len(match) == 1
            labelled = item.landmarks[:, 2] > 0
            np.testing.assert_allclose(match[0].landmarks[labelled, :2], item.landmarks[labelled, :2], atol=1e-3)
            assert match[0].refined[labelled].mean() > 0.5
