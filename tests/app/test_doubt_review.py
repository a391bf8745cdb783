"""Review where the model doubts, in the window, driven by keys: U / Shift+U follow the doubt score when
View → Review order says so (remembered per project), the image list sorts by it and shows it, scores of
other parameters read "not computed", and M / Shift+M jump through the likely label mistakes in score order,
each opened with its item selected."""

from dataclasses import replace

import pytest
from PySide6.QtCore import Qt

from deepmark.app.jobs import jobs_of
from deepmark.core.store import Project
from deepmark.core.studio.mistakes import model_run_ids
from deepmark.core.studio.uncertainty import review_order

SHIFT, CTRL = Qt.KeyboardModifier.ShiftModifier, Qt.KeyboardModifier.ControlModifier


def _focus(window, qtbot):
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.canvas.setFocus()


def _run_batch(window, qtbot, ids):
    assert jobs_of(window).start(ids)
    qtbot.waitUntil(lambda: not jobs_of(window).running() and jobs_of(window).task is None, timeout=60000)
    assert not jobs_of(window).last_report.errors


def _doubt_order(project, key, ids):
    scores = project.doubts.scores(key)
    return sorted((i for i in ids if i in scores), key=lambda i: (-scores[i], i))


def test_u_follows_the_doubt_when_the_review_order_says_so(window, demo_project, qtbot):
    ids = demo_project.images.ids()
    scored, unscored = ids[:5], ids[5:]
    _run_batch(window, qtbot, scored)  # the job scores each image it runs on
    key = window.session.doubt_key()
    order = _doubt_order(demo_project, key, ids)
    assert order and set(order) == set(scored)  # only the current key's scores, only the images run on
    _focus(window, qtbot)
    qtbot.keyClick(window.canvas, Qt.Key.Key_U, CTRL | SHIFT)  # View → Review order: the model's doubt
    assert window.doubts.follows_doubt() and review_order(demo_project) == "uncertainty"
    window.select_row(window.image_model.row_of(order[-1]))
    _focus(window, qtbot)
    qtbot.keyClick(window.canvas, Qt.Key.Key_U)  # after the last scored image: the unscored, in file order
    assert window.session.record.id == unscored[0]
    window.select_row(window.image_model.row_of(order[0]))
    visited = [order[0]]
    for _ in order[1:]:
        _focus(window, qtbot)
        qtbot.keyClick(window.canvas, Qt.Key.Key_U)
        visited.append(window.session.record.id)
    assert visited == order  # highest doubt first
    _focus(window, qtbot)
    qtbot.keyClick(window.canvas, Qt.Key.Key_U, SHIFT)
    assert window.session.record.id == order[-2]  # and back

    qtbot.keyClick(window.canvas, Qt.Key.Key_U, CTRL | SHIFT)  # off again: file order
    assert not window.doubts.follows_doubt() and review_order(demo_project) == "file"
    window.select_row(0)
    _focus(window, qtbot)
    qtbot.keyClick(window.canvas, Qt.Key.Key_U)
    assert window.current_row() == 1


def test_the_review_order_is_remembered_per_project(make_window, demo_project, tmp_path, qtbot):
    window = make_window(demo_project)
    window.doubts.order_action.setChecked(True)
    path = demo_project.file
    other = Project.create(tmp_path / "other.deepmark")
    window.set_project(other)
    assert not window.doubts.follows_doubt()  # another project: its own setting (none: file order)
    window.set_project(Project.open(path))
    assert window.doubts.follows_doubt()


