"""Augmentation: random affine ranges, mirror + landmark permutation, colour jitter."""

import numpy as np
import pytest

from deepmark.core.domain.structures import Item
from deepmark.core.imaging.preprocess import letterbox_affine, warp_image
from deepmark.core.training.augment import AugmentConfig, color_jitter, flip_items, mirror_affine, random_affine


def _item(taxonomy, category_id, box, hidden=()):
    cat = taxonomy.category(category_id)
    x1, y1, x2, y2 = box
    pts = cat.template * (x2 - x1, y2 - y1) + (x1, y1)
    lms = np.column_stack([pts, np.full(len(pts), 2.0)])
    for k in hidden:
        lms[k] = 0
    return Item(category_id, np.array(box, float), lms)


def test_flip_twice_is_identity(taxonomy):
    items = [_item(taxonomy, c, (10.0 + c, 20.0, 90.0 + 2 * c, 150.0), hidden=(1, 3)) for c in range(1, 14)]
    twice = flip_items(flip_items(items, 123.0, taxonomy), 123.0, taxonomy)
    for a, b in zip(items, twice, strict=True):
        assert a.category_id == b.category_id
        np.testing.assert_allclose(a.box, b.box)
        np.testing.assert_allclose(a.landmarks, b.landmarks)


@pytest.mark.parametrize("category_id", [1, 4, 8, 9, 13])
def test_flipped_landmark_sits_at_its_mirrored_partner(taxonomy, category_id):
    width = 200.0
    item = _item(taxonomy, category_id, (30.0, 40.0, 120.0, 180.0), hidden=(2,))
    (flipped,) = flip_items([item], width, taxonomy)
    perm = taxonomy.category(category_id).flip_permutation
    assert not (perm == np.arange(len(perm))).all()  # every category has flip pairs
    np.testing.assert_allclose(flipped.box, [200 - 120, 40, 200 - 30, 180])
    for a in range(len(perm)):
        source = item.landmarks[perm[a]]
        if source[2] == 0:
            np.testing.assert_array_equal(flipped.landmarks[a], [0, 0, 0])
        else:
            np.testing.assert_allclose(flipped.landmarks[a], [width - source[0], source[1], source[2]])
    assert (flipped.landmarks[:, 2] == 0).sum() == 1


def test_mirror_affine_is_an_involution():
    m = mirror_affine(64)
    np.testing.assert_allclose(m.then(m).matrix, np.eye(2, 3))
    np.testing.assert_allclose(m.apply(np.array([10.0, 5.0])), [54.0, 5.0])


def test_random_affine_identity_config_is_the_letterbox():
    rng = np.random.default_rng(0)
    affine, flipped = random_affine(rng, (300, 200), (128, 96), AugmentConfig.none())
    assert not flipped
    np.testing.assert_allclose(affine.matrix, letterbox_affine((300, 200), (128, 96)).matrix)


def test_random_affine_ranges_and_flip_rate():
    config = AugmentConfig(scale_range=(0.6, 1.4), shift=0.2, flip_probability=0.5)
    rng = np.random.default_rng(3)
    base = letterbox_affine((400, 300), (256, 256)).matrix[0, 0]
    flips = 0
    for _ in range(400):
        affine, flipped = random_affine(rng, (400, 300), (256, 256), config)
        m = affine.matrix
        scale = abs(m[0, 0])
        assert 0.6 * base - 1e-9 <= scale <= 1.4 * base + 1e-9
        assert m[1, 1] == pytest.approx(scale) and m[0, 1] == 0 and m[1, 0] == 0
        assert (m[0, 0] < 0) == flipped
        flips += flipped
        # the image point mapped to the input centre lies within the shift range of the image centre
        c = affine.inverse().apply(np.array([128.0, 128.0]))
        if flipped:
            c = mirror_affine(400).apply(c)
        assert abs(c[0] - 200) <= 0.2 * 400 + 1e-6 and abs(c[1] - 150) <= 0.2 * 300 + 1e-6
    assert 150 < flips < 250


