"""The review workflow's store queries (both back ends): next / previous image to review, correction
counts, and the per-category summary with the mean displacement of corrected landmarks."""

import numpy as np
import pytest

from deepmark.core.store import ItemData
from deepmark.core.studio.review import correction_counts, next_unreviewed, previous_unreviewed, review_summary


def _item(category_id: int, n: int) -> ItemData:
    landmarks = np.column_stack([np.linspace(10, 60, n), np.linspace(20, 70, n), np.full(n, 2.0)])
    return ItemData(category_id=category_id, box=np.array([5.0, 6.0, 90.0, 91.0]), landmarks=landmarks)


@pytest.fixture
def images(project, df2):
    return [project.images.add(p).id for p in sorted((df2 / "train" / "image").glob("*.jpg"))[:5]]


def test_next_and_previous_unreviewed_skip_reviewed_images_and_wrap(project, images):
    a, b, c, d, e = images
    for done in (b, c, e):
        project.images.set_status(done, "accepted")
    assert next_unreviewed(project, a).id == d
    assert next_unreviewed(project, d).id == a  # wraps to the start
    assert next_unreviewed(project, d, wrap=False) is None
    assert previous_unreviewed(project, d).id == a
    assert previous_unreviewed(project, a).id == d  # wraps to the end
    assert previous_unreviewed(project, a, wrap=False) is None
    project.images.set_status(d, "rejected")
    assert next_unreviewed(project, a) is None and previous_unreviewed(project, a) is None  # only itself left
    project.images.set_status(a, "skipped")
    assert next_unreviewed(project, c) is None


def test_corrections_and_the_per_category_summary(project, images, taxonomy):
    shirt = project.annotations.add_item(images[0], _item(1, 25), origin="imported").annotation_id
    skirt = project.annotations.add_item(images[1], _item(9, 8), origin="predicted").annotation_id
    project.annotations.add_item(images[1], _item(9, 8), origin="manual")
    assert correction_counts(project).landmarks == 0

    project.annotations.set_landmark(shirt, 0, x=13.0, y=24.0)  # moved 5 px (3-4-5) from (10, 20)
    project.annotations.set_landmark(shirt, 0, x=16.0, y=28.0)  # again: 10 px from where it started
    project.annotations.set_landmark(shirt, 3, v=1)  # visibility only: corrected, displaced 0 px
    project.annotations.set_landmark(skirt, 2, x=float(_item(9, 8).landmarks[2, 0]) + 6.0)
    counts = correction_counts(project)
    assert (counts.items, counts.landmarks) == (2, 3)
    assert str(counts) == "3 corrected landmarks (2 items)"

    summary = review_summary(project, taxonomy)
    rows = {r.category_id: r for r in summary.rows}
    assert len(summary.rows) == 13 and rows[2].items == 0 and rows[2].mean_displacement is None
    assert (rows[1].items, rows[1].corrected_landmarks) == (1, 2)
    assert rows[1].mean_displacement == pytest.approx(5.0)  # (10 + 0) / 2
    assert (rows[9].items, rows[9].corrected_landmarks) == (2, 1)
    assert rows[9].mean_displacement == pytest.approx(6.0)
    assert (summary.total.items, summary.total.corrected_landmarks) == (3, 3)
    assert summary.total.mean_displacement == pytest.approx(16.0 / 3)
    assert summary.images_by_status["new"] == 5

    project.history.undo(images[1])  # the skirt's correction: the counts follow
    assert correction_counts(project).landmarks == 2
    assert {r.category_id: r for r in review_summary(project, taxonomy).rows}[9].corrected_landmarks == 0


def test_items_outside_their_image_are_listed(project, images):
    a, b = images[:2]
    width, height = project.images.get(a).width, project.images.get(a).height
    inside = _item(1, 25)
    project.annotations.add_item(a, inside)
    box_out = ItemData(category_id=2, box=np.array([-30.0, 6.0, 90.0, 91.0]), landmarks=_item(2, 33).landmarks)
    project.annotations.add_item(a, box_out)
    points = _item(1, 25).landmarks.copy()
    points[3] = [width + 40.0, 10.0, 2.0]
    points[4] = [10.0, height + 40.0, 1.0]
    points[5] = [width + 99.0, height + 99.0, 0.0]  # not labelled: its place does not count
    project.annotations.add_item(b, ItemData(category_id=1, box=inside.box, landmarks=points))
    edge = _item(1, 25).landmarks.copy()
    edge[0] = [width + 0.5, -0.5, 2.0]  # within the tolerance of the border
    project.annotations.add_item(b, ItemData(category_id=1, box=inside.box, landmarks=edge))
    summary = review_summary(project)
    assert [(o.image_id, o.item_index, o.what) for o in summary.outside] == [(a, 1, "its box"), (b, 0, "2 landmarks")]
    assert summary.rows[0].outside == 1 and summary.rows[1].outside == 1 and summary.total.outside == 2
