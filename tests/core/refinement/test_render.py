"""Rendering landmarks: one Gaussian per landmark on its category's own channel, nothing elsewhere."""

import numpy as np
import pytest

from deepmark.core.refinement.render import POSE_STRIDE, category_channels, input_sigma, pose_input, render_landmarks


def test_every_category_has_distinct_channels(taxonomy, semantic62):
    """The channel layout is invertible per category (the reason one model in group space works)."""
    for cat in taxonomy.categories:
        channels = category_channels(semantic62, taxonomy, cat.id)
        assert len(channels) == cat.num_landmarks == len(set(channels.tolist()))
        assert channels.min() >= 0 and channels.max() < semantic62.num_groups


def test_gaussian_peaks_at_the_point():
    maps = render_landmarks(np.array([[10.5, 20.5], [8.2, 17.9]]), np.array([4, 1]), 6, (32, 40), sigma=2.0)
    assert maps.shape == (6, 40, 32) and maps.dtype == np.float32
    assert np.unravel_index(maps[4].argmax(), maps[4].shape) == (20, 10)
    assert maps[4].max() == pytest.approx(1.0)
    ys, xs = np.mgrid[0:40, 0:32]
    m = maps[1]
    np.testing.assert_allclose([(m * (xs + 0.5)).sum() / m.sum(), (m * (ys + 0.5)).sum() / m.sum()], [8.2, 17.9],
                               atol=0.05)
    assert not maps[[0, 2, 3, 5]].any()


@pytest.mark.parametrize("category_id", range(1, 14))
def test_pose_input_uses_only_the_category_channels(category_id, taxonomy, semantic62):
    cat = taxonomy.category(category_id)
    rng = np.random.default_rng(category_id)
    channels = category_channels(semantic62, taxonomy, category_id)
    pose = pose_input(rng.uniform(0, 64, (cat.num_landmarks, 2)), channels, semantic62.num_groups, (64, 96))
    assert pose.shape == (semantic62.num_groups, 96 // POSE_STRIDE, 64 // POSE_STRIDE)
    used = np.flatnonzero(pose.reshape(len(pose), -1).max(1) > 0)
    assert set(used.tolist()) <= set(channels.tolist())


def test_points_far_outside_render_nothing_and_no_points_is_empty():
    maps = render_landmarks(np.array([[-500.0, -500.0]]), np.array([0]), 2, (16, 16), sigma=input_sigma(16))
    assert not maps.any()
    assert not render_landmarks(np.zeros((0, 2)), np.zeros(0, int), 2, (16, 16), 1.0).any()