def test_random_affine_is_deterministic_per_generator():
    config = AugmentConfig()
    a = random_affine(np.random.default_rng([1, 2, 3]), (300, 200), (128, 128), config)
    b = random_affine(np.random.default_rng([1, 2, 3]), (300, 200), (128, 128), config)
    np.testing.assert_array_equal(a[0].matrix, b[0].matrix)
    assert a[1] == b[1]


def test_flipped_warp_matches_flipped_labels(taxonomy):
    """The warped picture of a mirrored affine shows the marker where the flipped label says."""
    w, h = 120, 80
    image = np.zeros((h, w, 3), np.uint8)
    image[30:34, 20:24] = 255  # a marker at (22, 32) — the position of landmark 0 below
    item = _item(taxonomy, 9, (10.0, 10.0, 60.0, 70.0))
    item.landmarks[0, :2] = (22.0, 32.0)
    config = AugmentConfig(flip_probability=1.0)
    affine, flipped = random_affine(np.random.default_rng(5), (w, h), (96, 96), config)
    assert flipped
    (label,) = flip_items([item], w, taxonomy)
    partner = int(np.flatnonzero(taxonomy.category(9).flip_permutation == 0)[0])
    assert partner != 0
    # labels are in mirrored-image coordinates: map them with the affine less its mirror
    point = mirror_affine(w).then(affine).apply(label.landmarks[partner, :2])
    picture = warp_image(image, affine, (96, 96), border_value=(0, 0, 0))
    ys, xs = np.nonzero(picture[..., 0] > 60)
    weights = picture[ys, xs, 0].astype(float)
    spot = [(weights * (xs + 0.5)).sum() / weights.sum(), (weights * (ys + 0.5)).sum() / weights.sum()]
    np.testing.assert_allclose(spot, point, atol=0.3)
    np.testing.assert_allclose(point, affine.apply(np.array([22.0, 32.0])))


def test_color_jitter_identity_and_determinism():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    same = color_jitter(np.random.default_rng(1), image, AugmentConfig.none())
    np.testing.assert_array_equal(same, image)
    a = color_jitter(np.random.default_rng(9), image, AugmentConfig())
    b = color_jitter(np.random.default_rng(9), image, AugmentConfig())
    assert a.dtype == np.uint8 and a.shape == image.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, image)


def test_color_jitter_components():
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 200, 100, 50
    brighter = [color_jitter(np.random.default_rng(s), image, AugmentConfig(
        brightness=0.4, contrast=0.0, saturation=0.0, lighting_std=0.0)) for s in range(20)]
    ratios = np.array([b[0, 0, 2] / 50 for b in brighter])
    assert 0.6 - 0.01 <= ratios.min() and ratios.max() <= 1.4 + 0.01
    assert ratios.min() < 0.9 and ratios.max() > 1.1
    for b, r in zip(brighter, ratios, strict=True):  # one factor for all channels (200 × 1.4 clips at 255)
        np.testing.assert_allclose(b[0, 0], np.minimum(255, np.array([200, 100, 50]) * r), rtol=0.015, atol=1)
    # saturation keeps the gray level (luma) and only moves towards or away from it
    for s in range(10):
        out = color_jitter(np.random.default_rng(s), image, AugmentConfig(
            brightness=0.0, contrast=0.0, saturation=0.4, lighting_std=0.0)).astype(float)
        luma = out[0, 0] @ [0.299, 0.587, 0.114]
        assert luma == pytest.approx(200 * 0.299 + 100 * 0.587 + 50 * 0.114, abs=1.0)


def test_config_validation():
    assert AugmentConfig(scale_range=[0.5, 2]).scale_range == (0.5, 2.0)
    assert hash(AugmentConfig()) == hash(AugmentConfig())
    with pytest.raises(ValueError):
        AugmentConfig(scale_range=(1.5, 1.0))
    with pytest.raises(ValueError):
        AugmentConfig(flip_probability=2)
    with pytest.raises(ValueError):
        AugmentConfig(brightness=-0.1)
