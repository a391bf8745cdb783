"""Edits on both back ends: each one a logged transaction, optimistic concurrency, undo across sessions."""

import threading

import numpy as np
import pytest

from deepmark.core.domain.structures import Detection, PostprocessParams
from deepmark.core.store import (
    ConflictError,
    InvalidValueError,
    ItemData,
    NotFoundError,
    Project,
    UndoError,
    project_status,
)


def _item(category_id=1, n=25, shift=0.0) -> ItemData:
    rng = np.random.default_rng(category_id)
    landmarks = np.column_stack([rng.uniform(10, 80, (n, 2)) + shift, np.full(n, 2.0)])
    return ItemData(category_id=category_id, box=np.array([5.0, 6.0, 90.0, 91.0]), landmarks=landmarks,
                    style=1, occlusion=2, segmentation=[[1.0, 2.0, 30.0, 2.0, 30.0, 40.0]])


@pytest.fixture
def image_with_item(project, df2):
    image = project.images.add(df2 / "train" / "image" / "000001.jpg")
    receipt = project.annotations.add_item(image.id, _item(), origin="imported")
    return image.id, receipt


def test_landmark_correction_is_logged_and_flags_the_landmark(project, image_with_item):
    image_id, added = image_with_item
    before = project.annotations.get(added.annotation_id)
    receipt = project.annotations.set_landmark(added.annotation_id, 3, x=50.25, y=60.5, v=1,
                                               expected_version=added.image_version, author="ana")
    assert receipt.image_version == added.image_version + 1
    after = project.annotations.get(added.annotation_id)
    assert after.origin == "corrected"
    np.testing.assert_array_equal(after.landmarks[3], [50.25, 60.5, 1])
    assert after.corrected.tolist() == [i == 3 for i in range(25)]
    np.testing.assert_array_equal(np.delete(after.landmarks, 3, 0), np.delete(before.landmarks, 3, 0))
    edit = project.history.for_image(image_id)[-1]
    assert (edit.action, edit.author, edit.landmark_idx) == ("set_landmark", "ana", 3)
    assert edit.before["x"] == before.landmarks[3, 0] and edit.after["x"] == 50.25
    status = project_status(project)
    assert status.corrected_landmarks == {1: 1}
    expected = float(np.hypot(50.25 - before.landmarks[3, 0], 60.5 - before.landmarks[3, 1]))
    assert status.mean_displacement[1] == pytest.approx(expected)


def test_stale_version_is_a_conflict_and_writes_nothing(project_url, project, image_with_item):
    image_id, added = image_with_item
    other = Project.open(project_url, author="bob")
    try:
        seen = other.images.get(image_id).version
        project.annotations.set_landmark(added.annotation_id, 0, x=1.0, expected_version=seen, author="ana")
        with pytest.raises(ConflictError, match=r"image \d+: changed by ana .*reload"):
            other.annotations.set_landmark(added.annotation_id, 0, x=2.0, expected_version=seen)
        assert other.annotations.get(added.annotation_id).landmarks[0, 0] == 1.0
        assert len(other.history.for_image(image_id)) == 2
    finally:
        other.close()


