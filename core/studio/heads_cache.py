"""The studio's one raw-heads cache: memory (LRU) over disk, with one rounding rule.

The disk part holds one ``deepmark.core.formats.heads_file`` file per (image content, model file content,
TTA): keyed by content hashes rather than project image ids, so it is shared by every project holding the
same photo, by the live view, batch jobs and tuning, and never confused by two projects' image 1. Every
network result is rounded to the disk format's precision (``at_cache_precision``) before anything decodes
it, so an image's stored predictions do not depend on which path (live view, batch job, tuning) saw it
first, nor on whether the disk cache could be written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import RawHeads
from deepmark.core.errors import DeepMarkError, HeadsFileError
from deepmark.core.formats.heads_file import load_heads, save_heads
from deepmark.core.store import ImageRecord
from deepmark.core.store.predictions import file_sha256
from deepmark.core.studio.cache import HEADS_CACHE_BYTES, CacheBudget, budget_from_env, heads_dir
from deepmark.core.util.lru import LruDict


def model_key(path: str | Path) -> str:
    """A short name of a model file's content (first 16 hex digits of its SHA-256), for cache keys."""
    return file_sha256(path)[:16]


def image_key(record: ImageRecord) -> str:
    """A short name of an image's content: its stored SHA-256, or (never hashed) a hash of its path and size."""
    return content_key(record.content_hash, record.path, record.size_bytes)


def content_key(content_hash: str | None, path: str, size_bytes: int | None) -> str:
    """``image_key`` from an image row's columns (stored path, not the absolute one)."""
    if content_hash:
        return content_hash[:32]
    return "p" + hashlib.sha1(f"{path}|{size_bytes}".encode()).hexdigest()[:31]


class HeadsDiskCache:
    """Raw heads on disk under ``folder`` (default ``deepmark.core.studio.cache.heads_dir()``):
    ``<model key>/<tta key>/<image key[:2]>/<image key>.npz`` in the ``deepmark.core.formats.heads_file`` format
    (float16)."""

    def __init__(self, folder: str | Path | None = None, max_bytes: int | None = None) -> None:
        self.folder = Path(folder) if folder is not None else heads_dir()
        if max_bytes is None:
            max_bytes = budget_from_env("DEEPMARK_HEADS_CACHE_MB", HEADS_CACHE_BYTES)
        self.budget = CacheBudget(self.folder, max_bytes, "*.npz")  # oldest heads go first

    def file(self, image: str, model: str, tta: str) -> Path:
        return self.folder / model / tta / image[:2] / f"{image}.npz"

    def load(self, image: str, model: str, tta: str) -> RawHeads | None:
        """The cached heads, or None (absent; a damaged file is removed so it is made again)."""
        path = self.file(image, model, tta)
        if not path.is_file():
            return None
        try:
            return load_heads(path).heads
        except HeadsFileError:
            path.unlink(missing_ok=True)
            return None

    def save(self, image: str, model: str, tta: str, heads: RawHeads, image_id: int = -1,
             grouping: str = "semantic62") -> None:
        """Write the heads (atomically; float16, so pass them ``at_cache_precision`` to decode what a later
        ``load`` gives back). OSError when the cache folder cannot be written."""
        path = self.file(image, model, tta)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_heads(path, heads, image_id=image_id, grouping=grouping)
        self.budget.added(path)


@dataclass(frozen=True)
class ModelHeadsCache:
    """The disk heads cache as one model and TTA setting see it (safe to use from a worker thread: one
    file per image, written atomically)."""

    disk: HeadsDiskCache
    model: str
    tta: str

    def load(self, image: str) -> RawHeads | None:
        return self.disk.load(image, self.model, self.tta)

    def save(self, image: str, heads: RawHeads) -> None:
        """Store ``heads`` (OSError: not stored)."""
        self.disk.save(image, self.model, self.tta, heads)


