"""Likely label mistakes over a project: imported labels with injected errors (moved landmarks, swapped
left/right pairs, a wrong category) come first, each with its reason; only the model's own runs count; the
newest run that predicted an image is the one compared; a cancel stops early."""

import threading

import numpy as np

from deepmark.core.domain.structures import Detection
from deepmark.core.studio.heads_cache import model_key
from deepmark.core.studio.mistakes import images_with_imported_items, likely_mistakes, model_run_ids

REASON = {"moved": "px from the model's position", "swapped": "left/right swapped",
          "category": "the model predicts vest here"}


def test_injected_errors_come_first_with_their_reasons(mistaken_project, tiny_onnx, taxonomy):
    project, injected = mistaken_project(tiny_onnx)
    runs = model_run_ids(project, model_key(tiny_onnx))
    assert len(runs) == 1
    seen = []
    rows = likely_mistakes(project, runs, taxonomy, progress=lambda done, total: seen.append((done, total)))
    assert len(rows) == 28 and seen[-1] == (8, 8)
    assert [r.score for r in rows] == sorted((r.score for r in rows), reverse=True)
    top = rows[:len(injected)]
    assert {r.annotation_id for r in top} == set(injected)  # every injected error in the top N
    for row in top:
        assert any(REASON[injected[row.annotation_id]] in reason for reason in row.reasons), row.reasons
        assert row.score > 0.5
    assert all(r.score < 0.3 and not r.reasons for r in rows[len(injected):])  # the clean labels agree
    assert project.images.get(top[0].image_id).path == top[0].path


def test_only_imported_items_of_the_models_own_runs_are_compared(mistaken_project, tiny_onnx, taxonomy):
    project, injected = mistaken_project(tiny_onnx)
    assert model_run_ids(project, "0" * 16) == []  # another model: nothing to compare with
    assert likely_mistakes(project, [], taxonomy) == []
    # a newer run of the same model that predicted image 3 elsewhere: image 3 is compared with it
    newer = project.model_runs.add("newer", model_path=tiny_onnx)
    far = Detection(1, 0.9, 0.9, np.array([0.0, 0.0, 5.0, 5.0]), np.zeros((25, 3)), np.zeros(25, bool))
    project.predictions.add(3, newer.id, [far])
    rows = likely_mistakes(project, model_run_ids(project, model_key(tiny_onnx)), taxonomy)
    assert all("no prediction matches this box" in r.reasons for r in rows if r.image_id == 3)
    # a person's correction is no longer an imported label
    first = next(iter(injected))
    item = project.annotations.get(first)
    project.annotations.set_box(first, np.array(item.box) + 1.0)
    rows = likely_mistakes(project, [newer.id], taxonomy)
    assert first not in {r.annotation_id for r in rows}
    assert images_with_imported_items(project) == list(range(1, 9))


def test_a_cancel_stops_and_keeps_what_was_scored(mistaken_project, tiny_onnx, taxonomy):
    project, _ = mistaken_project(tiny_onnx)
    cancel = threading.Event()
    cancel.set()
    assert likely_mistakes(project, model_run_ids(project, model_key(tiny_onnx)), taxonomy, cancel=cancel) == []
