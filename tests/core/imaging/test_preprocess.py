"""Pre-processing: letterbox geometry, warp agreeing with the affine, normalisation, map transform."""

import numpy as np
import pytest

from deepmark.core.domain.structures import Affine
from deepmark.core.imaging.preprocess import (
    BORDER_VALUE,
    NORMALIZE_MEAN,
    NORMALIZE_STD,
    image_to_map,
    input_size_for,
    letterbox_affine,
    opencv_matrix,
    preprocess,
    to_network_input,
    warp_image,
)


def _spot_centre(picture):
    """Intensity-weighted centre, in continuous pixel coordinates, of the bright spot in a picture."""
    weight = picture[..., 0].astype(np.float64) - picture[..., 0].min()
    weight[weight < 0.2 * weight.max()] = 0
    ys, xs = np.mgrid[: picture.shape[0], : picture.shape[1]]
    total = weight.sum()
    return np.array([(weight * (xs + 0.5)).sum() / total, (weight * (ys + 0.5)).sum() / total])


def test_letterbox_fits_and_centres():
    a = letterbox_affine((800, 400), (512, 512))
    np.testing.assert_allclose(a.matrix, [[0.64, 0, 0], [0, 0.64, 128]])
    np.testing.assert_allclose(a.apply(np.array([[0.0, 0.0], [800.0, 400.0], [400.0, 200.0]])),
                               [[0, 128], [512, 384], [256, 256]])
    tall = letterbox_affine((300, 900), (384, 512))
    np.testing.assert_allclose(tall.apply(np.array([[0.0, 0.0], [300.0, 900.0]])),
                               [[(384 - 512 / 3) / 2, 0], [(384 + 512 / 3) / 2, 512]])


@pytest.mark.parametrize("image_size, input_size", [((97, 61), (128, 96)), ((50, 120), (64, 64)),
                                                    ((64, 64), (256, 256))])
def test_a_point_lands_where_the_warp_puts_it(image_size, input_size):
    w, h = image_size
    affine = letterbox_affine(image_size, input_size)
    scale = affine.matrix[0, 0]
    # A bright block whose size in the input is a few pixels; its centre is in continuous coordinates.
    half = max(1, int(np.ceil(2 / scale)))
    x0, y0 = int(w * 0.3), int(h * 0.6)
    image = np.zeros((h, w, 3), np.uint8)
    image[y0 - half : y0 + half, x0 - half : x0 + half] = 255
    centre = np.array([x0, y0], float)  # the block covers [x0 − half, x0 + half): its centre is x0
    picture = warp_image(image, affine, input_size, border_value=(0, 0, 0))
    assert picture.shape == (input_size[1], input_size[0], 3) and picture.dtype == np.uint8
    np.testing.assert_allclose(_spot_centre(picture), affine.apply(centre), atol=0.25)


def test_warp_agrees_with_a_random_affine_including_a_mirror():
    w, h = 80, 60
    image = np.zeros((h, w, 3), np.uint8)
    image[20:26, 50:56] = 255  # centre (53, 23)
    mirror = Affine(np.array([[-1.0, 0.0, w], [0.0, 1.0, 0.0]]))
    affine = mirror.then(Affine.scale_translate(1.3, -7.5, 4.25))
    picture = warp_image(image, affine, (96, 96), border_value=(0, 0, 0))
    np.testing.assert_allclose(_spot_centre(picture), affine.apply(np.array([53.0, 23.0])), atol=0.2)


def test_identity_warp_is_exact_and_border_is_the_mean_colour():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    out = warp_image(image, Affine.identity(), (16, 8))
    np.testing.assert_array_equal(out[:, :12], image)
    assert (out[:, 12:] == BORDER_VALUE).all()
    np.testing.assert_allclose(to_network_input([out])[0][:, :, 12:], 0, atol=0.01)


def test_opencv_matrix_of_a_pure_scale():
    # Continuous scale 2: pixel 0 (centre 0.5) → centre 1.0 = opencv index 0.5.
    np.testing.assert_allclose(opencv_matrix(Affine.scale_translate(2.0)), [[2, 0, 0.5], [0, 2, 0.5]])


def test_to_network_input_normalises_rgb():
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 255, 0, 128
    x = to_network_input([img, img])
    assert x.shape == (2, 3, 2, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x[1, :, 0, 0], [(1 - NORMALIZE_MEAN[0]) / NORMALIZE_STD[0],
                                               (0 - NORMALIZE_MEAN[1]) / NORMALIZE_STD[1],
                                               (128 / 255 - NORMALIZE_MEAN[2]) / NORMALIZE_STD[2]], rtol=1e-5)
    with pytest.raises(ValueError):
        to_network_input([img, np.zeros((3, 3, 3), np.uint8)])
    with pytest.raises(ValueError):
        to_network_input([])


@pytest.mark.parametrize("image_size, max_side, expected", [
    ((1000, 600), 512, (512, 320)),
    ((600, 1000), 512, (320, 512)),
    ((640, 640), 512, (512, 512)),
    ((100, 50), 512, (512, 256)),
    ((5000, 10), 512, (512, 32)),
    ((1000, 600), 500, (480, 288)),  # 500 is no multiple: the long side becomes 480
])
def test_input_size_for(image_size, max_side, expected):
    size = input_size_for(image_size, max_side)
    assert size == expected
    assert all(v % 32 == 0 for v in size) and max(size) <= max_side
    # the letterbox then fills the long side up to the multiple-of-32 rounding
    scale = letterbox_affine(image_size, size).matrix[0, 0]
    assert scale * max(image_size) <= max_side + 1e-9


def test_input_size_for_without_upscaling():
    assert input_size_for((100, 50), 512, upscale=False) == (128, 64)
    assert input_size_for((1000, 600), 512, upscale=False) == (512, 320)
    with pytest.raises(ValueError):
        input_size_for((100, 50), 16)


def test_image_to_map_divides_by_the_stride():
    a = letterbox_affine((800, 400), (512, 512))
    m = image_to_map(a)
    np.testing.assert_allclose(m.matrix, a.matrix / 4)
    np.testing.assert_allclose(m.apply(np.array([800.0, 400.0])), [128, 96])


def test_preprocess_is_letterbox_plus_warp():
    img = np.full((30, 60, 3), 200, np.uint8)
    picture, affine = preprocess(img, (64, 64))
    np.testing.assert_allclose(affine.matrix, letterbox_affine((60, 30), (64, 64)).matrix)
    np.testing.assert_array_equal(picture, warp_image(img, affine, (64, 64)))
    # bilinear sampling blends the border colour into the outermost input pixels only
    assert (picture[17:47, 1:-1] == 200).all() and (picture[:15] == BORDER_VALUE).all()
