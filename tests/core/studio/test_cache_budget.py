"""The disk caches stay under their byte budget, dropping the least recently written files first."""

import os

import numpy as np

from deepmark.core.studio.cache import CacheBudget, budget_from_env
from deepmark.core.studio.heads_cache import HeadsDiskCache
from deepmark.core.synthetic.simulate import random_scene, simulated_heads


def _write(path, size, when):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, ns=(when, when))


def test_oldest_files_go_first_and_the_new_one_stays(tmp_path):
    for k in range(5):
        _write(tmp_path / "a" / f"{k}.bin", 100, 10**9 * (k + 1))
    budget = CacheBudget(tmp_path, max_bytes=350, pattern="*.bin")
    _write(tmp_path / "b" / "new.bin", 100, 10**9 * 10)
    budget.added(tmp_path / "b" / "new.bin")  # 600 bytes: the three oldest must go
    left = sorted(p.name for p in tmp_path.rglob("*.bin"))
    assert left == ["3.bin", "4.bin", "new.bin"] and budget.total == 300 and budget.removed == 3
    _write(tmp_path / "b" / "big.bin", 1000, 10**9 * 11)  # larger than the whole budget: kept alone
    budget.added(tmp_path / "b" / "big.bin")
    assert [p.name for p in tmp_path.rglob("*.bin")] == ["big.bin"]


def test_rewriting_a_file_is_counted_once(tmp_path):
    budget = CacheBudget(tmp_path, max_bytes=250)
    _write(tmp_path / "x.bin", 100, 10**9)
    budget.added(tmp_path / "x.bin")
    for _ in range(3):
        _write(tmp_path / "x.bin", 120, 2 * 10**9)
        budget.added(tmp_path / "x.bin")
    assert budget.total == 120 and (tmp_path / "x.bin").exists()


def test_budget_from_env(monkeypatch):
    monkeypatch.setenv("DEEPMARK_TEST_MB", "2")
    assert budget_from_env("DEEPMARK_TEST_MB", 7) == 2 * 2**20
    monkeypatch.setenv("DEEPMARK_TEST_MB", "lots")
    assert budget_from_env("DEEPMARK_TEST_MB", 7) == 7


def test_heads_cache_keeps_to_its_budget(tmp_path, taxonomy, semantic62):
    rng = np.random.default_rng(0)
    heads = simulated_heads(random_scene(rng, taxonomy, (128, 128)), (128, 128), taxonomy, semantic62, rng)
    cache = HeadsDiskCache(tmp_path, max_bytes=1)  # room for one file only
    size = None
    for k in range(4):
        cache.save(f"{k:032x}", "model", "plain", heads)
        size = size or cache.file(f"{0:032x}", "model", "plain").stat().st_size
    assert size > 1
    files = list(tmp_path.rglob("*.npz"))
    assert [f.stem for f in files] == [f"{3:032x}"]
    assert cache.load(f"{3:032x}", "model", "plain") is not None and cache.load(f"{0:032x}", "model", "plain") is None
