"""Correcting on the canvas, offscreen, against the real project store: every gesture writes the store at
once, and each is one undo step."""

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QContextMenuEvent, QMouseEvent
from PySide6.QtWidgets import QApplication

from deepmark.app.overlay_items import HANDLES, ItemGraphic, LandmarkHandle
from deepmark.core.domain.structures import Detection
from deepmark.core.store import Project
from deepmark.core.studio.assisted import prompted_item
from deepmark.core.studio.templates import prediction_landmarks, template_landmarks

NO_MOD = Qt.KeyboardModifier.NoModifier
LEFT = Qt.MouseButton.LeftButton


def _send(view, kind, scene_pos: QPointF, buttons, modifiers=NO_MOD, button=LEFT) -> None:
    viewport = view.viewport()
    pos = QPointF(view.mapFromScene(scene_pos))
    event = QMouseEvent(kind, pos, viewport.mapToGlobal(pos), button, buttons, modifiers)
    QApplication.sendEvent(viewport, event)


def _click(view, at: QPointF, modifiers=NO_MOD) -> None:
    _send(view, QEvent.Type.MouseButtonPress, at, LEFT, modifiers)
    _send(view, QEvent.Type.MouseButtonRelease, at, Qt.MouseButton.NoButton, modifiers)


def _drag(view, start: QPointF, end: QPointF, modifiers=NO_MOD) -> None:
    _send(view, QEvent.Type.MouseButtonPress, start, LEFT, modifiers)
    _send(view, QEvent.Type.MouseMove, (start + end) / 2, LEFT, modifiers)
    _send(view, QEvent.Type.MouseMove, end, LEFT, modifiers)
    _send(view, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton, modifiers)


def _hits(canvas, scene_pos: QPointF, wanted) -> bool:
    return canvas.hit(canvas.mapFromScene(scene_pos)) is wanted


def _free_handle(canvas, annotation_id: int) -> LandmarkHandle:
    """A landmark handle of the item that is the topmost thing under its own centre."""
    return next(h for h in canvas.landmark_items if h.annotation_id == annotation_id and _hits(canvas, h.pos(), h))


def _settled(qtbot, window) -> None:
    """Let the deferred rebuild of the items (after an edit) run."""
    qtbot.wait(5)
    QApplication.processEvents()


@pytest.fixture
def canvas(window):
    window.canvas.zoom_fit()
    window.canvas.setFocus()
    return window.canvas


def test_drag_a_box_corner_resizes_it_in_the_store_with_undo_and_redo(window, canvas, demo_project, qtbot):
    item = window.session.items[0]
    original = item.box.copy()
    qtbot.keyClick(canvas, Qt.Key.Key_Tab)  # Tab selects the first item
    assert canvas.selected_id == item.id
    graphic = canvas.item_graphics[item.id]
    assert graphic.selected
    # a handle not covered by a landmark (corners first)
    handle = next(k for k, (x, y) in enumerate(graphic.handle_points()) if _hits(canvas, QPointF(x, y), graphic))
    ix, iy = HANDLES[handle]
    start = QPointF(*graphic.handle_points()[handle])
    # move inwards so the box stays inside the image
    delta = QPointF(-12.0 if ix == 2 else 12.0, -9.0 if iy == 3 else 9.0)
    _drag(canvas, start, start + delta)
    stored = demo_project.annotations.get(item.id).box
    expected = original.copy()
    if ix is not None:
        expected[ix] += delta.x()
    if iy is not None:
        expected[iy] += delta.y()
    np.testing.assert_allclose(stored, expected, atol=1.5)
    assert not np.allclose(stored, original)
    assert window.undo_stack.count() == 1 and window.undo_stack.undoText() == "resize box"

    window.undo_stack.undo()
    np.testing.assert_allclose(demo_project.annotations.get(item.id).box, original)
    window.undo_stack.redo()
    np.testing.assert_allclose(demo_project.annotations.get(item.id).box, stored)
    _settled(qtbot, window)
    np.testing.assert_allclose(canvas.item_graphics[item.id].box, stored)  # the canvas shows the store
    assert canvas.selected_id == item.id  # the selection survives the rebuild


