"""Per-image doubt scores in the store (``project.doubts``, table image_doubts, revision 0005): kept per key,
replaced not duplicated, refused out of range; the doubt review order; an older project upgraded with its data
kept; a project missing the table or one of its columns refused as damaged."""

import math

import pytest
from PIL import Image as PILImage
from sqlalchemy import create_engine, text

from deepmark.core.store import DamagedProjectError, InvalidValueError, NotFoundError, Project
from deepmark.core.store.schema import head_revision, missing_parts

KEY, OTHER = "a" * 32, "b" * 32


def _images(project, folder, count, status="new"):
    ids = []
    for k in range(count):
        path = folder / f"img{k:02d}.png"
        PILImage.new("RGB", (8 + k, 8)).save(path)
        ids.append(project.images.add(path, status=status).id)
    return ids


def _put(project, image_id, score, key=KEY, **parts):
    values = {"expected_edits": -50 * math.log1p(-min(score, 0.999)), "centre": 0.1, "landmarks": 0.2} | parts
    return project.doubts.put(image_id, key, score=score, **values)


@pytest.fixture
def images(project, tmp_path):
    return _images(project, tmp_path, 6)


def test_scores_are_kept_per_key_and_replaced(project, images):
    a, b = images[:2]
    first = _put(project, a, 0.4, flip=0.25)
    assert (first.score, first.flip, first.model_run_id) == (0.4, 0.25, None)
    _put(project, a, 0.7)  # again under the same key: replaced, not a second row
    _put(project, a, 0.1, key=OTHER)
    _put(project, b, 0.3)
    assert project.doubts.scores(KEY) == {a: 0.7, b: 0.3}
    assert project.doubts.scores(OTHER) == {a: 0.1}
    assert project.doubts.scores(KEY, [b, images[2]]) == {b: 0.3}
    assert project.doubts.count(KEY) == 2 and project.doubts.count() == 3
    assert math.isnan(project.doubts.get(a, KEY).flip)  # replaced without the mirror's part
    assert project.doubts.get(images[2], KEY) is None  # never computed: no score, not 0


def test_scores_follow_their_run_and_image(project, images):
    run = project.model_runs.add("m", model_hash="f" * 64)
    project.doubts.put(images[0], KEY, score=0.5, expected_edits=35.0, centre=0.0, landmarks=0.3, run_id=run.id)
    assert project.doubts.get(images[0], KEY).model_run_id == run.id
    project.model_runs.remove(run.id)  # the score stays, its run is unknown now
    assert project.doubts.get(images[0], KEY).model_run_id is None


@pytest.mark.parametrize("field,value", [("score", 1.5), ("score", -0.1), ("score", math.nan), ("centre", 2.0),
                                         ("landmarks", math.inf), ("expected_edits", -1.0), ("flip", 1.2)])
def test_values_out_of_range_are_refused_and_nothing_stored(project, images, field, value):
    values = {"score": 0.5, "expected_edits": 3.0, "centre": 0.1, "landmarks": 0.1, "flip": 0.1} | {field: value}
    with pytest.raises(InvalidValueError, match=field):
        project.doubts.put(images[0], KEY, **values)
    assert project.doubts.count() == 0


def test_bad_keys_and_unknown_images_are_refused(project, images):
    for key in ("", "k" * 65):
        with pytest.raises(InvalidValueError, match="doubt key"):
            _put(project, images[0], 0.5, key=key)
    with pytest.raises(NotFoundError, match="image 9999"):
        _put(project, 9999, 0.5)
    assert project.doubts.count() == 0


def test_order_puts_scored_first_highest_first_ties_by_id_then_unscored_in_file_order(project, images):
    a, b, c, d, e, f = images
    for image_id, score in ((c, 0.9), (e, 0.5), (a, 0.5), (f, 0.2)):
        _put(project, image_id, score)
    _put(project, b, 0.99, key=OTHER)  # another model's score: not current, b counts as unscored
    assert project.doubts.order(images, KEY) == [c, a, e, f, b, d]


def test_doubt_review_order_steps_through_the_images_that_need_review(project, tmp_path):
    a, b, c, d, e, f = _images(project, tmp_path, 6)
    for image_id, score in ((c, 0.9), (e, 0.5), (a, 0.5), (f, 0.2), (d, 0.95)):
        _put(project, image_id, score)
    project.images.set_status(d, "accepted")  # reviewed: skipped however doubtful
    order = [c, a, e, f, b]  # scored (ties by id), then the unscored in file order
    step = project.doubts.next_by_doubt
    assert step(0, KEY).id == c
    for here, there in zip(order, order[1:] + order[:1], strict=True):
        assert step(here, KEY).id == there  # forward, wrapping to the start
        assert step(there, KEY, forward=False).id == here  # and back
    assert step(b, KEY, wrap=False) is None
    assert step(c, KEY, forward=False, wrap=False) is None
    assert step(d, KEY).id == c  # from a reviewed image: the order resumes after its score
    for image_id in (a, b, c, e):
        project.images.set_status(image_id, "accepted")
    assert step(f, KEY) is None  # nothing else needs review


def test_review_by_doubt_without_any_score_is_file_order(project, images):
    assert [project.doubts.next_by_doubt(i, KEY).id for i in images] == images[1:] + images[:1]


def test_an_older_project_is_upgraded_with_everything_kept(tmp_path):
    """A 0004 project file (made by downgrading one with data): opened, upgraded, every row kept, new table."""
    from alembic import command

    from deepmark.core.store.schema import alembic_config

    path = tmp_path / "old.deepmark"
    with Project.create(path, root=tmp_path) as project:
        ids = _images(project, tmp_path, 3, status="accepted")
        run = project.model_runs.add("m", model_hash="e" * 64)
        project.set_setting("review_order", "uncertainty")
        _put(project, ids[0], 0.5)
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0004")
        tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
        assert "image_doubts" not in tables
    engine.dispose()
    with Project.open(path) as project:
        assert project.schema_revision() == head_revision()
        assert [r.status for r in project.images.get_many(ids).values()] == ["accepted"] * 3
        assert project.model_runs.get(run.id).model_hash == "e" * 64
        assert project.setting("review_order") == "uncertainty"
        assert project.doubts.count() == 0  # scores come back as the model runs again
        _put(project, ids[1], 0.3)
        assert project.doubts.scores(KEY) == {ids[1]: 0.3}


@pytest.mark.parametrize("damage", ["DROP TABLE image_doubts", "ALTER TABLE image_doubts DROP COLUMN landmarks"])
def test_a_damaged_doubt_table_is_reported_and_the_project_refused(tmp_path, damage):
    path = tmp_path / "p.deepmark"
    with Project.create(path, root=tmp_path) as project:
        _images(project, tmp_path, 1)
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text(damage))
        missing = missing_parts(conn, head_revision())
    engine.dispose()
    assert missing == (["table image_doubts"] if "TABLE image_doubts" in damage and "DROP TABLE" in damage
                       else ["column image_doubts.landmarks"])
    before = path.read_bytes()
    with pytest.raises(DamagedProjectError, match=r"image_doubts") as caught:
        Project.open(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_bytes() == before  # refused untouched