def test_concurrent_editors_one_wins(project_url, project, image_with_item):
    image_id, added = image_with_item
    version = project.images.get(image_id).version
    results = []

    def edit(name: str, x: float) -> None:
        with Project.open(project_url, author=name) as mine:
            try:
                mine.annotations.set_landmark(added.annotation_id, 5, x=x, expected_version=version)
                results.append(name)
            except ConflictError:
                results.append("conflict")
    threads = [threading.Thread(target=edit, args=(f"user{i}", float(i))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results).count("conflict") == 2
    winner = next(r for r in results if r != "conflict")
    assert project.annotations.get(added.annotation_id).landmarks[5, 0] == float(winner[-1])


def test_undo_works_across_sessions(project_url, project, image_with_item):
    image_id, added = image_with_item
    original = project.annotations.get(added.annotation_id)
    project.annotations.set_box(added.annotation_id, [10, 10, 50, 50])
    project.annotations.set_landmark(added.annotation_id, 2, x=33.0, y=44.0)
    project.images.set_status(image_id, "accepted", reviewer="carla")
    project.close()
    with Project.open(project_url) as later:
        assert later.images.get(image_id).status == "accepted"
        later.history.undo(image_id)
        assert later.images.get(image_id).status == "new"
        later.history.undo(image_id)
        later.history.undo(image_id)
        restored = later.annotations.get(added.annotation_id)
        np.testing.assert_array_equal(restored.box, original.box)
        np.testing.assert_array_equal(restored.landmarks, original.landmarks)
        assert restored.origin == "imported" and not restored.corrected.any()
        history = later.history.for_image(image_id)
        assert [e.action for e in history] == ["add_item", "set_box", "set_landmark", "set_status",
                                               "undo", "undo", "undo"]
        assert [e.undone_by is not None for e in history[1:4]] == [True, True, True]
        later.history.undo(image_id)  # the addition itself
        assert later.annotations.for_image(image_id) == []
        with pytest.raises(UndoError, match="nothing to undo"):
            later.history.undo(image_id)


def test_delete_and_undo_restores_the_item(project, image_with_item):
    image_id, added = image_with_item
    original = project.annotations.get(added.annotation_id)
    project.annotations.delete_item(added.annotation_id)
    assert project.annotations.for_image(image_id) == []
    project.history.undo(image_id)
    back = project.annotations.get(added.annotation_id)
    assert back.same_content(original) and back.origin == original.origin


def test_undoing_an_older_edit_needs_its_target_unchanged(project, image_with_item):
    image_id, added = image_with_item
    first = project.annotations.set_landmark(added.annotation_id, 1, x=11.0)
    project.annotations.set_landmark(added.annotation_id, 2, x=12.0)
    project.history.undo(image_id, first.edit_id)  # landmark 1 untouched since: fine
    assert project.annotations.get(added.annotation_id).landmarks[2, 0] == 12.0
    with pytest.raises(UndoError, match="already undone"):
        project.history.undo(image_id, first.edit_id)
    box = project.annotations.set_box(added.annotation_id, [1, 1, 20, 20])
    project.annotations.set_category(added.annotation_id, 2, landmarks=_item(2, 33).landmarks)
    with pytest.raises(UndoError, match=f"edit {box.edit_id} .*changed since"):
        project.history.undo(image_id, box.edit_id)


def test_bad_edits_are_refused(project, image_with_item):
    image_id, added = image_with_item
    with pytest.raises(InvalidValueError, match="visibility"):
        project.annotations.set_landmark(added.annotation_id, 0, v=3)
    with pytest.raises(NotFoundError, match="no landmark 25"):
        project.annotations.set_landmark(added.annotation_id, 25, x=1.0)
    with pytest.raises(InvalidValueError, match="landmark count"):
        project.annotations.set_category(added.annotation_id, 2)
    with pytest.raises(InvalidValueError, match="negative width"):
        project.annotations.set_box(added.annotation_id, [50, 50, 10, 60])
    with pytest.raises(NotFoundError, match="item 999"):
        project.annotations.delete_item(999)
    assert [e.action for e in project.history.for_image(image_id)] == ["add_item"]


def test_review_queue_pages_and_status_counts(project, df2):
    ids = [project.images.add(p).id for p in sorted((df2 / "train" / "image").glob("*.jpg"))[:6]]
    project.images.set_status(ids[1], "accepted")
    project.images.set_status(ids[2], "skipped")
    first = project.images.needs_review(limit=2)
    assert [i.id for i in first] == [ids[0], ids[3]]
    assert [i.id for i in project.images.needs_review(after_id=first[-1].id)] == ids[4:]
    counts = project.images.counts_by_status()
    assert (counts["new"], counts["accepted"], counts["skipped"]) == (4, 1, 1)
    assert project.images.get(ids[1]).reviewer == project.author


def test_predictions_sit_beside_and_can_be_accepted(project, image_with_item):
    image_id, added = image_with_item
    run = project.model_runs.add("run-1", params={"alpha": 0.8}, model_meta={"arch": "resnet18"})
    landmarks = np.column_stack([np.linspace(10, 60, 14), np.linspace(20, 70, 14), np.linspace(0, 1, 14)])
    det = Detection(8, 0.9, 0.8, np.array([1.0, 2.0, 60.0, 70.0]), landmarks, np.arange(14) % 2 == 0)
    (pid,) = project.predictions.add(image_id, run.id, [det])
    stored = project.predictions.for_image(image_id)[0]
    assert stored.id == pid and stored.refined.tolist() == det.refined.tolist()
    np.testing.assert_array_equal(stored.landmarks, landmarks)
    with pytest.raises(InvalidValueError, match="expected \\(10, 3\\) for category 7"):
        project.predictions.add(image_id, run.id, [Detection(7, 0.9, 0.8, det.box, landmarks, det.refined)])
    assert len(project.annotations.for_image(image_id)) == 1  # beside, not over
    receipt = project.annotations.accept_prediction(pid, visible_threshold=0.5)
    accepted = project.annotations.get(receipt.annotation_id)
    assert (accepted.category_id, accepted.origin, accepted.prediction_id) == (8, "predicted", pid)
    assert accepted.landmarks[:, 2].tolist() == [2.0 if s > 0.5 else 1.0 for s in landmarks[:, 2]]
    project.model_runs.remove(run.id)
    assert project.annotations.get(receipt.annotation_id).prediction_id is None


def test_presets(project):
    project.presets.save("paper", PostprocessParams.all_techniques())
    project.presets.save("paper", {"alpha": 0.7, "center_rescoring": True})
    assert project.presets.params("paper") == PostprocessParams(alpha=0.7, center_rescoring=True)
    assert [p.name for p in project.presets.list()] == ["paper"]
    with pytest.raises(InvalidValueError, match="unknown post-processing"):
        project.presets.save("bad", {"alpah": 1})
    project.presets.delete("paper")
    assert project.presets.list() == []


@pytest.mark.parametrize(("values", "expected"), [
    ({"top_k": 2.5}, "preset 'bad': top_k=2.5: expected a whole number"),
    ({"alpha": "abc"}, "preset 'bad': alpha='abc': expected a number"),
    ({"nms": "maybe"}, "preset 'bad': nms='maybe': expected true or false"),
    ({"alpha": 3}, r"preset 'bad': alpha must be a number in \[0, 1\]"),
])
def test_a_preset_goes_through_the_one_parameter_parser(project, values, expected):
    with pytest.raises(InvalidValueError, match=expected):
        project.presets.save("bad", values)
    project.presets.save("strings", {"top_k": "7", "nms": "yes", "alpha": "0.25"})  # as a JSON client may send them
    assert project.presets.params("strings") == PostprocessParams(top_k=7, nms=True, alpha=0.25)


def test_predictions_are_stored_once_per_image_and_run_whoever_writes_first(project, project_url, image_with_item):
    """The live view and a batch job store under one run: two writers racing on one image store its
    predictions once, and neither fails (on SQLite and PostgreSQL)."""
    import threading

    from deepmark.core.store import Project

    image_id, _ = image_with_item
    run = project.model_runs.add("run-1")
    landmarks = np.column_stack([np.linspace(10, 60, 14), np.linspace(20, 70, 14), np.full(14, 0.9)])
    dets = [Detection(8, 0.9, 0.8, np.array([1.0, 2.0, 60.0, 70.0]), landmarks, np.zeros(14, bool))] * 2
    results, errors = [], []
    barrier = threading.Barrier(4)

    def writer() -> None:
        other = Project.open(project_url)
        try:
            barrier.wait()
            results.append(other.predictions.add(image_id, run.id, dets))
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)
        finally:
            other.close()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(len(r) for r in results) == [0, 0, 0, 2]  # one writer stored both, the others nothing
    assert len(project.predictions.for_image(image_id, run.id)) == 2
    assert project.predictions.add(image_id, run.id, dets) == []  # and again later: nothing