def test_visibility_keys_on_the_hovered_landmark(window, canvas, demo_project, qtbot):
    item = window.session.items[0]
    handle = _free_handle(canvas, item.id)
    aid, idx = handle.annotation_id, handle.idx
    before = demo_project.annotations.get(aid).landmarks[idx].copy()
    assert before[2] == 2
    _send(canvas, QEvent.Type.MouseMove, handle.pos(), Qt.MouseButton.NoButton)  # hover it
    assert canvas.hovered == (aid, idx)
    qtbot.keyClick(canvas, Qt.Key.Key_O)
    assert demo_project.annotations.get(aid).landmarks[idx, 2] == 1
    stored = demo_project.annotations.get(aid)
    assert stored.corrected[idx] and stored.origin == "corrected"
    np.testing.assert_allclose(stored.landmarks[idx, :2], before[:2])  # only the visibility changed
    _settled(qtbot, window)
    _send(canvas, QEvent.Type.MouseMove, handle.pos() + QPointF(0.5, 0), Qt.MouseButton.NoButton)
    qtbot.keyClick(canvas, Qt.Key.Key_X)
    assert demo_project.annotations.get(aid).landmarks[idx, 2] == 0
    window.undo_stack.undo()
    assert demo_project.annotations.get(aid).landmarks[idx, 2] == 1
    window.undo_stack.undo()
    np.testing.assert_allclose(demo_project.annotations.get(aid).landmarks[idx], before)
    assert not demo_project.annotations.get(aid).corrected[idx]


def test_visibility_key_on_selected_landmarks_is_one_step(window, canvas, demo_project, qtbot):
    first, second = window.session.items[0], window.session.items[1]
    a, b = _free_handle(canvas, first.id), _free_handle(canvas, second.id)
    _click(canvas, a.pos())
    _click(canvas, b.pos(), Qt.KeyboardModifier.ControlModifier)
    assert set(canvas.selected_landmarks()) == {(a.annotation_id, a.idx), (b.annotation_id, b.idx)}
    qtbot.keyClick(canvas, Qt.Key.Key_O)
    assert demo_project.annotations.get(a.annotation_id).landmarks[a.idx, 2] == 1
    assert demo_project.annotations.get(b.annotation_id).landmarks[b.idx, 2] == 1
    assert window.undo_stack.count() == 1
    window.undo_stack.undo()
    assert demo_project.annotations.get(a.annotation_id).landmarks[a.idx, 2] == 2
    assert demo_project.annotations.get(b.annotation_id).landmarks[b.idx, 2] == 2


def test_context_menu_on_a_landmark_sets_its_visibility(window, canvas, demo_project, qtbot):
    handle = _free_handle(canvas, window.session.items[1].id)
    aid, idx = handle.annotation_id, handle.idx
    pos = canvas.mapFromScene(handle.pos())
    QApplication.sendEvent(canvas.viewport(), QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos,
                                                                canvas.viewport().mapToGlobal(pos)))
    menu = window.editor.last_menu
    assert menu is not None and menu.isVisible()
    texts = [a.text().split("\t")[0] for a in menu.actions()]
    assert texts[:3] == ["Visible", "Occluded", "Not present"] and "Delete item" in texts
    assert menu.actions()[0].isChecked()  # it is visible now
    next(a for a in menu.actions() if a.text().startswith("Occluded")).trigger()
    assert demo_project.annotations.get(aid).landmarks[idx, 2] == 1
    assert canvas.selected_id == aid  # right-clicking selects the item


