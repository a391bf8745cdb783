"""CenterNet target encoding: centers, sizes, group channels, masks and Gaussians."""

import numpy as np
import pytest

from deepmark.core.centernet.encode import MAX_OBJECTS, draw_gaussian, encode_targets, gaussian_radius
from deepmark.core.domain.structures import Affine, Item
from deepmark.core.domain.taxonomy import load_grouping
from deepmark.core.errors import EncodeError, TaxonomyError


def _item(taxonomy, category_id, box, visibility=2.0):
    cat = taxonomy.category(category_id)
    x1, y1, x2, y2 = box
    pts = cat.template * (x2 - x1, y2 - y1) + (x1, y1)
    return Item(category_id, np.array(box, float), np.column_stack([pts, np.full(len(pts), visibility)]))


def test_center_size_and_offset_at_stride_4(taxonomy, semantic62):
    item = _item(taxonomy, 8, (41.0, 22.0, 121.0, 202.0))  # trousers
    t = encode_targets([item], Affine.scale_translate(0.25), (64, 64), taxonomy, semantic62)
    # Map box (10.25, 5.5, 30.25, 50.5): center (20.25, 28.0) → integer (20, 28), offset (0.25, 0).
    assert t.ind[0] == 28 * 64 + 20
    np.testing.assert_allclose(t.reg[0], [0.25, 0.0])
    np.testing.assert_allclose(t.wh[0], [20.0, 45.0])
    assert t.reg_mask.tolist() == [1] + [0] * (MAX_OBJECTS - 1)
    assert t.hm[7, 28, 20] == 1.0 and t.hm.max() == 1.0
    assert t.hm[np.arange(13) != 7].max() == 0.0


def test_landmarks_go_to_their_group_channels(taxonomy, semantic62):
    item = _item(taxonomy, 1, (40.0, 40.0, 200.0, 220.0))
    t = encode_targets([item], Affine.scale_translate(0.25), (64, 64), taxonomy, semantic62)
    groups = semantic62.category_groups[0]
    pts = item.landmarks[:, :2] / 4
    cx, cy = t.ind[0] % 64, t.ind[0] // 64
    np.testing.assert_allclose(t.hps[0, 2 * groups], pts[:, 0] - cx, atol=1e-5)
    np.testing.assert_allclose(t.hps[0, 2 * groups + 1], pts[:, 1] - cy, atol=1e-5)
    assert t.hps_mask[0].sum() == 2 * len(groups)
    other = np.setdiff1d(np.arange(semantic62.num_groups), groups)
    assert t.hps_mask[0, 2 * other].sum() == 0 and t.hm_hp[other].max() == 0
    slots = groups  # object 0
    np.testing.assert_allclose(t.hp_offset[slots], pts - np.floor(pts), atol=1e-5)
    np.testing.assert_array_equal(t.hp_ind[slots], np.floor(pts[:, 1]) * 64 + np.floor(pts[:, 0]))
    assert (t.hm_hp[groups, np.floor(pts[:, 1]).astype(int), np.floor(pts[:, 0]).astype(int)] == 1).all()


def test_hidden_and_outside_landmarks_are_masked(taxonomy, semantic62):
    item = _item(taxonomy, 9, (10.0, 10.0, 120.0, 120.0))  # skirt, 8 landmarks
    item.landmarks[0] = (0, 0, 0)  # not labelled
    item.landmarks[1, :2] = (300.0, 50.0)  # outside the 64×64 map (x = 75 map px)
    t = encode_targets([item], Affine.scale_translate(0.25), (64, 64), taxonomy, semantic62)
    groups = semantic62.category_groups[8]
    assert t.hps_mask[0, 2 * groups[:2]].tolist() == [0, 0]
    assert t.hp_mask[groups[:2]].tolist() == [0, 0]
    assert t.hp_mask[groups[2:]].all()
    assert t.hm_hp[groups[0]].max() == 0


def test_occluded_landmarks_are_targets(taxonomy, semantic62):
    item = _item(taxonomy, 7, (10.0, 10.0, 120.0, 120.0), visibility=1.0)
    t = encode_targets([item], Affine.scale_translate(0.25), (64, 64), taxonomy, semantic62)
    assert t.hp_mask.sum() == taxonomy.category(7).num_landmarks


def test_32_items_fit_and_33_raise(taxonomy, semantic62):
    items = [_item(taxonomy, 1 + i % 13, (8.0 * i, 10.0, 8.0 * i + 60, 90.0)) for i in range(32)]
    t = encode_targets(items, Affine.scale_translate(0.25), (64, 96), taxonomy, semantic62)
    assert t.reg_mask.sum() == 32
    with pytest.raises(EncodeError, match="33 items"):
        encode_targets(items + items[:1], Affine.scale_translate(0.25), (64, 96), taxonomy, semantic62)


def test_ungrouped_channels(taxonomy):
    none = load_grouping("none", taxonomy)
    item = _item(taxonomy, 13, (10.0, 10.0, 200.0, 240.0))
    t = encode_targets([item], Affine.scale_translate(0.25), (64, 64), taxonomy, none)
    assert t.hm_hp.shape == (294, 64, 64) and t.hps.shape == (MAX_OBJECTS, 588)
    assert t.hp_mask.reshape(MAX_OBJECTS, 294)[0, 275:294].all()


def test_bad_items_raise_clear_errors(taxonomy, semantic62):
    good = _item(taxonomy, 1, (10.0, 10.0, 100.0, 100.0))
    aff = Affine.scale_translate(0.25)
    with pytest.raises(TaxonomyError, match="has 25 landmarks"):
        encode_targets([Item(1, good.box, good.landmarks[:24])], aff, (64, 64), taxonomy, semantic62)
    with pytest.raises(TaxonomyError, match="unknown category id 0"):
        encode_targets([Item(0, good.box, good.landmarks)], aff, (64, 64), taxonomy, semantic62)
    with pytest.raises(EncodeError, match="negative size"):
        encode_targets([Item(1, np.array([50.0, 10, 10, 100]), good.landmarks)], aff, (64, 64), taxonomy, semantic62)
    bad = good.landmarks.copy()
    bad[3, 0] = np.nan
    with pytest.raises(EncodeError, match="finite"):
        encode_targets([Item(1, good.box, bad)], aff, (64, 64), taxonomy, semantic62)


def test_gaussian_matches_centernet():
    # CenterNet's gaussian_radius((h, w)) for a 20×45 box and its draw_umich_gaussian shape.
    r = gaussian_radius(45, 20)
    assert r == pytest.approx(min(
        (65 + np.sqrt(65**2 - 4 * 20 * 45 * 0.3 / 1.7)) / 2,
        (130 + np.sqrt(130**2 - 16 * 0.3 * 900)) / 2,
        (-2 * 0.7 * 65 + np.sqrt((2 * 0.7 * 65) ** 2 + 16 * 0.7 * 0.3 * 900)) / 2,
    ))
    heat = np.zeros((9, 9), np.float32)
    draw_gaussian(heat, 4, 4, 2)
    sigma = 5 / 6
    assert heat[4, 4] == 1.0
    assert heat[4, 5] == pytest.approx(np.exp(-1 / (2 * sigma**2)), rel=1e-6)
    assert heat[0].max() == 0 and heat[2, 2] > 0
    draw_gaussian(heat, 0, 8, 2)  # clipped at the corner, combined by max
    assert heat[8, 0] == 1.0
