"""Error statistics: measured from matched detections, and synthesised back — each kind of error found
as what it is (jitter, left/right swap, miss) and reproduced at its rate."""

import numpy as np
import pytest

from deepmark.core.domain.structures import Item
from deepmark.core.refinement.errors import MISS_DISTANCE, measure, synthesise
from deepmark.core.refinement.samples import Samples, ground_truth_samples, match_samples

LMAX = 39


def _truth(taxonomy, n=400, seed=0):
    """``n`` garments of every category with all landmarks labelled, spread over the box, mirror partners
    placed symmetrically (left half / right half) as on a real garment."""
    rng = np.random.default_rng(seed)
    gt = {}
    for i in range(n):
        cat = taxonomy.categories[i % 13]
        box = np.array([20.0, 30.0, 220.0, 330.0])
        rel = np.column_stack([np.full(cat.num_landmarks, 0.5), rng.uniform(0.05, 0.95, cat.num_landmarks)])
        for a, b in cat.flip_pairs:
            rel[a, 0] = rng.uniform(0.05, 0.35)
            rel[b] = (1 - rel[a, 0], rel[a, 1] + rng.uniform(-0.05, 0.05))
        xy = box[:2] + rel * (box[2:] - box[:2])
        gt[i] = [Item(cat.id, box, np.concatenate([xy, np.full((cat.num_landmarks, 1), 2.0)], 1))]
    return ground_truth_samples(gt, LMAX)


def test_no_error_measures_zero_and_synthesises_nothing(taxonomy):
    truth = _truth(taxonomy, 52)
    stats = measure(truth, taxonomy)
    assert max(stats["jitter"]) == 0 and max(stats["swap"]) == 0 and max(stats["miss"]) == 0 and max(stats["box"]) == 0
    again = synthesise(truth, stats, taxonomy, np.random.default_rng(0))
    np.testing.assert_allclose(again.coarse, truth.target[..., :2])
    np.testing.assert_allclose(again.box, truth.gt_box)


@pytest.mark.parametrize("jitter, swap, miss", [(0.02, 0.0, 0.0), (0.03, 0.2, 0.0), (0.01, 0.0, 0.1),
                                                (0.04, 0.1, 0.05)])
def test_synthesised_errors_are_measured_back(taxonomy, jitter, swap, miss):
    truth = _truth(taxonomy)
    stats = {"jitter": [jitter] * 294, "swap": [swap] * 13, "miss": [miss] * 13, "box": [0.05] * 4}
    noisy = synthesise(truth, stats, taxonomy, np.random.default_rng(1))
    found = measure(noisy, taxonomy)
    # a miss that lands nearer the partner reads as a swap, one that lands near the truth as an ordinary
    # error: the measured rates move a little from the drawn ones, by amounts that grow with the miss rate
    assert np.mean(found["swap"]) == pytest.approx(swap, abs=0.02 + 0.25 * swap + 0.6 * miss)
    assert np.mean(found["miss"]) == pytest.approx(miss, abs=0.03 + 0.5 * miss)
    assert np.median(found["jitter"]) == pytest.approx(jitter, rel=0.2 + 5 * miss)  # near misses count as jitter
    assert np.mean(found["box"]) == pytest.approx(0.05, rel=0.2)


def test_match_pairs_same_category_overlaps_only(taxonomy):
    from deepmark.core.domain.structures import Detection

    cat = taxonomy.categories[0]
    lm = np.concatenate([np.full((cat.num_landmarks, 2), 50.0), np.full((cat.num_landmarks, 1), 2.0)], 1)
    gt = {1: [Item(1, np.array([0.0, 0, 100, 100]), lm)]}

    def det(category, box):
        other = taxonomy.category(category)
        return Detection(category, 0.9, 0.9, np.array(box, float),
                         np.full((other.num_landmarks, 3), 40.0), np.zeros(other.num_landmarks, bool))

    found = match_samples({1: [det(1, [5, 5, 100, 100]), det(2, [0, 0, 100, 100]), det(1, [60, 60, 160, 160])]},
                          gt, LMAX)
    assert len(found) == 1 and found.category_id.tolist() == [1]
    np.testing.assert_allclose(found.target[0, : cat.num_landmarks], lm)
    assert isinstance(found, Samples) and MISS_DISTANCE > 0
