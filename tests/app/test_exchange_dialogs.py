"""Export and import dialogs: DeepFashion2 round trip, COCO validity, progress, errors, menu entries."""

import json
from pathlib import Path

import numpy as np
import pytest

from deepmark.app.exchange_dialogs import COCO, DF2, ExportDialog, ImportDialog, show_export_dialog, show_import_dialog
from deepmark.core.store import Project
from deepmark.core.store.interchange import export_dataset


def _wait(dialog, qtbot, timeout=60000):
    qtbot.waitUntil(lambda: dialog.job is None, timeout=timeout)


def _accept_all(project):
    for record in project.images.page(limit=100):
        project.images.set_status(record.id, "accepted")


def _export(project, out, qtbot, **options):
    dialog = ExportDialog(project, destination=out)
    qtbot.addWidget(dialog)
    dialog.val_fraction.setValue(options.get("val_fraction", 0.25))
    dialog.seed.setValue(options.get("seed", 1))
    dialog.start_button.click()
    _wait(dialog, qtbot)
    return dialog


def _import(project, qtbot, kind, source, images_dir=None, status="new"):
    dialog = ImportDialog(project)
    qtbot.addWidget(dialog)
    dialog.set_source(kind, source, images_dir, status)
    dialog.start_button.click()
    _wait(dialog, qtbot)
    return dialog


def _items_by_number(project):
    """image file number → [(category, box, landmarks with unlabelled points zeroed)]."""
    out = {}
    for record in project.images.page(limit=1000):
        items = []
        for item in project.annotations.for_image(record.id):
            landmarks = item.landmarks.copy()
            landmarks[landmarks[:, 2] == 0] = 0.0
            items.append((item.category_id, item.box, landmarks, item.style))
        out[int(Path(record.path).stem)] = items
    return out


def test_df2_export_then_import_into_a_fresh_project_gives_the_same_items(demo_project, tmp_path, qtbot):
    _accept_all(demo_project)
    export = _export(demo_project, tmp_path / "out", qtbot)
    assert export.count_label.text() == "8 images will be exported"
    report = export.report
    assert report is not None, export.summary.text()
    assert sum(report.images.values()) == 8 and not report.errors
    assert export.progress.value() == export.progress.maximum() == 8
    assert "train:" in export.summary.text() and export.errors.toPlainText() == ""

    with Project.create(tmp_path / "fresh.deepmark") as fresh:
        imported = _import(fresh, qtbot, DF2, tmp_path / "out", status="accepted")
        assert imported.report is not None, imported.summary.text()
        assert imported.report.images_added == 8 and not imported.report.errors
        assert fresh.images.counts_by_status()["accepted"] == 8
        before, after = _items_by_number(demo_project), _items_by_number(fresh)
        assert sorted(before) == sorted(after)
        for number, items in before.items():
            assert len(after[number]) == len(items) > 0
            for (c1, b1, l1, s1), (c2, b2, l2, s2) in zip(items, after[number], strict=True):
                assert c1 == c2 and s1 == s2
                np.testing.assert_allclose(b1, b2)
                np.testing.assert_allclose(l1, l2)


def test_coco_export_is_valid_json_with_294_keypoints_per_annotation(demo_project, tmp_path, qtbot, taxonomy):
    _accept_all(demo_project)
    export = _export(demo_project, tmp_path / "out", qtbot)
    total = 0
    for split in ("train", "validation"):
        dataset = json.loads((tmp_path / "out" / f"{split}_coco.json").read_text())
        assert all(len(c["keypoints"]) == 294 for c in dataset["categories"])
        for ann in dataset["annotations"]:
            assert len(ann["keypoints"]) == 294 * 3
            assert ann["num_keypoints"] == sum(1 for v in ann["keypoints"][2::3] if v > 0)
        total += len(dataset["annotations"])
    assert total == sum(export.report.items.values()) == demo_project.annotations.count()
    # and the COCO json imports back with its images folder
    with Project.create(tmp_path / "coco.deepmark") as fresh:
        out = tmp_path / "out"
        imported = _import(fresh, qtbot, COCO, out / "train_coco.json", out / "train" / "image")
        assert imported.report.images_added == export.report.images["train"] and not imported.report.errors


def test_export_options_and_errors_are_shown(demo_project, tmp_path, qtbot):
    dialog = ExportDialog(demo_project)
    qtbot.addWidget(dialog)
    dialog.start_button.click()
    assert dialog.job is None and "destination" in dialog.summary.text()
    dialog.destination.setText(str(tmp_path / "out"))
    dialog.select_statuses(())
    assert dialog.count_label.text() == "0 images will be exported"
    dialog.start_button.click()
    assert dialog.job is None and "status" in dialog.summary.text()
    dialog.select_statuses(("new",))
    assert dialog.count_label.text() == "8 images will be exported"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    dialog.start_button.click()
    _wait(dialog, qtbot)
    assert dialog.summary.text().startswith("failed:") and "not empty" in dialog.summary.text()
    dialog.overwrite.setChecked(True)
    dialog.images.setCurrentIndex(dialog.images.findData("none"))
    dialog.coco.setChecked(False)
    dialog.start_button.click()
    _wait(dialog, qtbot)
    assert sum(dialog.report.images.values()) == 8
    assert not (tmp_path / "out" / "train_coco.json").exists() and not (tmp_path / "out" / "keep.txt").exists()
    assert not any((tmp_path / "out").glob("*/image"))


def test_import_lists_the_files_that_failed(tmp_path, qtbot):
    source = tmp_path / "df2"
    (source / "annos").mkdir(parents=True)
    (source / "image").mkdir()
    (source / "annos" / "000001.json").write_text("{not json")
    with Project.create(tmp_path / "p.deepmark") as project:
        dialog = _import(project, qtbot, DF2, source)
        assert dialog.report is not None and dialog.report.errors
        assert "000001.json" in dialog.errors.toPlainText() and "failed" in dialog.summary.text()


def test_export_progress_is_reported_per_image(demo_project, tmp_path):
    _accept_all(demo_project)
    calls = []
    export_dataset(demo_project, tmp_path / "out", progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 8) and calls[-1] == (8, 8)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    def stop(done, total):
        if done == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        export_dataset(demo_project, tmp_path / "stopped", progress=stop)
    assert not (tmp_path / "stopped").exists()  # an aborted export leaves nothing behind


def test_file_menu_entries_open_the_dialogs(window, demo_project, tmp_path, qtbot):
    actions = {a.text(): a for a in window.actions()}
    assert actions["Export dataset…"].shortcut().toString() == "Ctrl+E"
    assert actions["Import annotations (DeepFashion2 / COCO)…"].shortcut().toString() == "Ctrl+Shift+I"
    actions["Export dataset…"].trigger()
    assert window.export_dialog.isVisible() and window.export_dialog.project is demo_project
    window.export_dialog.close()

    _accept_all(demo_project)
    export_dataset(demo_project, tmp_path / "out")
    dialog = show_import_dialog(window)
    dialog.set_source(DF2, tmp_path / "out")
    dialog.start_button.click()
    _wait(dialog, qtbot)
    # the exported copies are new files: 8 more images, listed in the window at once
    assert window.image_model.rowCount() == 16
    assert "import: 8 images added" in window.statusBar().currentMessage()
    assert show_export_dialog(window) is not None
