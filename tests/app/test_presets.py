"""The post-processing panel's presets, reset to the model's defaults, and the test-time augmentation switches."""

from dataclasses import replace

import pytest

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.formats.model_file import RECOMMENDED_PARAMS_KEY, read_model_info
from deepmark.core.inference.detector import PAPER_SCALES
from deepmark.core.store.presets import model_default_params


def test_saving_a_preset_stores_it_and_choosing_it_restores_the_panel(window, demo_project, qtbot):
    panel = window.params_panel
    panel.numbers["alpha"].spin.setValue(0.3)
    panel.switches["nms"].setChecked(False)
    saved = panel.params()
    assert panel.presets.save_as("loose")
    assert demo_project.presets.params("loose") == saved
    assert panel.presets.selected() == "loose"

    panel.numbers["alpha"].spin.setValue(0.9)
    panel.switches["nms"].setChecked(True)
    assert panel.presets.selected() is None  # edited since: the combo no longer claims the preset
    combo = panel.presets.combo
    combo.setCurrentIndex(combo.findText("loose"))
    combo.activated.emit(combo.currentIndex())  # as a user's choice in the combo
    assert panel.params() == saved
    assert panel.numbers["alpha"].value() == pytest.approx(0.3)
    assert not panel.switches["nms"].isChecked() and not panel.numbers["nms_iou"].isEnabled()
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().endswith("ms)"), timeout=2000)  # re-decoded
    assert window.session.model.runs == 1


def test_save_as_asks_for_a_name_without_blocking(window, demo_project):
    bar = window.params_panel.presets
    bar.ask_name()
    bar.last_dialog.setTextValue("from dialog")
    bar.last_dialog.accept()
    assert [r.name for r in demo_project.presets.list()] == ["from dialog"]
    assert bar.names() == ["from dialog"]


def test_bad_names_and_deleting(window, demo_project):
    bar = window.params_panel.presets
    assert not bar.save_as("")
    assert "preset not saved" in window.statusBar().currentMessage()
    assert bar.save_as("a") and bar.save_as("b")
    assert bar.names() == ["a", "b"]
    assert bar.delete("a")
    assert [r.name for r in demo_project.presets.list()] == ["b"] and bar.names() == ["b"]
    assert not bar.apply("a")
    assert "not in the project" in window.statusBar().currentMessage()


def test_presets_follow_the_project(window, demo_project, tmp_path):
    demo_project.presets.save("shared", PostprocessParams.centernet())  # saved by someone else
    bar = window.params_panel.presets
    bar.refresh()
    assert bar.names() == ["shared"]
    assert bar.apply("shared") and window.params() == PostprocessParams.centernet()
    from deepmark.core.store import Project

    window.set_project(Project.create(tmp_path / "other.deepmark"))
    assert bar.names() == []


def test_reset_applies_the_models_defaults(window, qtbot):
    panel = window.params_panel
    # the tiny model names no parameters: the paper's values with every technique on
    assert panel.defaults() == PostprocessParams.all_techniques()
    panel.numbers["gamma"].spin.setValue(0.1)
    panel.switches["heatmap_rescoring"].setChecked(False)
    panel.reset_button.click()
    assert window.params() == PostprocessParams.all_techniques()
    assert panel.numbers["gamma"].value() == pytest.approx(0.75) and panel.switches["heatmap_rescoring"].isChecked()


def test_model_default_params_come_from_the_metadata(tiny_model):
    info = read_model_info(tiny_model)
    assert model_default_params(info) == PostprocessParams.all_techniques()
    tuned = replace(info, training={RECOMMENDED_PARAMS_KEY: {"alpha": 0.6, "sigma_center": 0.3, "nms": False}})
    assert model_default_params(tuned) == PostprocessParams.all_techniques(alpha=0.6, sigma_center=0.3, nms=False)
    broken = replace(info, training={RECOMMENDED_PARAMS_KEY: {"alpha": 7.0}})
    assert model_default_params(broken) == PostprocessParams.all_techniques()
    assert model_default_params(None) == PostprocessParams.all_techniques()


def test_flip_and_multiscale_run_the_network_once_each_then_come_from_the_cache(window):
    panel = window.params_panel
    assert window.session.model.runs == 1
    plain = window.session.model.cached(window.session.record.id)
    panel.flip.setChecked(True)
    assert window.session.model.tta.flip and window.session.model.runs == 2
    flipped = window.session.model.cached(window.session.record.id)
    assert flipped is not None and flipped is not plain
    panel.flip.setChecked(False)
    assert window.session.model.runs == 2 and window.session.model.cached(window.session.record.id) is plain
    panel.flip.setChecked(True)
    assert window.session.model.runs == 2 and window.session.model.cached(window.session.record.id) is flipped
    panel.multiscale.setChecked(True)
    assert window.session.model.tta.scales == PAPER_SCALES and window.session.model.runs == 3
    panel.multiscale.setChecked(False)
    panel.flip.setChecked(False)
    assert window.session.model.runs == 3
    # a newly loaded model keeps the switches (its heads may come from the disk heads cache: no count)
    panel.flip.setChecked(True)
    assert window.session.model.runs == 3
    assert window.set_model_path(window.session.model.path)
    assert window.session.model.tta.flip and window.session.model.cached(window.session.record.id) is not None


def test_the_panel_marks_what_differs_from_the_model_and_a_new_model_offers_its_values(window, tiny_model,
                                                                                         tmp_path, qtbot):
    import shutil

    from PySide6.QtWidgets import QMessageBox

    from deepmark.core.formats.model_file import set_recommended_params

    panel = window.params_panel
    panel.set_defaults(window.params())
    assert panel.differing() == [] and "recommended values" in panel.differs.text()
    panel.numbers["alpha"].slider.setValue(123)
    assert panel.differing() == ["alpha"] and panel.labels["alpha"].text().startswith("• ")
    assert panel.labels["alpha"].font().bold() and "1 value differs" in panel.differs.text()

    window.session.save_params()  # the project has its own parameters now
    recommending = tmp_path / "recommending.onnx"
    shutil.copy(tiny_model, recommending)
    set_recommended_params(recommending, {"score_threshold": 0.05, "alpha": 0.4})
    assert window.set_model_path(recommending)
    box = window.last_message_box
    assert box is not None and box.isVisible() and "recommends other post-processing values" in box.text()
    box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: window.session.params.score_threshold == 0.05, timeout=2000)
    assert window.params().alpha == 0.4 and panel.differing() == []
