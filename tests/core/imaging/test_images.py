"""Image reading: orientation, channel and bit-depth conversions, and loud failures on bad files."""

import cv2
import numpy as np
import pytest
from PIL import Image

from deepmark.core.errors import DeepMarkError
from deepmark.core.imaging.read import ImageError, image_size, read_image


def _pattern(width=40, height=24):
    """An RGB picture with a red top-left block, a green top-right block, a blue bottom band, grey rest."""
    img = np.full((height, width, 3), 128, np.uint8)
    img[:8, :10] = (255, 0, 0)
    img[:8, -10:] = (0, 255, 0)
    img[-6:, :] = (0, 0, 255)
    return img


def _assert_close(a, b, tol=40):
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 8
    # block interiors are flat, so JPEG keeps them close
    assert np.percentile(np.abs(a.astype(int) - b.astype(int)), 90) < tol


def test_rgb_png_roundtrip_exact(tmp_path):
    img = _pattern()
    path = tmp_path / "a.png"
    Image.fromarray(img).save(path)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (24, 40, 3)
    np.testing.assert_array_equal(out, img)
    assert image_size(path) == (40, 24)


def test_opencv_written_png_is_rgb_not_bgr(tmp_path):
    img = _pattern()
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), img[..., ::-1])  # cv2 writes BGR
    np.testing.assert_array_equal(read_image(path), img)


@pytest.mark.parametrize("orientation, expected", [
    (1, lambda a: a),
    (3, lambda a: a[::-1, ::-1]),
    (6, lambda a: np.rot90(a, k=-1)),  # shown rotated 90° clockwise
    (8, lambda a: np.rot90(a, k=1)),
    (2, lambda a: a[:, ::-1]),
])
def test_exif_orientation_is_applied(tmp_path, orientation, expected):
    img = _pattern()
    path = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(img).save(path, quality=95, exif=exif.tobytes())
    out = read_image(path)
    want = expected(img)
    _assert_close(out, want)
    assert image_size(path) == (want.shape[1], want.shape[0])


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (6, 1))
    path = tmp_path / "g.png"
    cv2.imwrite(str(path), gray)
    out = read_image(path)
    assert out.shape == (6, 25, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_16_bit_grayscale_png_is_scaled(tmp_path):
    values = np.array([[0, 257, 1000, 30000, 65535]], np.uint16).repeat(3, axis=0)
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), values)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (3, 5, 3)
    np.testing.assert_array_equal(out[0, :, 0], np.rint(values[0] / 257).astype(np.uint8))
    assert (out[..., 0] == out[..., 2]).all()


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_colour_is_scaled_and_rgb(tmp_path, suffix):
    bgr = np.zeros((4, 6, 3), np.uint16)
    bgr[..., 0] = 65535  # blue
    bgr[..., 2] = 257 * 40  # red
    path = tmp_path / f"deep{suffix}"
    assert cv2.imwrite(str(path), bgr)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (4, 6, 3)
    np.testing.assert_array_equal(out[0, 0], [40, 0, 255])


def test_16_bit_tiff_grayscale(tmp_path):
    path = tmp_path / "deep.tif"
    assert cv2.imwrite(str(path), np.full((5, 7), 257 * 99, np.uint16))
    out = read_image(path)
    assert out.shape == (5, 7, 3) and (out == 99).all()


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0] = 200  # red-ish colour everywhere
    rgba[0, 0, 3] = 255  # opaque
    rgba[0, 1, 3] = 0  # transparent
    rgba[0, 2, 3] = 128  # half
    rgba[1, :, 3] = 255
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = read_image(path)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    np.testing.assert_allclose(out[0, 2], [200 * 128 / 255 + 255 * 127 / 255, 255 * 127 / 255,
                                          255 * 127 / 255], atol=1)


def test_la_and_palette_with_transparency(tmp_path):
    la = Image.fromarray(np.array([[[10, 255], [10, 0]]], np.uint8), "LA")
    la.save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[0], [[10, 10, 10], [255, 255, 255]])
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png", transparency=0)
    np.testing.assert_array_equal(read_image(tmp_path / "p.png")[0], [[255, 255, 255], [0, 200, 0]])


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 8), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    out = read_image(path)
    assert out.shape == (8, 16, 3)
    r, g, b = out.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_float_image_via_opencv_fallback(tmp_path):
    path = tmp_path / "radiance.hdr"
    img = np.zeros((4, 5, 3), np.float32)
    img[..., 2] = 1.0  # BGR: red
    img[..., 1] = 0.5
    assert cv2.imwrite(str(path), img)
    out = read_image(path)
    assert out.shape == (4, 5, 3)
    np.testing.assert_allclose(out[0, 0], [255, 128, 0], atol=2)
    assert image_size(path) == (5, 4)


def _noise_jpeg(path, size=(96, 64)):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)


def test_truncated_jpeg_raises_naming_the_file(tmp_path):
    path = tmp_path / "cut.jpg"
    _noise_jpeg(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert str(path) in str(info.value) and "truncated" in str(info.value)
    assert isinstance(info.value, DeepMarkError)
    assert image_size(path) == (96, 64)  # the header is intact


@pytest.mark.parametrize("name, content, reason", [
    ("notes.jpg", b"this is not an image\n", "not a recognised image"),
    ("empty.png", b"", "empty"),
    ("garbage.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, ""),
])
def test_bad_files_raise_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    for fn in (read_image, image_size):
        with pytest.raises(ImageError) as info:
            fn(path)
        assert str(path) in str(info.value) and reason in str(info.value)


def test_missing_file_and_folder(tmp_path):
    for fn in (read_image, image_size):
        with pytest.raises(ImageError, match="file not found") as info:
            fn(tmp_path / "nope.jpg")
        assert "nope.jpg" in str(info.value)
        with pytest.raises(ImageError, match="not a file"):
            fn(tmp_path)


def test_image_size_does_not_decode(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    _noise_jpeg(path, (120, 50))

    def boom(self):
        raise AssertionError("decoded")

    monkeypatch.setattr(Image.Image, "load", boom)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", boom)
    assert image_size(path) == (120, 50)