def at_cache_precision(heads: RawHeads) -> RawHeads:
    """The one rounding rule: ``heads`` with every array rounded through float16, as the heads file stores
    them. Every network result is rounded so before it is decoded or cached, so an image decodes the same
    whether its heads came from the network, the memory cache or the disk cache."""
    arrays = {k: v.astype(np.float16).astype(np.float32) for k, v in heads.arrays().items()}
    return RawHeads(**arrays, image_to_map=heads.image_to_map, image_size=heads.image_size)


class HeadsCache:
    """One model's heads for the open project: in memory by (image id, TTA key), least recently used
    dropped first (``capacity`` entries; a 256² input's heads are ~3 MB), over the disk cache (by content
    key) when ``disk`` is given. ``heads`` computes what neither holds, once."""

    def __init__(self, model_key: Callable[[], str], disk: HeadsDiskCache | None = None, capacity: int = 16,
                 grouping: str = "semantic62") -> None:
        if capacity < 1:
            raise DeepMarkError(f"heads cache capacity must be >= 1, got {capacity}")
        self._model_key = model_key  # hashing a model file takes a while: only when the disk is used
        self.disk = disk
        self.grouping = grouping
        self._memory: LruDict[tuple[int, str], RawHeads] = LruDict(capacity)

    def get(self, image_id: int, tta: str) -> RawHeads | None:
        """The heads in memory, or None (never reads the disk, never computes)."""
        return self._memory.get((image_id, tta))

    def lookup(self, image_id: int, image: str | None, tta: str) -> RawHeads | None:
        """The heads from memory, else from the disk (``image``: the content key; None skips the disk; kept in
        memory when found there); None when neither has them (never computes)."""
        found = self.get(image_id, tta)
        if found is None and self.disk is not None and image is not None:
            found = self.disk.load(image, self._model_key(), tta)
            if found is not None:
                self._memory.put((image_id, tta), found)
        return found

    def load_saved(self, image: str | None, tta: str) -> RawHeads | None:
        """The heads from the disk only (None: not there, or no disk cache). Touches no memory: safe from a
        worker thread; ``put`` them after. HeadsFileError for a damaged file."""
        if self.disk is None or image is None:
            return None
        return self.disk.load(image, self._model_key(), tta)

    def computed(self, image: str | None, tta: str, raw: RawHeads, image_id: int = -1) -> RawHeads:
        """Network output ``raw`` rounded ``at_cache_precision`` and saved to disk (a cache that cannot be
        written only costs a later re-run). Touches no memory: safe from a worker thread; ``put`` it after."""
        heads = at_cache_precision(raw)
        if self.disk is not None and image is not None:
            try:
                self.disk.save(image, self._model_key(), tta, heads, image_id, self.grouping)
            except OSError:
                pass
        return heads

    def heads(self, image_id: int, image: str | None, tta: str,
              compute: Callable[[], RawHeads]) -> tuple[RawHeads, bool]:
        """(heads, computed): ``lookup``, else ``compute()`` through ``computed`` and kept in memory."""
        found = self.lookup(image_id, image, tta)
        if found is not None:
            return found, False
        found = self.computed(image, tta, compute(), image_id)
        self._memory.put((image_id, tta), found)
        return found, True

    def put(self, image_id: int, heads: RawHeads, tta: str) -> RawHeads:
        """Keep heads in memory, rounded by the one rule (a no-op for heads that went through ``computed``)."""
        kept = at_cache_precision(heads)
        self._memory.put((image_id, tta), kept)
        return kept

    def view(self, tta: str) -> ModelHeadsCache | None:
        """The disk part for this model and ``tta``, for work in another thread (None without a disk)."""
        return None if self.disk is None else ModelHeadsCache(self.disk, self._model_key(), tta)

    def clear(self) -> None:
        """Forget the memory part (another project's image ids name other images); the disk stays."""
        self._memory.clear()

    def __len__(self) -> int:
        return len(self._memory)