def test_change_category_without_a_prediction_fits_the_template(window, canvas, demo_project, taxonomy, qtbot):
    item = window.session.items[0]  # a vest dress (19 landmarks)
    window.session.detections = []  # nothing predicted there
    window.editor.change_category(item.id, 9)  # skirt: 8 landmarks
    stored = demo_project.annotations.get(item.id)
    assert stored.category_id == 9 and stored.landmarks.shape == (8, 3)
    np.testing.assert_allclose(stored.landmarks, template_landmarks(taxonomy.category(9), item.box))
    np.testing.assert_allclose(stored.box, item.box)
    window.undo_stack.undo()
    back = demo_project.annotations.get(item.id)
    assert back.category_id == item.category_id and back.landmarks.shape == (19, 3)
    np.testing.assert_allclose(back.landmarks, item.landmarks)


def test_change_category_takes_the_overlapping_prediction(window, canvas, demo_project, taxonomy, qtbot):
    item = window.session.items[1]
    n = taxonomy.category(7).num_landmarks
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(item.box[0], item.box[2], n), rng.uniform(item.box[1], item.box[3], n),
                              rng.uniform(0, 1, n)])
    points[0, 2] = 0.0
    shorts = Detection(7, 0.8, 0.8, item.box + 2.0, points, np.zeros(n, bool))
    window.session.detections = [shorts]
    # through the context menu's "Change category" submenu
    handle = _free_handle(canvas, item.id)
    menu = window.editor.context_menu(canvas.mapFromScene(handle.pos()))
    submenu = next(a.menu() for a in menu.actions() if a.text() == "Change category")
    assert len(submenu.actions()) == 13
    next(a for a in submenu.actions() if a.data() == 7).trigger()
    stored = demo_project.annotations.get(item.id)
    assert stored.category_id == 7 and stored.landmarks.shape == (n, 3)
    np.testing.assert_allclose(stored.landmarks, prediction_landmarks(shorts))
    assert stored.landmarks[0, 2] == 1 and (stored.landmarks[1:, 2] == 2).all()


def test_add_an_item_by_drawing_a_box(window, canvas, demo_project, taxonomy, qtbot):
    image_id = window.session.record.id
    before = {i.id for i in demo_project.annotations.for_image(image_id)}
    qtbot.keyClick(canvas, Qt.Key.Key_B)
    assert canvas.draw_mode
    start, end = QPointF(40.0, 60.0), QPointF(140.0, 200.0)
    _drag(canvas, start, end)  # draws (does not pan), then asks for the category
    assert not canvas.draw_mode
    menu = window.editor.last_menu
    assert menu is not None and len(menu.actions()) == 13
    next(a for a in menu.actions() if a.data() == 8).trigger()  # trousers
    items = demo_project.annotations.for_image(image_id)
    (new,) = [i for i in items if i.id not in before]
    assert new.category_id == 8 and new.origin == "manual"
    assert new.landmarks.shape == (taxonomy.category(8).num_landmarks, 3)
    np.testing.assert_allclose(new.box, [40, 60, 140, 200], atol=1.5)
    # the landmarks the image's heatmaps give in that box (tests/app/test_assists.py checks them against the
    # default model); the template where no peak is confident
    session = window.session
    expected = prompted_item(session.heads(), new.box, taxonomy.category(8), session.params, taxonomy,
                             session.model.detector.grouping, (session.rgb.shape[1], session.rgb.shape[0]))
    np.testing.assert_allclose(new.landmarks, expected.landmarks)
    template = template_landmarks(taxonomy.category(8), new.box)
    np.testing.assert_allclose(new.landmarks[~expected.confident, :2], template[~expected.confident, :2])
    _settled(qtbot, window)
    assert canvas.selected_id == new.id and new.id in canvas.item_graphics

    # the new item's template landmarks are then adjusted: drag one
    handle = _free_handle(canvas, new.id)
    target = handle.pos() + QPointF(6.0, -4.0)
    _drag(canvas, handle.pos(), target)
    moved = demo_project.annotations.get(new.id).landmarks[handle.idx]
    assert moved[0] == pytest.approx(target.x(), abs=1.5) and moved[1] == pytest.approx(target.y(), abs=1.5)

    # undo both, redo both: the re-added item gets a new id, and the move still finds it
    window.undo_stack.undo()
    window.undo_stack.undo()
    assert {i.id for i in demo_project.annotations.for_image(image_id)} == before
    window.undo_stack.redo()
    window.undo_stack.redo()
    (again,) = [i for i in demo_project.annotations.for_image(image_id) if i.id not in before]
    np.testing.assert_allclose(again.landmarks[handle.idx], moved)


