"""One heads cache, one rounding rule: an image's predictions are the same whichever path (live view, batch
job, tuning) computed its heads first, with or without a disk cache; the memory part is an LRU."""

import numpy as np
import pytest

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import Affine, PostprocessParams, RawHeads
from deepmark.core.errors import DeepMarkError
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import Detector
from deepmark.core.studio.batch import run_batch
from deepmark.core.studio.display import open_demo_project
from deepmark.core.studio.heads_cache import HeadsCache, HeadsDiskCache, at_cache_precision, image_key
from deepmark.core.studio.live import LiveModel
from deepmark.core.studio.tuning import TuningSession

PARAMS = PostprocessParams.all_techniques(score_threshold=0.0, max_detections=8)


def _heads(seed: int = 0, groups: int = 62, h: int = 8, w: int = 10) -> RawHeads:
    rng = np.random.default_rng(seed)
    z = lambda c: rng.random((c, h, w), dtype=np.float32)  # noqa: E731
    return RawHeads(z(13), z(2), z(2), z(2 * groups), z(groups), z(2), Affine.scale_translate(0.25), (4 * w, 4 * h))


def test_memory_is_least_recently_used_per_tta(tmp_path):
    cache, computed = HeadsCache(lambda: "model", None, capacity=2), []

    def compute(seed):
        return lambda: computed.append(seed) or _heads(seed)

    first, fresh = cache.heads(1, None, "plain", compute(1))
    assert fresh and cache.get(1, "plain") is first
    cache.heads(2, None, "plain", compute(2))
    assert cache.heads(1, None, "plain", compute(9)) == (first, False)  # 1 is now the most recent
    cache.heads(3, None, "plain", compute(3))
    assert cache.get(2, "plain") is None and cache.get(1, "plain") is first and len(cache) == 2
    assert cache.get(1, "flip1-s1") is None  # another TTA setting is another entry
    assert computed == [1, 2, 3]
    with pytest.raises(DeepMarkError):
        HeadsCache(lambda: "model", None, capacity=0)


def test_every_network_result_is_rounded_like_the_disk_file(tmp_path):
    raw = _heads(5)
    in_memory, _ = HeadsCache(lambda: "m", None).heads(1, "k" * 32, "plain", lambda: raw)
    disk = HeadsDiskCache(tmp_path / "heads")
    with_disk, _ = HeadsCache(lambda: "m", disk).heads(1, "k" * 32, "plain", lambda: raw)
    from_disk = disk.load("k" * 32, "m", "plain")
    for name, array in at_cache_precision(raw).arrays().items():
        assert np.array_equal(in_memory.arrays()[name], array)
        assert np.array_equal(with_disk.arrays()[name], array)
        assert np.array_equal(from_disk.arrays()[name], array)
    assert not np.array_equal(raw.hm, in_memory.hm)  # the rule does change float32 heads


def _stored(project, run_id: int, image_id: int) -> list[tuple]:
    return [(p.category_id, round(p.score, 7), tuple(np.round(p.box, 4)), np.round(p.landmarks, 4).tobytes())
            for p in project.predictions.for_image(image_id, run_id)]


@pytest.mark.parametrize("with_disk", [True, False])
def test_the_same_image_through_each_path_stores_the_same_predictions(tiny_onnx, tmp_path, with_disk):
    """Live view first, then a batch job reusing its cache; a batch job alone; tuning alone: identical."""
    project, _ = open_demo_project(tmp_path / "demo")
    with project:
        record = project.images.get(project.images.ids()[0])
        rgb = read_image(project.absolute_path(record.path))
        folder = tmp_path / "heads" if with_disk else None

        live = LiveModel(Detector(tiny_onnx, threads=1), heads_dir=folder)
        live_dets = live.decode(live.heads(record.id, rgb, image_key(record)), PARAMS)
        live.store_predictions(project, record.id, live_dets, PARAMS)
        live_run = live.run_id(project, PARAMS)

        fresh = Detector(tiny_onnx, threads=1)
        batch = run_batch(project, fresh, [record.id], PARAMS, heads_cache=None)  # network, no cache
        after_live = run_batch(project, fresh, [record.id], PARAMS,
                               heads_cache=HeadsDiskCache(folder) if with_disk else None)

        tuning = TuningSession([], fresh.taxonomy, fresh.grouping)
        tuning.images = []
        heads_fn = lambda _id, image: fresh.heads(image)  # noqa: E731
        from deepmark.core.studio.tuning import LabelledImage

        tuning.images = [LabelledImage(record.id, project.absolute_path(record.path), [], image_key(record))]
        tuning.load_heads(heads_fn)
        tuned = decode_detections(tuning.heads[record.id], PARAMS, fresh.taxonomy, fresh.grouping)

        expected = _stored(project, live_run, record.id)
        assert expected and _stored(project, batch.run_id, record.id) == expected
        assert _stored(project, after_live.run_id, record.id) == expected
        assert [(d.category_id, round(d.score, 7)) for d in tuned] == [(e[0], e[1]) for e in expected]
