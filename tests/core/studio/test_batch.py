"""The batch runner: every image of the demo gets stored predictions under one run and its raw heads in
the disk cache; a second run reads the cache instead of the network; cancel stops early; a corrupt
image is reported by name and the rest processed; the live model finds the batch's heads."""

import threading

import numpy as np
import pytest

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import Detector, TestTimeAugmentation
from deepmark.core.studio.batch import BatchProgress, run_batch
from deepmark.core.studio.display import open_demo_project
from deepmark.core.studio.heads_cache import HeadsDiskCache, image_key, model_key
from deepmark.core.studio.live import LiveModel

PARAMS = PostprocessParams.all_techniques(score_threshold=0.0, max_detections=5)


@pytest.fixture(scope="module")
def detector(tiny_onnx):
    return Detector(tiny_onnx, threads=1)


@pytest.fixture
def project(tmp_path):
    project, _ = open_demo_project(tmp_path / "demo")
    yield project
    project.close()


def test_batch_stores_predictions_and_caches_heads(project, detector, tmp_path):
    cache = HeadsDiskCache(tmp_path / "heads")
    ids = project.images.ids()
    seen: list[BatchProgress] = []
    report = run_batch(project, detector, ids, PARAMS, heads_cache=cache, progress=seen.append)
    assert not report.errors and not report.cancelled
    assert report.stored == report.network_runs == len(ids) == 8 and report.from_cache == 0
    assert report.processed_ids == ids and report.predictions == 5 * 8
    assert [p.done for p in seen] == list(range(1, 9)) and seen[-1].total == 8 and seen[-1].eta_s == 0
    assert seen[0].rate > 0
    for image_id in ids:
        assert len(project.predictions.for_image(image_id, report.run_id)) == 5
        assert project.images.get(image_id).status == "predicted"
    run = project.model_runs.get(report.run_id)
    assert run.params["score_threshold"] == 0.0 and run.model_meta["arch"] == "mobilenetv2"
    assert len(list((tmp_path / "heads").rglob("*.npz"))) == 8

    # the same images again: heads from the cache, no network; stored under a new run
    again = run_batch(project, detector, ids, PARAMS, heads_cache=cache)
    assert again.network_runs == 0 and again.from_cache == 8 and again.stored == 8
    # and into the same run: left as they are
    same = run_batch(project, detector, ids, PARAMS, run_id=report.run_id, heads_cache=cache)
    assert same.already == 8 and same.stored == 0


def test_cancel_stops_early(project, detector):
    cancel = threading.Event()

    def progress(p: BatchProgress) -> None:
        if p.done == 3:
            cancel.set()

    report = run_batch(project, detector, project.images.ids(), PARAMS, progress=progress, cancel=cancel)
    assert report.cancelled and report.stored == 3 and "cancelled" in report.summary()
    assert sum(bool(project.predictions.for_image(i)) for i in project.images.ids()) == 3


def test_a_corrupt_image_is_reported_and_the_rest_processed(project, detector, tmp_path):
    bad = tmp_path / "demo" / "broken.jpg"
    good = read_image(project.absolute_path(project.images.page()[0].path))
    import cv2

    cv2.imwrite(str(bad), good[..., ::-1])
    record = project.images.add(bad)
    bad.write_bytes(bad.read_bytes()[:200])  # truncated after it was added
    ids = project.images.ids()
    report = run_batch(project, detector, ids + [999_999], PARAMS)
    assert [e.path.name for e in report.errors] == ["broken.jpg", "image 999999"]
    assert "no longer in the project" in report.errors[1].message
    assert report.stored == 8 and record.id not in report.processed_ids
    assert not project.predictions.for_image(record.id)
    assert "2 failed" in report.summary()


def test_live_model_reads_the_batch_heads(project, tiny_onnx, tmp_path):
    live = LiveModel.load(tiny_onnx, threads=1, heads_dir=tmp_path / "heads")
    record = project.images.page()[0]
    report = run_batch(project, live.detector, [record.id], PARAMS, run_id=live.run_id(project, PARAMS),
                       heads_cache=live.cache.disk, model=live.model_key)
    assert report.network_runs == 1
    heads = live.heads(record.id, None, image_key(record))  # no image needed: it is in the cache
    assert live.runs == 0 and live.cached(record.id) is heads
    stored = project.predictions.for_image(record.id, report.run_id)
    decoded = live.decode(heads, PARAMS)
    np.testing.assert_allclose([d.score for d in decoded], [p.score for p in stored], atol=1e-6)
    # already stored by the batch under the live model's run: not stored twice
    live.store_predictions(project, record.id, decoded, PARAMS)
    assert len(project.predictions.for_image(record.id)) == 5 and len(project.model_runs.list()) == 1
    # an image the batch did not see: the network runs once, and its heads are cached for next time
    other = project.images.page()[1]
    live.heads(other.id, read_image(project.absolute_path(other.path)), image_key(other))
    assert live.runs == 1
    fresh = LiveModel.load(tiny_onnx, threads=1, heads_dir=tmp_path / "heads")
    fresh.heads(other.id, None, image_key(other))
    assert fresh.runs == 0


def test_keys(tiny_onnx, project):
    assert len(model_key(tiny_onnx)) == 16
    record = project.images.page()[0]
    assert image_key(record) == record.content_hash[:32]
    assert TestTimeAugmentation(flip=True).key() != TestTimeAugmentation().key()