def test_escape_leaves_draw_mode_and_a_slip_adds_nothing(window, canvas, demo_project, qtbot):
    count = demo_project.annotations.count()
    qtbot.keyClick(canvas, Qt.Key.Key_B)
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert not canvas.draw_mode
    qtbot.keyClick(canvas, Qt.Key.Key_B)
    _drag(canvas, QPointF(50, 50), QPointF(50.5, 50.2))  # a click, not a box
    assert not canvas.draw_mode and window.editor.last_menu is None
    assert demo_project.annotations.count() == count


def test_delete_then_undo_brings_the_item_back(window, canvas, demo_project, qtbot):
    item = window.session.items[1]
    handle = _free_handle(canvas, item.id)
    _click(canvas, handle.pos())  # clicking a landmark selects its item
    assert canvas.selected_id == item.id
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert item.id not in {i.id for i in demo_project.annotations.for_image(window.session.record.id)}
    _settled(qtbot, window)
    assert item.id not in canvas.item_graphics
    window.undo_stack.undo()
    back = demo_project.annotations.get(item.id)
    assert back.category_id == item.category_id and back.origin == item.origin
    np.testing.assert_allclose(back.landmarks, item.landmarks)
    np.testing.assert_allclose(back.box, item.box)


def test_moving_several_landmarks_is_one_undo_step(window, canvas, demo_project, qtbot):
    first, second = window.session.items[0], window.session.items[1]
    a = _free_handle(canvas, first.id)
    b = next(h for h in canvas.landmark_items
             if h.annotation_id == first.id and h is not a and _hits(canvas, h.pos(), h))
    c = _free_handle(canvas, second.id)
    _click(canvas, a.pos())
    _click(canvas, b.pos(), Qt.KeyboardModifier.ControlModifier)
    _click(canvas, c.pos(), Qt.KeyboardModifier.ControlModifier)
    assert len(canvas.selected_landmarks()) == 3
    starts = {(h.annotation_id, h.idx): np.array([h.pos().x(), h.pos().y()]) for h in (a, b, c)}
    originals = {key: demo_project.annotations.get(key[0]).landmarks[key[1]].copy() for key in starts}
    delta = QPointF(8.0, 5.0)
    _drag(canvas, a.pos(), a.pos() + delta)
    for (aid, idx), start in starts.items():
        now = demo_project.annotations.get(aid).landmarks[idx]
        np.testing.assert_allclose(now[:2], start + (delta.x(), delta.y()), atol=1.5)
    assert window.undo_stack.count() == 1
    window.undo_stack.undo()
    for (aid, idx), original in originals.items():
        np.testing.assert_allclose(demo_project.annotations.get(aid).landmarks[idx], original)
    window.undo_stack.redo()
    for (aid, idx), start in starts.items():
        np.testing.assert_allclose(demo_project.annotations.get(aid).landmarks[idx, :2],
                                   start + (delta.x(), delta.y()), atol=1.5)


