"""The image list: database filters from the filter bar, name search, background thumbnails (a corrupt
file gets the error icon and a tooltip naming the problem), multi-selection, recent projects, opening a
dropped project file, and a 100,000-image project that opens at once."""

import time

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from sqlalchemy import insert

from deepmark.app import recent
from deepmark.app.image_list import ImageListModel, selected_image_ids
from deepmark.app.thumbnails import error_icon
from deepmark.core.store import Project
from deepmark.core.store.images import ImageFilter
from deepmark.core.store.models import Image, utc_now


def _paths(window):
    return [window.image_model.record(r).path for r in range(window.image_model.rowCount())]


def test_status_and_category_filters(window, demo_project, qtbot):
    bar = window.filter_bar
    window.set_status("accepted")  # first image accepted, the list moves on
    bar.status.setCurrentText("Accepted")
    assert window.image_model.rowCount() == 1
    assert window.image_model.record(0).status == "accepted" and "1 images" in bar.count.text()
    bar.status.setCurrentText("Needs review")
    assert window.image_model.rowCount() == 7
    bar.status.setCurrentText("All statuses")
    assert window.image_model.rowCount() == 8

    # an item (annotation) or a prediction (the random model predicts every category) of the category
    items = {r.id: {i.category_id for i in demo_project.annotations.for_image(r.id)}
             | {p.category_id for p in demo_project.predictions.for_image(r.id)}
             for r in demo_project.images.page()}
    category = sorted({c for cats in items.values() for c in cats})[0]
    bar.category.setCurrentIndex(bar.category.findData(category))
    expect = sorted(i for i, cats in items.items() if category in cats)
    assert [window.image_model.record(r).id for r in range(window.image_model.rowCount())] == expect
    assert window.session.record.id in expect  # the current image is one of those shown


def test_score_and_corrections_filters(window, demo_project, qtbot):
    bar = window.filter_bar
    assert window.session.model.runs == 1  # the first image was detected and stored (random model: low scores)
    bar.score.setValue(0.99)
    assert [window.image_model.record(r).id for r in range(window.image_model.rowCount())] == [window.session.record.id]
    bar.score.setValue(0.0)  # "any"
    assert window.image_model.rowCount() == 8
    bar.corrections.setChecked(True)
    assert window.image_model.rowCount() == 0
    item = window.session.items[0]
    demo_project.annotations.set_landmark(item.id, 0, x=float(item.landmarks[0, 0]) + 3.0)
    bar.corrections.setChecked(False)
    bar.corrections.setChecked(True)
    assert window.image_model.rowCount() == 1 and window.image_model.record(0).id == item.image_id


def test_search_by_file_name(window, qtbot):
    window.filter_bar.search.setText("000003")
    qtbot.waitUntil(lambda: window.image_model.rowCount() == 1, timeout=2000)
    assert window.image_model.record(0).path.endswith("000003.jpg")
    assert window.session.record.path.endswith("000003.jpg")  # the only match is shown
    window.filter_bar.search.setText("no such name")
    qtbot.waitUntil(lambda: window.image_model.rowCount() == 0, timeout=2000)
    window.filter_bar.search.clear()
    qtbot.waitUntil(lambda: window.image_model.rowCount() == 8, timeout=2000)


def test_thumbnails_arrive_in_the_background(window, qtbot, isolated_cache):
    model = window.image_model
    path = model.record(0).path
    first = model.data(model.index(0), Qt.ItemDataRole.DecorationRole)  # placeholder, decode requested
    assert first is not None
    qtbot.waitUntil(lambda: model.loader.state(path) == "ready", timeout=5000)
    icon = model.data(model.index(0), Qt.ItemDataRole.DecorationRole)
    assert not icon.isNull() and icon.availableSizes()[0].width() <= 96
    # the view painted its visible rows: those were requested too, and cached on disk
    qtbot.waitUntil(lambda: all(model.loader.state(p) == "ready" for p in _paths(window)[:4]), timeout=5000)
    assert list((isolated_cache / "thumbnails").rglob("*.jpg"))


def test_a_corrupt_file_gets_the_error_icon_and_a_tooltip(window, demo_project, qtbot, tmp_path):
    import shutil

    bad = tmp_path / "corrupt.jpg"
    shutil.copy(demo_project.absolute_path(window.image_model.record(0).path), bad)
    demo_project.images.add(bad)
    bad.write_bytes(b"\xff\xd8\xff\xe0 broken after it was added")
    model = window.image_model
    model.set_filter(ImageFilter())  # re-read the list
    row = next(r for r in range(model.rowCount()) if model.record(r).path.endswith("corrupt.jpg"))
    model.data(model.index(row), Qt.ItemDataRole.DecorationRole)
    key = model.record(row).path
    qtbot.waitUntil(lambda: model.loader.state(key) == "error", timeout=5000)
    icon = model.data(model.index(row), Qt.ItemDataRole.DecorationRole)
    assert icon.cacheKey() == error_icon().cacheKey()
    tip = model.data(model.index(row), Qt.ItemDataRole.ToolTipRole)
    assert "cannot be shown" in tip and "corrupt.jpg" in tip


def test_multi_selection(window):
    view, model = window.image_view, window.image_model
    selection = view.selectionModel()
    for row in (1, 2, 5):
        selection.select(model.index(row), QItemSelectionModel.SelectionFlag.Select)
    ids = selected_image_ids(window)
    assert set(ids) >= {model.record(r).id for r in (1, 2, 5)} and ids == sorted(ids, key=model.row_of)


