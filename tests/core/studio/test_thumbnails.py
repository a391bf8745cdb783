"""Thumbnails: reduced-size decoding, the disk cache (keyed by path, mtime and size), the memory LRU and
bad files reported by name."""

import os

import numpy as np
import pytest
from PIL import Image

from deepmark.core.imaging.read import ImageError
from deepmark.core.studio.thumbnails import ThumbnailCache, make_thumbnail


def _jpeg(path, size=(640, 480), color=(200, 40, 10), exif_rotate=False):
    image = Image.new("RGB", size, color)
    if exif_rotate:
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90° clockwise to view: width and height swap
        image.save(path, quality=90, exif=exif)
    else:
        image.save(path, quality=90)
    return path


def test_make_thumbnail_fits_the_size_and_is_upright(tmp_path):
    thumb = make_thumbnail(_jpeg(tmp_path / "a.jpg"), 96)
    assert thumb.shape == (72, 96, 3) and thumb.dtype == np.uint8
    np.testing.assert_allclose(thumb.reshape(-1, 3).mean(axis=0), (200, 40, 10), atol=6)
    rotated = make_thumbnail(_jpeg(tmp_path / "r.jpg", exif_rotate=True), 96)
    assert rotated.shape == (96, 72, 3)
    small = make_thumbnail(_jpeg(tmp_path / "s.jpg", size=(40, 30)), 96)
    assert small.shape == (30, 40, 3)  # never enlarged


def test_png_with_alpha_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    rgba.save(tmp_path / "t.png")
    thumb = make_thumbnail(tmp_path / "t.png", 50)
    assert thumb.shape == (25, 50, 3) and thumb.min() == 255


@pytest.mark.parametrize("content, words", [(None, "not found"), (b"", "empty"), (b"not an image", "image")])
def test_bad_files_raise_naming_the_file(tmp_path, content, words):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=words) as info:
        make_thumbnail(path)
    assert "bad.jpg" in str(info.value)


def test_truncated_jpeg_is_an_error(tmp_path):
    data = _jpeg(tmp_path / "full.jpg", color=(1, 2, 3)).read_bytes()
    Image.effect_noise((640, 480), 60).convert("RGB").save(tmp_path / "noise.jpg", quality=95)
    noisy = (tmp_path / "noise.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(noisy[: len(noisy) // 2])
    assert data
    with pytest.raises(ImageError, match="cut.jpg"):
        make_thumbnail(tmp_path / "cut.jpg")


def test_cache_uses_disk_then_memory_and_sees_a_changed_file(tmp_path):
    folder = tmp_path / "cache"
    image = _jpeg(tmp_path / "a.jpg")
    cache = ThumbnailCache(folder, size=64)
    first = cache.get(image)
    assert first.ok and first.pixels.shape == (48, 64, 3) and cache.made == 1
    assert len(list(folder.rglob("*.jpg"))) == 1
    assert cache.get(image) is first and cache.peek(image) is first  # memory
    again = ThumbnailCache(folder, size=64)  # a new session: from the disk cache, not decoded
    from_disk = again.get(image)
    assert again.made == 0 and from_disk.ok
    np.testing.assert_allclose(from_disk.pixels.astype(float), first.pixels.astype(float), atol=8)
    _jpeg(image, size=(320, 320), color=(0, 0, 255))  # the file changes: its thumbnail follows
    os.utime(image, ns=(1, 1))
    changed = again.get(image)
    assert again.made == 1 and changed.pixels.shape == (64, 64, 3)


def test_cache_memory_is_bounded_and_errors_are_thumbnails(tmp_path):
    cache = ThumbnailCache(tmp_path / "cache", size=32, memory_items=2)
    paths = [_jpeg(tmp_path / f"{k}.jpg", size=(50, 40)) for k in range(3)]
    for p in paths:
        cache.get(p)
    assert cache.peek(paths[0]) is None and cache.peek(paths[2]) is not None
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    bad = cache.get(tmp_path / "bad.jpg")
    assert not bad.ok and "bad.jpg" in bad.error
    assert ThumbnailCache(disk=False).folder is None


def test_a_damaged_cache_entry_is_made_again(tmp_path):
    image = _jpeg(tmp_path / "a.jpg")
    cache = ThumbnailCache(tmp_path / "cache", size=32)
    cache.get(image)
    entry = next((tmp_path / "cache").rglob("*.jpg"))
    entry.write_bytes(b"garbage")
    fresh = ThumbnailCache(tmp_path / "cache", size=32)
    assert fresh.get(image).ok and fresh.made == 1