def test_shift_drag_selects_landmarks_in_a_rubber_band(window, canvas, qtbot):
    item = window.session.items[0]
    graphic = canvas.item_graphics[item.id]
    shown = graphic.points[graphic.shown()]
    lo, hi = shown.min(axis=0), shown.max(axis=0)
    # a band around the item's landmarks whose first corner is on the bare image (not on an item)
    band = None
    for margin in (3.0, 5.0, 8.0, 12.0):
        for sx, sy in ((0, 1), (1, 1), (0, 0), (1, 0)):
            a = np.where([sx, sy], hi + margin, lo - margin)
            b = np.where([sx, sy], lo - margin, hi + margin)
            if canvas.hit(canvas.mapFromScene(QPointF(*a))) is None:
                band = (a, b)
                break
        if band:
            break
    assert band is not None
    a, b = band
    _drag(canvas, QPointF(*a), QPointF(*b), Qt.KeyboardModifier.ShiftModifier)
    selected = set(canvas.selected_landmarks())
    lo_band, hi_band = np.minimum(a, b), np.maximum(a, b)
    # the band selects what it touches: landmarks up to a handle's radius (~3 image px here) outside it
    within = {(h.annotation_id, h.idx) for h in canvas.landmark_items
              if np.all((lo_band - 4 <= (h.pos().x(), h.pos().y())) & ((h.pos().x(), h.pos().y()) <= hi_band + 4))}
    own = {(item.id, int(i)) for i in np.flatnonzero(graphic.shown())}
    assert own <= selected <= within
    assert canvas.dragMode() == canvas.DragMode.ScrollHandDrag  # back to panning
    # and the selection then moves as one: one undo step
    h = next(h for h in canvas.landmark_items if h.isSelected() and _hits(canvas, h.pos(), h))
    _drag(canvas, h.pos(), h.pos() + QPointF(4.0, 4.0))
    assert window.undo_stack.count() == 1


def _detection_label_point(canvas):
    """A detection graphic and a scene point on its label where it is the topmost item."""
    for graphic in canvas.detection_graphics():
        at = graphic.label.scene_rect(graphic.label_at(), graphic.pixel).center()
        if _hits(canvas, at, graphic):
            return graphic, at
    raise AssertionError("every detection label is covered")


def test_accept_a_detection_by_click_and_enter(window, canvas, demo_project, qtbot):
    image_id = window.session.record.id
    before = {i.id for i in demo_project.annotations.for_image(image_id)}
    graphic, at = _detection_label_point(canvas)
    _click(canvas, at)
    assert canvas.selected_detection == graphic.index and graphic.selected
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    (new,) = [i for i in demo_project.annotations.for_image(image_id) if i.id not in before]
    det = window.session.detections[graphic.index]
    assert new.origin == "predicted" and new.category_id == det.category_id
    np.testing.assert_allclose(new.box, det.box)
    np.testing.assert_allclose(new.landmarks[:, :2], det.landmarks[:, :2])
    # the stored prediction it is (the live detections are the stored ones until a slider moves)
    assert new.prediction_id is not None
    assert demo_project.predictions.get(new.prediction_id).category_id == det.category_id
    # accepting it again does not duplicate it
    _settled(qtbot, window)
    window.editor.accept_detection(det)
    assert len(demo_project.annotations.for_image(image_id)) == len(before) + 1
    window.undo_stack.undo()
    assert {i.id for i in demo_project.annotations.for_image(image_id)} == before


def test_accept_a_detection_that_is_not_stored_adds_it_as_it_is(window, canvas, demo_project, qtbot):
    det = window.session.detections[0]
    moved = Detection(det.category_id, det.score, det.box_score, det.box + 3.0, det.landmarks + [3.0, 3.0, 0.0],
                      det.refined)
    new_id = window.editor.accept_detection(moved)
    new = demo_project.annotations.get(new_id)
    assert new.origin == "predicted" and new.prediction_id is None
    np.testing.assert_allclose(new.box, moved.box)
    np.testing.assert_array_equal(new.landmarks[:, 2], np.where(moved.landmarks[:, 2] > 0, 2, 1))


def test_accept_a_detection_from_its_context_menu(window, canvas, demo_project, qtbot):
    count = len(demo_project.annotations.for_image(window.session.record.id))
    graphic, at = _detection_label_point(canvas)
    menu = window.editor.context_menu(canvas.mapFromScene(at))
    assert canvas.selected_detection == graphic.index
    (accept,) = [a for a in menu.actions() if a.text().startswith("Accept prediction")]
    accept.trigger()
    assert len(demo_project.annotations.for_image(window.session.record.id)) == count + 1


