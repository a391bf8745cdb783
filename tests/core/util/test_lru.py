import pytest

from deepmark.core.errors import DeepMarkError
from deepmark.core.util.lru import LruDict


def test_least_recently_used_entry_goes_first():
    lru: LruDict[str, int] = LruDict(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "b" is now the least recently used
    lru.put("c", 3)
    assert "b" not in lru and lru.get("a") == 1 and lru.get("c") == 3 and len(lru) == 2
    assert lru.pop("a") == 1 and lru.pop("a") is None and lru.get("missing") is None
    lru.clear()
    assert len(lru) == 0


def test_capacity_must_be_positive():
    with pytest.raises(DeepMarkError, match="capacity"):
        LruDict(0)
