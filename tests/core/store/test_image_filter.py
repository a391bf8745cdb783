"""Filtered, paged image listings (``ImageFilter``): status, category, lowest detection score of the
latest detector run, human corrections and name search, done by the database; and a 100,000-image
project that opens and pages fast."""

import time

import numpy as np
import pytest
from sqlalchemy import insert

from deepmark.core.domain.structures import Detection
from deepmark.core.store import ItemData, Project
from deepmark.core.store.images import ImageFilter
from deepmark.core.store.models import Image, utc_now
from deepmark.core.studio.display import demo_folder


def _detection(taxonomy, category_id: int, score: float) -> Detection:
    n = len(taxonomy.category(category_id).landmark_names)
    landmarks = np.column_stack([np.full(n, 10.0), np.full(n, 12.0), np.full(n, 0.5)])
    return Detection(category_id, score, score, np.array([5.0, 5.0, 40.0, 50.0]), landmarks, np.zeros(n, bool))


def _item(taxonomy, category_id: int) -> ItemData:
    n = len(taxonomy.category(category_id).landmark_names)
    landmarks = np.column_stack([np.full(n, 10.0), np.full(n, 12.0), np.full(n, 2.0)])
    return ItemData(category_id=category_id, box=np.array([5.0, 5.0, 40.0, 50.0]), landmarks=landmarks)


@pytest.fixture
def project(project_url):
    """Six demo images (no labels): 1 has a short sleeve top (1) item, 2 a trousers (8) prediction..."""
    with Project.create(project_url, root=demo_folder()) as project:
        for k in range(1, 7):
            project.images.add(demo_folder() / "image" / f"{k:06d}.jpg")
        yield project


def _ids(project, flt, limit=50):
    return [r.id for r in project.images.page(limit=limit, filter=flt)]


def test_each_filter(project, taxonomy):
    ids = [r.id for r in project.images.page()]
    assert len(ids) == 6
    a, b, c, d, e, f = ids
    project.annotations.add_item(a, _item(taxonomy, 1))
    old = project.model_runs.add("old")
    new = project.model_runs.add("new")
    project.predictions.add(b, old.id, [_detection(taxonomy, 8, 0.9), _detection(taxonomy, 1, 0.2)])
    project.predictions.add(b, new.id, [_detection(taxonomy, 8, 0.9), _detection(taxonomy, 8, 0.7)])
    project.predictions.add(c, new.id, [_detection(taxonomy, 8, 0.3)])
    imported = project.model_runs.add("an import", kind="import")
    project.predictions.add(d, imported.id, [_detection(taxonomy, 2, 0.1)])  # not a detector's score
    project.images.set_status(e, "accepted")

    assert _ids(project, ImageFilter()) == ids
    assert _ids(project, ImageFilter(statuses=("accepted",))) == [e]
    assert _ids(project, ImageFilter(statuses=("predicted",))) == [b, c, d]
    assert _ids(project, ImageFilter(category_id=1)) == [a, b]  # an item, or a prediction of any run
    assert _ids(project, ImageFilter(category_id=8)) == [b, c]
    # lowest score of the image's latest detector run: b's old 0.2 no longer counts, d's import never does
    assert _ids(project, ImageFilter(min_score_below=0.5)) == [c]
    assert _ids(project, ImageFilter(min_score_below=0.8)) == [b, c]
    assert _ids(project, ImageFilter(min_score_below=0.8, category_id=1)) == [b]
    assert _ids(project, ImageFilter(has_corrections=True)) == [a]  # a person added an item
    assert project.images.count(filter=ImageFilter(category_id=8)) == 2
    assert project.images.ids(ImageFilter(statuses=("predicted",))) == [b, c, d]