def test_recent_projects(window, demo_project, tmp_path, qtbot):
    assert recent.recent_projects()[0] == str(__import__("pathlib").Path(demo_project.where).resolve())
    other = tmp_path / "other.deepmark"
    Project.create(other).close()
    from deepmark.app.menus import open_project_file

    open_project_file(window, str(other), False)
    assert window.session.project.where == str(other)
    paths = recent.recent_projects()
    assert paths[0] == str(other.resolve()) and len(paths) == 2
    recent.fill_menu(window, window.recent_menu)
    names = [a.text() for a in window.recent_menu.actions()]
    assert any("other.deepmark" in n for n in names) and any("demo.deepmark" in n for n in names)
    for k in range(12):  # at most ten are kept
        recent.remember(str(tmp_path / f"p{k}.deepmark"))
    assert len(recent.recent_projects()) == recent.MAX_RECENT
    (tmp_path / "p11.deepmark").write_bytes(b"")
    recent.fill_menu(window, window.recent_menu)  # the missing ones are pruned, with a message
    assert recent.recent_projects() == [str((tmp_path / "p11.deepmark").resolve())]
    assert "missing project" in window.statusBar().currentMessage()


def test_opening_a_missing_recent_project_is_reported(window, tmp_path):
    gone = str(tmp_path / "gone.deepmark")
    recent.remember(gone)
    from deepmark.app.menus import open_project_file

    recent.open_recent(window, gone, open_project_file)
    assert "no longer exists" in window.statusBar().currentMessage()
    assert gone not in recent.recent_projects()


def test_a_dropped_project_file_is_opened(window, tmp_path):
    other = tmp_path / "dropped.deepmark"
    Project.create(other).close()
    window.open_paths([other])
    assert window.session.project.where == str(other) and window.image_model.rowCount() == 0


@pytest.fixture(scope="module")
def big_project_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.deepmark"
    now = utc_now()
    rows = [{"path": f"images/{k:07d}.jpg", "content_hash": f"{k:064x}", "size_bytes": 50_000, "width": 640,
             "height": 480, "status": "new" if k % 10 == 0 else "accepted", "created_at": now, "updated_at": now,
             "version": 1} for k in range(1, 100_001)]
    with Project.create(path) as project:
        for start in range(0, len(rows), 25_000):
            project.write(lambda s, chunk=rows[start : start + 25_000]: s.execute(insert(Image), chunk))
    return path


@pytest.mark.slow
def test_a_100000_image_project_opens_at_once(big_project_file, qtbot):
    started = time.perf_counter()
    project = Project.open(big_project_file)
    model = ImageListModel(thumbnails=None)
    model.set_project(project)
    first = model.record(0)
    elapsed = time.perf_counter() - started
    try:
        assert model.rowCount() == 100_000 and first.path == "images/0000001.jpg"  # every row, from the start
        assert model.record(99_999).path == "images/0100000.jpg"
        assert elapsed < 2.0, f"open + first page: {elapsed:.2f} s"
        started = time.perf_counter()
        model.set_filter(ImageFilter(statuses=("new",), name_contains="00999"))
        assert time.perf_counter() - started < 2.0
        assert [model.record(r).path for r in range(model.rowCount())] == [
            f"images/{k:07d}.jpg" for k in range(10, 100_001, 10) if "00999" in f"{k:07d}"]
    finally:
        model.shutdown()
        project.close()


@pytest.fixture(scope="module")
def project_of_20000(tmp_path_factory):
    path = tmp_path_factory.mktemp("p20k") / "p20k.deepmark"
    now = utc_now()
    rows = [{"path": f"images/{k:06d}.jpg", "content_hash": f"{k:064x}", "size_bytes": 50_000, "width": 640,
             "height": 480, "status": "new", "created_at": now, "updated_at": now, "version": 1}
            for k in range(1, 20_001)]
    with Project.create(path) as project:
        project.write(lambda s: s.execute(insert(Image), rows))
    return path


def test_a_large_list_scrolls_all_the_way(qtbot, project_of_20000):
    """200 fast wheel clicks move the view 600 rows, End goes to the true last row, and the scroll bar covers
    every row from the start."""
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication, QListView

    project = Project.open(project_of_20000)
    model = ImageListModel(thumbnails=None)
    view = QListView()
    view.setUniformItemSizes(True)
    view.setModel(model)
    from deepmark.app.image_list import fit_layout
    qtbot.addWidget(view)
    view.resize(300, 600)
    view.show()
    try:
        model.set_project(project)
        fit_layout(view, model.rowCount())  # as the window does
        QApplication.processEvents()
        bar = view.verticalScrollBar()
        row_height = view.sizeHintForRow(0)
        assert model.rowCount() == 20_000
        visible = view.viewport().height() // row_height
        assert bar.maximum() >= 20_000 - visible - 1  # every row, at once (the bar steps by rows)
        centre = QPointF(view.viewport().rect().center())
        for _ in range(200):  # a fast flick: 200 clicks of the wheel, 3 rows each
            event = QWheelEvent(centre, QPointF(view.viewport().mapToGlobal(centre.toPoint())), QPoint(0, 0),
                                QPoint(0, -120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                                Qt.ScrollPhase.NoScrollPhase, False)
            QApplication.sendEvent(view.viewport(), event)
        QApplication.processEvents()
        top = view.indexAt(view.viewport().rect().topLeft() + QPoint(2, 2)).row()
        assert top >= 200 * QApplication.wheelScrollLines() * 0.9, top
        view.setFocus()
        view.setCurrentIndex(model.index(top))
        qtbot.keyClick(view, Qt.Key.Key_End)
        assert view.currentIndex().row() == 19_999
        assert model.record(19_999).path == "images/020000.jpg"
    finally:
        model.shutdown()
        project.close()