def test_every_edit_is_in_the_project_file_at_once(window, canvas, demo_project, qtbot):
    """Nothing waits for a save: a second connection to the project file sees each edit immediately."""
    item = window.session.items[0]
    handle = _free_handle(canvas, item.id)
    _click(canvas, handle.pos())
    qtbot.keyClick(canvas, Qt.Key.Key_X)
    other = Project.open(demo_project.where)
    try:
        assert other.annotations.get(item.id).landmarks[handle.idx, 2] == 0
    finally:
        other.close()


def test_an_edit_the_store_refuses_is_shown_not_raised(window, canvas, demo_project, qtbot):
    item = window.session.items[0]
    demo_project.annotations.delete_item(item.id)  # gone behind the window's back
    window.editor.set_box(item.id, np.array([1.0, 2.0, 30.0, 40.0]))
    assert "resize box" in window.statusBar().currentMessage()
    assert window.undo_stack.count() == 0  # the failed command is dropped, nothing half-done to undo


def test_tab_cycles_items_and_clicking_an_outline_selects(window, canvas, qtbot):
    ids = [i.id for i in window.session.items]
    qtbot.keyClick(canvas, Qt.Key.Key_Tab)
    assert canvas.selected_id == ids[0]
    qtbot.keyClick(canvas, Qt.Key.Key_Tab)
    assert canvas.selected_id == ids[1 % len(ids)]
    qtbot.keyClick(canvas, Qt.Key.Key_Backtab)
    assert canvas.selected_id == ids[0]
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert canvas.selected_id is None
    graphic: ItemGraphic = canvas.item_graphics[ids[-1]]
    x1, y1, x2, y2 = graphic.box
    on_outline = next(p for p in (QPointF((x1 + x2) / 2, y2), QPointF(x2, (y1 + y2) / 2),
                                  QPointF((x1 + x2) / 2, y1), QPointF(x1, (y1 + y2) / 2))
                      if _hits(canvas, p, graphic))
    _click(canvas, on_outline)
    assert canvas.selected_id == ids[-1] and graphic.selected
    inside = QPointF((x1 + x2) / 2 + 0.3, (y1 + y2) / 2 + 0.3)
    assert canvas.hit(canvas.mapFromScene(inside)) is not graphic  # the inside of a box does not take clicks


def test_the_edit_menu_lists_the_editing_actions(window):
    edit = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Edit")
    keys = {a.text(): a.shortcut().toString() for a in edit.actions()}
    assert keys["Draw new item"] == "W" and keys["Landmark occluded"] == "O" and keys["Change category…"] == "C"
    draw = next(a for a in edit.actions() if a.text() == "Draw new item")
    assert [k.toString() for k in draw.shortcuts()] == ["W", "R", "B"]  # labelImg's, X-AnyLabeling's, ours
    assert {"Delete item\tDel", "Previous item\tShift+Tab", "Cancel drawing, clear the selection\tEsc"} <= set(keys)
    # the letter keys are window shortcuts (listed by the shortcut help, working from any dock)
    assert {"W", "C", "V", "O", "X"} <= {a.shortcut().toString() for a in window.actions()}


def test_keys_without_a_target_say_what_to_do(window, canvas, demo_project, qtbot):
    count = window.undo_stack.count()
    qtbot.keyClick(canvas, Qt.Key.Key_V)
    assert "select" in window.statusBar().currentMessage()
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    assert "prediction" in window.statusBar().currentMessage()
    assert window.undo_stack.count() == count


@pytest.mark.parametrize(("typed", "category"), [("7", 7), ("12", 12), ("1", 1)])
def test_the_category_popup_takes_its_number_keys(window, canvas, demo_project, qtbot, typed, category):
    image_id = window.session.record.id
    before = {i.id for i in demo_project.annotations.for_image(image_id)}
    qtbot.keyClick(canvas, Qt.Key.Key_W)  # draw (labelImg's key)
    _drag(canvas, QPointF(40.0, 60.0), QPointF(140.0, 200.0))
    menu = window.editor.last_menu
    assert menu.actions()[6].text().startswith("7")  # each entry shows its number
    for digit in typed:
        qtbot.keyClick(menu, digit)
    if typed == "1":  # could be the start of 10..13: chosen after a short wait
        qtbot.waitUntil(lambda: len(demo_project.annotations.for_image(image_id)) > len(before), timeout=2000)
    (new,) = [i for i in demo_project.annotations.for_image(image_id) if i.id not in before]
    assert new.category_id == category


