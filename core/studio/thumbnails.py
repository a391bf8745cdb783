"""Small previews of image files for the image list: made from a reduced-size decode, kept on disk (a
cache folder, one JPEG per file version) and in memory (least recently used dropped first).

A JPEG is decoded at 1/2, 1/4 or 1/8 of its size straight from the DCT coefficients (Pillow's
``draft``), so a 12-megapixel photo costs a few milliseconds instead of a full decode. The disk cache is
keyed by the file's resolved path, modification time (ns) and size, and the thumbnail size: an edited
file gets a new entry, and a stale one is simply never read again. Everything here is thread-safe: the
app calls ``ThumbnailCache.get`` from worker threads.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepmark.core.errors import DeepMarkError
from deepmark.core.imaging.read import _DECODE_ERRORS, ImageError, _rgb_from_pil, read_image
from deepmark.core.studio.cache import THUMBNAIL_CACHE_BYTES, CacheBudget, budget_from_env, thumbnails_dir
from deepmark.core.util.lru import LruDict

THUMB_SIZE = 96  # px, longest side
JPEG_QUALITY = 85


@dataclass(frozen=True, eq=False)
class Thumbnail:
    """``pixels`` (h, w, 3) uint8 RGB with max(h, w) ≤ the cache's size, or None and ``error`` saying why
    the file cannot be shown (missing, not an image, truncated...)."""

    pixels: np.ndarray | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.pixels is not None


def _check_file(path: Path) -> None:
    try:
        if not path.is_file():
            raise ImageError(f"{path}: file not found" if not path.exists() else f"{path}: not a file", path=path)
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: file is empty", path=path)
    except OSError as exc:
        raise ImageError(f"{path}: cannot access file ({exc})", path=path) from None


def _fit(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(rgb)
    target = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, target, interpolation=cv2.INTER_AREA)


def make_thumbnail(path: str | Path, size: int = THUMB_SIZE) -> np.ndarray:
    """(h, w, 3) uint8 RGB preview of an image file, upright (EXIF orientation applied), longest side
    ``size`` px (smaller images are kept as they are). Raises ImageError naming the file and the problem."""
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))  # JPEG: DCT-domain downscale to the smallest size ≥ the request
            im.load()
            upright = ImageOps.exif_transpose(im)
            rgb = _rgb_from_pil(upright)
    except UnidentifiedImageError:
        rgb = read_image(path)  # formats only OpenCV knows: full decode (rare)
    except _DECODE_ERRORS as exc:
        raise ImageError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})", path=path) from None
    return _fit(rgb, size)


class ThumbnailCache:
    """``get(path)`` → ``Thumbnail`` from memory, else from the disk cache, else made (and stored).

    ``folder``: the disk cache (default ``deepmark.core.studio.cache.thumbnails_dir()``; None with ``disk=False`` keeps
    thumbnails in memory only). ``memory_items`` bounds the in-memory LRU (a 96 px preview is ~27 kB).
    """

    def __init__(self, folder: str | Path | None = None, size: int = THUMB_SIZE, memory_items: int = 1024,
                 disk: bool = True) -> None:
        if size < 8 or memory_items < 1:
            raise DeepMarkError(f"thumbnail size must be >= 8 and memory_items >= 1, got {size}, {memory_items}")
        self.folder = (Path(folder) if folder is not None else thumbnails_dir()) if disk else None
        self.budget = None if self.folder is None else CacheBudget(
            self.folder, budget_from_env("DEEPMARK_THUMBNAIL_CACHE_MB", THUMBNAIL_CACHE_BYTES), "*.jpg")
        self.size = size
        self.memory_items = memory_items
        self._memory: LruDict[str, tuple[tuple[int, int] | None, Thumbnail]] = LruDict(memory_items)
        self._lock = threading.Lock()
        self.made = 0  # thumbnails decoded from their image file (the tests check the disk cache is used)

    def key(self, path: str | Path) -> tuple[str, tuple[int, int] | None]:
        """(disk cache file name, (mtime ns, size bytes)) of ``path``; the stamp is None when it cannot be read."""
        full = Path(path).expanduser().resolve()
        try:
            st = full.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        digest = hashlib.sha1(f"{full}|{stamp}|{self.size}".encode()).hexdigest()
        return digest, stamp

    def peek(self, path: str | Path) -> Thumbnail | None:
        """The thumbnail in memory, without touching the disk (for the GUI thread)."""
        with self._lock:
            found = self._memory.get(str(path))
        return None if found is None else found[1]

    def get(self, path: str | Path) -> Thumbnail:
        """The file's thumbnail; a file that cannot be read gives ``Thumbnail(None, message)`` (never raises
        for a bad image)."""
        name, stamp = self.key(path)
        with self._lock:
            found = self._memory.get(str(path))  # a stale entry is touched, then replaced below
        if found is not None and found[0] == stamp:
            return found[1]
        thumb = self._from_disk(name) if stamp is not None else None
        if thumb is None:
            try:
                pixels = make_thumbnail(path, self.size)
                self.made += 1
                thumb = Thumbnail(pixels)
                self._to_disk(name, pixels)
            except ImageError as exc:
                thumb = Thumbnail(None, str(exc))
        self._remember(str(path), stamp, thumb)
        return thumb

    def _remember(self, key: str, stamp: tuple[int, int] | None, thumb: Thumbnail) -> None:
        with self._lock:
            self._memory.put(key, (stamp, thumb))

    def _file(self, name: str) -> Path | None:
        return None if self.folder is None else self.folder / name[:2] / f"{name}.jpg"

    def _from_disk(self, name: str) -> Thumbnail | None:
        file = self._file(name)
        if file is None or not file.is_file():
            return None
        data = np.fromfile(file, np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:  # a damaged cache entry: made again
            file.unlink(missing_ok=True)
            return None
        return Thumbnail(np.ascontiguousarray(bgr[..., ::-1]))

    def _to_disk(self, name: str, pixels: np.ndarray) -> None:
        file = self._file(name)
        if file is None:
            return
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(pixels[..., ::-1]),
                                   [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return
        # rename into place (a reader never sees half a file) but no fsync: a lost entry is made again
        temp = file.with_name(f".{file.name}.{threading.get_ident()}.tmp")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            temp.write_bytes(encoded.tobytes())
            os.replace(temp, file)
            self.budget.added(file)
        except OSError:
            temp.unlink(missing_ok=True)  # a full or read-only cache folder costs speed, not correctness

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
