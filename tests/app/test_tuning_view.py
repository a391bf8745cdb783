"""The tuning view: background sweeps over the demo's labelled images, plots, apply best, compare presets."""

from dataclasses import replace

import numpy as np
import pytest

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.studio.tuning import TuningSpec
from deepmark.core.synthetic.simulate import simulated_heads

SPEC = TuningSpec(sweeps={"alpha": [0.0, 0.5, 1.0], "sigma_center": [0.45], "sigma_keypoint": [0.9],
                          "gamma": [0.0, 1.0], "score_threshold": [0.0, 0.3], "nms_iou": [0.5, 0.7]},
                  grid=([0.0, 0.45, 0.9], [0.45, 0.9]))


def _action(window, text):
    return next(a for a in window.actions() if a.text() == text)


def _wait(view, qtbot, timeout=60000):
    qtbot.waitUntil(lambda: view.job is None, timeout=timeout)


def _biased_heads_in_cache(window, demo_project, taxonomy, semantic62):
    """Heads for the labels themselves, landmark peaks 0.8 map px off: trusting the regression (γ = 0) wins.
    Put in the live model's cache, so the view uses them and runs no network."""
    rng = np.random.default_rng(5)
    model = window.session.model
    for record in demo_project.images.page(limit=100):
        items = [r.to_item() for r in demo_project.annotations.for_image(record.id)]
        h = simulated_heads(items, (record.width, record.height), taxonomy, semantic62, rng, noise=0.02)
        offset = h.hp_offset.copy()
        offset[0] += 0.8
        model.cache.put(record.id, replace(h, hp_offset=offset), model.tta.key())


@pytest.fixture
def view(window):
    from deepmark.app.tuning_view import show_tuning

    view = show_tuning(window, SPEC)
    yield view
    view.stop()


def test_the_menu_opens_the_tuning_view(window):
    _action(window, "Tuning…").trigger()
    assert window.tuning_dock.isVisible() and window.tuning_view.isVisible()
    assert _action(window, "Tuning…").shortcut().toString() == "Ctrl+T"


def test_run_plots_every_sweep_and_applying_the_best_sets_the_panel(window, view, demo_project, qtbot, taxonomy,
                                                                   semantic62):
    _biased_heads_in_cache(window, demo_project, taxonomy, semantic62)
    window.params_panel.set_params(PostprocessParams.all_techniques(gamma=1.0, score_threshold=0.0))
    runs = window.session.model.runs
    view.run_button.click()
    assert view.busy() and not view.run_button.isEnabled() and view.cancel_button.isEnabled()
    _wait(view, qtbot)
    assert window.session.model.runs == runs  # every labelled image's heads came from the live model's cache
    report = view.report
    assert report is not None and report.num_images == 8
    for name, values in SPEC.sweeps.items():
        x, y = view.plots[name].curve_data("map_pt")
        np.testing.assert_allclose(x, values)
        assert len(view.plots[name].curve_data("map_box")[1]) == len(values)
    gamma_pt = view.plots["gamma"].curve_data("map_pt")[1]
    assert gamma_pt[0] > gamma_pt[1]  # biased peaks: γ = 0 is better
    assert view.heatmap.image.image.shape == (2, 3)  # σ_k rows × σ_c columns
    rect = view.heatmap.image.mapRectToParent(view.heatmap.image.boundingRect())
    assert rect.left() == pytest.approx(-0.225) and rect.right() == pytest.approx(1.125)  # axes in σ units
    assert view.apply_button.isEnabled() and "at best" in view.status.text()

    view.apply_button.click()
    assert window.params() == report.best and window.params().gamma == 0.0
    assert window.params_panel.numbers["gamma"].value() == 0.0
    assert window.session.model.runs == runs


def test_tuning_runs_the_network_once_per_labelled_image(window, view, qtbot):
    assert window.session.model.runs == 1  # the first image, shown at start
    view.run_button.click()
    _wait(view, qtbot)
    assert view.report is not None, view.status.text()
    assert view.report.num_images == 8
    # the view runs the detector itself (the first image's heads came from the live cache)
    assert view._session.num_ready == 8
    computed = dict(view._heads)
    assert len(computed) == 8
    view.run_button.click()  # a second run reuses the heads: quick, and the same numbers
    first = view.report
    _wait(view, qtbot)
    assert view.report is not first
    assert all(view._session.heads[i] is h for i, h in computed.items() if window.session.model.cached(i) is None)
    np.testing.assert_allclose(view.report.sweeps["alpha"].map_pt, first.sweeps["alpha"].map_pt)


def test_compare_two_presets_side_by_side(window, view, demo_project, qtbot, taxonomy, semantic62):
    _biased_heads_in_cache(window, demo_project, taxonomy, semantic62)
    window.params_panel.set_params(PostprocessParams.all_techniques(gamma=0.0))
    assert window.params_panel.presets.save_as("trust regression")
    window.params_panel.set_params(PostprocessParams.all_techniques(gamma=1.0))
    assert view.compare_a.findText("trust regression") >= 0  # the combos follow the saved presets
    view.compare_a.setCurrentText("trust regression")
    view.compare_b.setCurrentText("current")
    view.compare_button.click()
    _wait(view, qtbot)
    comparison = view.comparison
    assert comparison is not None, view.status.text()
    assert comparison.a.gamma == 0.0 and comparison.b.gamma == 1.0
    a, b = float(view.table.item(0, 0).text()), float(view.table.item(0, 1).text())
    assert a > b and float(view.table.item(0, 2).text()) == pytest.approx(b - a, abs=2e-3)
    assert view.table.verticalHeaderItem(0).text() == "mAP_pt"


def test_cancel_and_closing_the_window_stop_the_job(window, view, qtbot):
    view.run_button.click()
    view.cancel_button.click()
    _wait(view, qtbot)
    assert view.report is None and view.status.text() == "cancelled"
    view.run_button.click()
    window.close()  # must wait for the job before the project closes, without crashing
    assert view.job is None or not view.job.isRunning()


def test_without_labelled_images_the_view_says_so(window, view, demo_project):
    for record in demo_project.images.page(limit=100):
        demo_project.images.set_status(record.id, "rejected")
    view.run_button.click()
    assert view.job is None and "no labelled image" in window.statusBar().currentMessage()


def test_labelled_images_without_landmarks_say_so_instead_of_nan(window, view, demo_project, qtbot):
    """Garments labelled, but none of their landmarks: mAP_pt has nothing to measure."""
    for record in demo_project.images.page(limit=100):
        for item in demo_project.annotations.for_image(record.id):
            landmarks = item.landmarks.copy()
            landmarks[:, 2] = 0
            demo_project.annotations.update_item(item.id, landmarks=landmarks)
    view.run_button.click()
    _wait(view, qtbot)
    assert "nothing to measure mAP_pt" in view.status.text() and "no labelled landmarks" in view.status.text()
    assert "nan" not in view.status.text() and view.report is None