def test_the_list_sorts_by_doubt_and_shows_each_score(window, demo_project, qtbot):
    ids = demo_project.images.ids()
    _run_batch(window, qtbot, ids[2:])
    model = window.image_model
    key = window.session.doubt_key()
    scores = demo_project.doubts.scores(key)
    current = window.session.record.id
    window.filter_bar.sort.setCurrentIndex(1)  # "Most doubt first"
    rows = [model.record(r).id for r in range(model.rowCount())]
    assert rows == _doubt_order(demo_project, key, ids) + [i for i in ids if i not in scores]
    assert window.session.record.id == current and window.image_model.record(window.current_row()).id == current
    top = model.index(0)
    assert model.data(top).startswith(f"{scores[rows[0]]:.2f}  ·  ")
    assert f"doubt {scores[rows[0]]:.2f}" in model.data(top, Qt.ItemDataRole.ToolTipRole)
    unscored = model.index(model.rowCount() - 1)
    assert model.data(unscored).startswith(model.record(model.rowCount() - 1).path.rsplit("/", 1)[-1])
    window.filter_bar.sort.setCurrentIndex(0)
    assert [model.record(r).id for r in range(model.rowCount())] == ids


def test_scores_of_other_parameters_are_not_shown_as_current(window, demo_project, qtbot):
    ids = demo_project.images.ids()
    _run_batch(window, qtbot, ids)
    model = window.image_model
    assert all(model.score(i) is not None for i in ids)
    params = replace(window.params(), score_threshold=0.4)
    window.params_panel.set_params(params)  # as the sliders do: decoded at once, the list follows once they rest
    qtbot.waitUntil(lambda: model.doubt_key == window.session.doubt_key(), timeout=5000)
    qtbot.waitUntil(lambda: model.score(window.session.record.id) is not None, timeout=5000)  # re-scored
    others = [i for i in ids if i != window.session.record.id]
    assert all(model.score(i) is None for i in others)
    assert "doubt not computed" in model.data(model.index(model.row_of(others[0])), Qt.ItemDataRole.ToolTipRole)


@pytest.fixture
def mistakes_window(make_window, mistaken_project, tiny_model):
    project, injected = mistaken_project(tiny_model)
    return make_window(project), project, injected


def test_m_jumps_through_the_likely_mistakes_in_score_order(mistakes_window, qtbot):
    window, project, injected = mistakes_window
    _focus(window, qtbot)
    qtbot.keyClick(window.canvas, Qt.Key.Key_M)  # computed in the background first, then the first one opens
    qtbot.waitUntil(lambda: window.doubts.mistakes is not None and window.doubts.position == 0, timeout=20000)
    rows = window.doubts.mistakes
    assert [r.score for r in rows] == sorted((r.score for r in rows), reverse=True)
    assert {r.annotation_id for r in rows[:len(injected)]} == set(injected)
    seen = [(window.session.record.id, window.canvas.selected_id)]
    for _ in range(len(injected) - 1):
        _focus(window, qtbot)
        qtbot.keyClick(window.canvas, Qt.Key.Key_M)
        seen.append((window.session.record.id, window.canvas.selected_id))
    assert seen == [(r.image_id, r.annotation_id) for r in rows[:len(injected)]]
    assert "likely mistake" in window.statusBar().currentMessage()
    _focus(window, qtbot)
    qtbot.keyClick(window.canvas, Qt.Key.Key_M, SHIFT)
    assert (window.session.record.id, window.canvas.selected_id) == seen[-2]


def test_the_mistakes_view_lists_and_opens_items(mistakes_window, qtbot):
    window, project, injected = mistakes_window
    _focus(window, qtbot)
    qtbot.keyClick(window.canvas, Qt.Key.Key_F9, SHIFT)
    dialog = window.doubts.dialog
    assert dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.model.rowCount() == 28, timeout=20000)
    assert "28 imported items scored" in dialog.status.text()
    reasons = " ".join(dialog.model.cell(r, 5) for r in range(len(injected)))
    assert "left/right swapped" in reasons and "predicts vest" in reasons and "px from" in reasons
    row = 2
    target = dialog.model.rows[row]
    rect = dialog.table.visualRect(dialog.model.index(row, 1))
    qtbot.mouseClick(dialog.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.session.record.id == target.image_id and window.canvas.selected_id == target.annotation_id


def test_no_mistakes_without_the_models_predictions(window, demo_project, qtbot):
    demo_project.model_runs.remove(model_run_ids(demo_project, window.session.model.model_key)[0])
    window.doubts.step_mistake(1)
    assert "has predicted no image of this project" in window.statusBar().currentMessage()
    assert window.doubts.mistakes is None