def test_visibility_keys_act_on_what_the_user_sees(window, canvas, demo_project, qtbot):
    """After a drag, the dragged landmark is visibly selected (ringed); a key pressed while another landmark
    is under the cursor acts on that one, never on the earlier drag's."""
    first, second = window.session.items[0], window.session.items[1]
    a = _free_handle(canvas, first.id)
    a_id, a_idx, start = a.annotation_id, a.idx, QPointF(a.pos())
    _drag(canvas, start, start + QPointF(6, 4))
    _settled(qtbot, window)
    assert (a_id, a_idx) in canvas.selected_landmarks()
    assert a_idx in canvas.item_graphics[a_id].selected_landmarks  # ringed: the selection shows
    b = _free_handle(canvas, second.id)
    _send(canvas, QEvent.Type.MouseMove, b.pos(), Qt.MouseButton.NoButton)  # hover another landmark
    assert canvas.hovered == (b.annotation_id, b.idx)
    qtbot.keyClick(canvas, Qt.Key.Key_O)
    assert demo_project.annotations.get(b.annotation_id).landmarks[b.idx, 2] == 1
    assert demo_project.annotations.get(a_id).landmarks[a_idx, 2] == 2  # the dragged one is untouched
    _send(canvas, QEvent.Type.MouseMove, QPointF(2, 2), Qt.MouseButton.NoButton)  # over nothing
    qtbot.keyClick(canvas, Qt.Key.Key_X)  # now the ringed selection is what the key acts on
    assert demo_project.annotations.get(a_id).landmarks[a_idx, 2] == 0


def test_nothing_is_dragged_off_the_image(window, canvas, demo_project, qtbot):
    h, w = window.session.rgb.shape[:2]
    handle = _free_handle(canvas, window.session.items[0].id)
    aid, idx = handle.annotation_id, handle.idx
    _drag(canvas, QPointF(handle.pos()), QPointF(w + 500.0, -300.0))  # far past the top-right corner
    x, y = demo_project.annotations.get(aid).landmarks[idx, :2]
    assert 0.0 <= x <= w and 0.0 <= y <= h and x == pytest.approx(w, abs=1.0) and y == pytest.approx(0, abs=1.0)
    _settled(qtbot, window)

    item = window.session.items[1]
    canvas.select_item(item.id)
    graphic = canvas.item_graphics[item.id]
    handle = next(k for k, (x, y) in enumerate(graphic.handle_points()) if _hits(canvas, QPointF(x, y), graphic))
    start = QPointF(*graphic.handle_points()[handle])
    _drag(canvas, start, QPointF(-400.0, h + 400.0))
    box = demo_project.annotations.get(item.id).box
    assert box[0] >= 0 and box[1] >= 0 and box[2] <= w and box[3] <= h


def test_items_outside_their_image_are_flagged_in_the_summary(window, demo_project, qtbot):
    from deepmark.app.summary_view import show_summary
    from deepmark.core.store import ItemData

    record = window.session.record
    item = window.session.items[0]
    landmarks = item.landmarks.copy()
    landmarks[0] = [record.width + 50.0, -20.0, 2.0]  # an import's labelled landmark off the image
    demo_project.annotations.add_item(record.id, ItemData(category_id=item.category_id, box=item.box.copy(),
                                                          landmarks=landmarks))
    dialog = show_summary(window)
    assert "1 items lie partly outside their image" in dialog.statuses.text()
    assert record.path in dialog.statuses.text() and "1 landmarks" in dialog.statuses.text()
    column = 4
    total = dialog.model.rowCount() - 1
    assert dialog.model.cell(total, column) == "1"
