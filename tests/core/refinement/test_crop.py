"""The crop around a garment: points survive image → crop → image, the box lands centred and whole."""

import numpy as np
import pytest

from deepmark.core.refinement.crop import CROP_MARGIN, crop_affine, crop_affines, cut_crop, to_crop, to_image

# wide, tall, square, tiny, degenerate (zero width / height), partly outside the image, huge
BOXES = [(10, 40, 300, 90), (50, 5, 80, 310), (0, 0, 100, 100), (20, 20, 21.5, 22), (30, 30, 30, 80),
         (40, 10, 40, 10), (-50, -20, 60, 90), (-1000, -500, 4000, 3000)]
SIZES = [(192, 256), (96, 128), (64, 64), (256, 192)]


@pytest.mark.parametrize("crop_size", SIZES)
def test_points_round_trip(crop_size):
    rng = np.random.default_rng(0)
    boxes = np.array(BOXES, float)
    points = rng.uniform(-100, 400, size=(len(boxes), 7, 2))
    matrices = crop_affines(boxes, crop_size)
    back = to_image(to_crop(points, matrices), matrices)
    np.testing.assert_allclose(back, points, atol=1e-9)


@pytest.mark.parametrize("crop_size", SIZES)
@pytest.mark.parametrize("box", BOXES)
def test_box_is_centred_whole_and_keeps_aspect(box, crop_size):
    affine = crop_affine(np.array(box, float), crop_size)
    m = affine.matrix
    assert m[0, 1] == m[1, 0] == 0 and m[0, 0] == m[1, 1] > 0  # one uniform scale: shapes are not distorted
    x0, y0, x1, y1 = box
    centre = affine.apply(np.array([(x0 + x1) / 2, (y0 + y1) / 2]))
    np.testing.assert_allclose(centre, np.array(crop_size) / 2, atol=1e-9)
    corners = affine.apply(np.array([[x0, y0], [x1, y1]], float))
    w, h = crop_size
    assert corners[0, 0] >= -1e-9 and corners[0, 1] >= -1e-9 and corners[1, 0] <= w + 1e-9 and corners[1, 1] <= h + 1e-9
    # the longer side (in the crop's aspect) fills exactly 1 / margin of the crop, unless the box is degenerate
    span = (corners[1] - corners[0]) / np.array(crop_size)
    if min(x1 - x0, y1 - y0) >= 1:
        assert span.max() == pytest.approx(1 / CROP_MARGIN)


def test_cut_crop_matches_the_affine():
    """A bright dot in the image appears where the affine maps it (pixel-centre convention kept)."""
    image = np.zeros((120, 160, 3), np.uint8)
    image[60:62, 100:102] = 255  # a 2×2 dot centred at (101, 61)
    affine = crop_affine(np.array([80, 40, 120, 90], float), (64, 64))
    crop = cut_crop(image, affine, (64, 64)).astype(float).sum(-1)
    ys, xs = np.mgrid[0:64, 0:64]
    centroid = np.array([(crop * (xs + 0.5)).sum(), (crop * (ys + 0.5)).sum()]) / crop.sum()
    np.testing.assert_allclose(centroid, affine.apply(np.array([101.0, 61.0])), atol=0.15)


def test_outside_the_image_is_the_mean_colour():
    image = np.zeros((50, 50, 3), np.uint8)
    crop = cut_crop(image, crop_affine(np.array([-200, -200, -150, -150], float), (32, 32)), (32, 32))
    assert (crop == np.array([124, 116, 104], np.uint8)).all()
