"""A size-bounded in-memory mapping that drops the least recently used entry first (heads, thumbnails)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from deepmark.core.errors import DeepMarkError

K = TypeVar("K")
V = TypeVar("V")


class LruDict(Generic[K, V]):
    """At most ``capacity`` entries; ``get`` and ``put`` make an entry the most recently used. Not
    thread-safe: callers that share one across threads hold their own lock."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise DeepMarkError(f"cache capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
