"""Per-image doubt scores as the studio keeps them: computed on every decode (live view) and in batch runs,
stored under the key of the model, TTA and parameters (another key's score is never read as current); with
the flip test the mirror's heads are cached and the score's flip part uses them."""

import math
from dataclasses import replace

import numpy as np
import pytest

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import Detector, TestTimeAugmentation, average_heads
from deepmark.core.studio.batch import run_batch
from deepmark.core.studio.display import demo_folder, open_demo_project
from deepmark.core.studio.heads_cache import HeadsDiskCache, model_key
from deepmark.core.studio.session import Session
from deepmark.core.studio.uncertainty import doubt_key, image_doubt, mirror_key, own_heads

PARAMS = PostprocessParams.all_techniques(score_threshold=0.05, max_detections=5)
FLIP = TestTimeAugmentation(flip=True)


@pytest.fixture(scope="module")
def detector(tiny_onnx):
    return Detector(tiny_onnx, threads=1)


@pytest.fixture
def project(tmp_path):
    project, _ = open_demo_project(tmp_path / "demo")
    yield project
    project.close()


@pytest.fixture
def session(tmp_path):
    s = Session(PARAMS, heads_dir=tmp_path / "heads")
    yield s
    s.shutdown()


def test_the_key_names_model_tta_and_every_parameter():
    key = doubt_key("m" * 16, "flip0-s1", PARAMS)
    assert key == doubt_key("m" * 16, "flip0-s1", replace(PARAMS)) and len(key) == 32
    others = {doubt_key("n" * 16, "flip0-s1", PARAMS), doubt_key("m" * 16, "flip1-s1", PARAMS),
              doubt_key("m" * 16, "flip0-s1", replace(PARAMS, score_threshold=0.3)),
              doubt_key("m" * 16, "flip0-s1", replace(PARAMS, peak_threshold=0.2)),
              doubt_key("m" * 16, "flip0-s1", replace(PARAMS, heatmap_rescoring=False))}
    assert key not in others and len(others) == 5


@pytest.mark.parametrize("scales", [(1.0,), (0.75, 1.0)])
def test_the_flip_test_hands_out_the_mirror_it_averaged(detector, scales):
    image = read_image(demo_folder() / "image" / "000002.jpg")
    tta = TestTimeAugmentation(flip=True, scales=scales)
    averaged, mirror = detector.heads_and_mirror(image, tta)
    same = detector.heads(image, tta)
    for a, b in zip(averaged.arrays().values(), same.arrays().values(), strict=True):
        np.testing.assert_array_equal(a, b)  # what the flip test has always given
    plain = detector.heads(image, TestTimeAugmentation(scales=scales))
    np.testing.assert_allclose(average_heads(plain, mirror).hm, averaged.hm, atol=1e-6)
    np.testing.assert_allclose(own_heads(averaged, mirror).hm_hp, plain.hm_hp, atol=1e-5)
    assert detector.heads_and_mirror(image, TestTimeAugmentation(scales=scales))[1] is None


def test_the_live_view_scores_each_decoded_image_under_the_current_key(session, project, tiny_onnx):
    heard = []
    session.events.connect("doubt", lambda image_id, record: heard.append((image_id, record)))
    session.open_project(project)
    session.load_model(tiny_onnx)
    first, second = (project.images.get(i) for i in project.images.ids()[:2])
    session.show_image(first)
    key = session.doubt_key()
    stored = project.doubts.get(first.id, key)
    assert stored is not None and 0 <= stored.score <= 1 and math.isnan(stored.flip)
    assert heard == [(first.id, stored)]
    assert stored.model_run_id == session.model.run_id(project, PARAMS)
    expected = image_doubt(session.heads(), None, PARAMS, session.taxonomy, session.model.detector.grouping)
    assert stored.score == pytest.approx(expected.score)
    session.show_image(first)  # shown again: already scored under this key, nothing written
    assert len(heard) == 1

    # other parameters: the first image's score is not current any more; scored anew once they rest
    session.set_params(replace(PARAMS, score_threshold=0.3))
    new_key = session.doubt_key()
    assert new_key != key and project.doubts.get(first.id, new_key) is None
    session.settle_params()
    assert project.doubts.get(first.id, new_key) is not None
    session.show_image(second)
    assert set(project.doubts.scores(new_key)) == {first.id, second.id}
    assert set(project.doubts.scores(key)) == {first.id}  # the old scores stay under their own key


def test_with_the_flip_test_the_mirror_is_cached_and_scored(session, project, tiny_onnx, tmp_path):
    session.open_project(project)
    session.load_model(tiny_onnx)
    session.set_tta(FLIP)
    record = project.images.get(project.images.ids()[0])
    session.show_image(record)
    assert session.model.mirror(record.id) is not None
    stored = project.doubts.get(record.id, session.doubt_key())
    assert stored is not None and 0 <= stored.flip <= 1
    assert list((tmp_path / "heads").rglob(f"*{mirror_key(FLIP.key())}/**/*.npz"))

    # a new session (the memory is empty) finds both in the disk cache: no network run
    other = Session(PARAMS, heads_dir=tmp_path / "heads")
    other.open_project(project)
    other.load_model(tiny_onnx)
    other.set_tta(FLIP)
    other.show_image(record)
    assert other.model.runs == 0 and other.model.mirror(record.id) is not None
    other.shutdown()


@pytest.mark.parametrize("tta", [TestTimeAugmentation(), FLIP], ids=["plain", "flip"])
def test_a_batch_run_scores_every_image_once(project, detector, tiny_onnx, tmp_path, tta):
    cache = HeadsDiskCache(tmp_path / "heads")
    ids = project.images.ids()
    key = doubt_key(model_key(tiny_onnx), tta.key(), PARAMS)
    report = run_batch(project, detector, ids, PARAMS, tta=tta, heads_cache=cache)
    assert report.scored == len(ids) == 8 and not report.errors
    stored = [project.doubts.get(i, key) for i in ids]
    assert all(s is not None and s.model_run_id == report.run_id for s in stored)
    assert all(math.isnan(s.flip) != tta.flip for s in stored)  # the flip part exactly with the flip test
    again = run_batch(project, detector, ids, PARAMS, run_id=report.run_id, tta=tta, heads_cache=cache)
    assert again.already == 8 and again.scored == 0 and again.network_runs == 0

    # images predicted before scores existed (an upgraded project): scored from the cached heads only
    other = replace(PARAMS, score_threshold=0.2)
    later = run_batch(project, detector, ids, other, run_id=report.run_id, tta=tta, heads_cache=cache)
    assert later.scored == 8 and later.already == 8 and later.network_runs == 0 and later.from_cache == 8
    assert len(project.doubts.scores(doubt_key(model_key(tiny_onnx), tta.key(), other))) == 8


def test_the_live_view_and_a_batch_run_agree(session, project, detector, tiny_onnx, tmp_path):
    session.open_project(project)
    session.load_model(tiny_onnx)
    record = project.images.get(project.images.ids()[3])
    session.show_image(record)
    live = project.doubts.get(record.id, session.doubt_key())
    elsewhere, _ = open_demo_project(tmp_path / "again")  # the same images in another project, no heads cached
    run_batch(elsewhere, detector, [record.id], PARAMS)
    batch = elsewhere.doubts.get(record.id, session.doubt_key())
    elsewhere.close()
    assert batch.score == pytest.approx(live.score, abs=1e-6) and batch.expected_edits > 0