def test_corrections_follow_edits_and_undo(project, taxonomy):
    ids = [r.id for r in project.images.page()]
    run = project.model_runs.add("run")
    project.predictions.add(ids[2], run.id, [_detection(taxonomy, 3, 0.8)])
    pred = project.predictions.for_image(ids[2])[0]
    accepted = project.annotations.accept_prediction(pred.id)
    assert _ids(project, ImageFilter(has_corrections=True)) == []  # accepted as predicted: no correction
    project.annotations.set_landmark(accepted.annotation_id, 0, x=20.0)
    assert _ids(project, ImageFilter(has_corrections=True)) == [ids[2]]
    project.history.undo(ids[2])
    assert _ids(project, ImageFilter(has_corrections=True)) == []
    project.annotations.delete_item(accepted.annotation_id)  # a deletion is a correction too
    assert _ids(project, ImageFilter(has_corrections=True)) == [ids[2]]
    project.history.undo(ids[2])
    assert _ids(project, ImageFilter(has_corrections=True)) == []


def test_search_by_name_and_keyset_paging(project):
    ids = [r.id for r in project.images.page()]
    assert _ids(project, ImageFilter(name_contains="000003")) == [ids[2]]
    assert _ids(project, ImageFilter(name_contains="IMAGE/00000")) == ids  # case-insensitive
    assert _ids(project, ImageFilter(name_contains="%")) == []  # wildcards are plain characters
    flt = ImageFilter(name_contains=".jpg")
    first = project.images.page(limit=4, filter=flt)
    rest = project.images.page(after_id=first[-1].id, limit=4, filter=flt)
    assert [r.id for r in first + rest] == ids


def test_unknown_status_is_refused(project):
    from deepmark.core.store import InvalidValueError

    with pytest.raises(InvalidValueError, match="unknown review status"):
        project.images.page(filter=ImageFilter(statuses=("done",)))


@pytest.fixture(scope="module")
def big_project(tmp_path_factory):
    """100,000 image rows (no files): 1 in 10 new, the rest accepted; every 1000th has a low prediction."""
    path = tmp_path_factory.mktemp("big") / "big.deepmark"
    project = Project.create(path)
    now = utc_now()
    rows = [{"path": f"images/{k:07d}.jpg", "content_hash": f"{k:064x}", "size_bytes": 50_000, "width": 640,
             "height": 480, "status": "new" if k % 10 == 0 else "accepted", "created_at": now, "updated_at": now,
             "version": 1} for k in range(1, 100_001)]
    for start in range(0, len(rows), 25_000):
        project.write(lambda s, chunk=rows[start : start + 25_000]: s.execute(insert(Image), chunk))
    run = project.model_runs.add("run")
    from deepmark.core.domain.taxonomy import load_taxonomy
    from deepmark.core.store.bulk import insert_predictions

    taxonomy = load_taxonomy()
    project.write(lambda s: [insert_predictions(s, run.id, k, [_detection(taxonomy, 5, 0.05 if k % 2000 else 0.9)])
                             for k in range(1000, 100_001, 1000)])
    project.close()
    return path


@pytest.mark.slow
def test_a_100000_image_project_opens_and_filters_fast(big_project):
    started = time.perf_counter()
    with Project.open(big_project) as project:
        first = project.images.page(limit=256)
        opened = time.perf_counter() - started
        assert len(first) == 256 and first[0].id == 1
        assert opened < 2.0, f"open + first page took {opened:.2f} s"
        timings = {}
        for name, flt, expect in [("status", ImageFilter(statuses=("new",)), 10),
                                  ("name", ImageFilter(name_contains="0099999"), 1),
                                  ("low score", ImageFilter(min_score_below=0.5), 50),
                                  ("category", ImageFilter(category_id=5), 100),
                                  ("corrections", ImageFilter(has_corrections=True), 0)]:
            started = time.perf_counter()
            page = project.images.page(limit=256, filter=flt)
            timings[name] = time.perf_counter() - started
            assert len(page) == min(256, expect * (1 if name != "status" else 1000)), name
        assert all(t < 2.0 for t in timings.values()), timings
