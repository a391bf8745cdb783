"""Fixtures for the GUI tests: offscreen Qt, a tiny random-weight model, the demo in a temporary project."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported anywhere

import pytest  # noqa: E402

from deepmark.core.domain.structures import PostprocessParams  # noqa: E402
from deepmark.core.studio.display import open_demo_project  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, taxonomy, semantic62):
    """An exported MobileNetV2 CenterNet with random weights (128², a few MB): fast, and its heads are
    real network outputs, so decoding and heatmaps go through exactly what a trained model gives."""
    import torch

    from deepmark.core.formats.model_file import model_info
    from deepmark.core.network import build_model
    from deepmark.core.training.export import export_onnx

    torch.manual_seed(0)
    model = build_model("mobilenetv2", semantic62, head_conv=32).eval()
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_onnx(model, model_info("mobilenetv2", semantic62, taxonomy, (128, 128)), path)
    return path


@pytest.fixture
def demo_project(tmp_path):
    project, report = open_demo_project(tmp_path)
    assert report.images_added == 8 and not report.errors
    yield project
    project.close()


@pytest.fixture
def make_window(qtbot, tiny_model):
    """``make_window(project)``: a main window on ``project`` with the tiny model; score threshold 0 so that
    the random model's low scores still give detections to count."""
    from deepmark.app.window import MainWindow

    def make(project):
        # the network in place: these tests check what follows a detection at once (tests/app/test_background
        # drives the background network, as the app runs it)
        win = MainWindow(PostprocessParams.all_techniques(score_threshold=0.0), background_network=False)
        qtbot.addWidget(win)
        win.resize(1200, 800)
        win.show()
        assert win.set_model_path(tiny_model)
        win.set_project(project)
        return win
    return make


@pytest.fixture
def window(make_window, demo_project):
    """The main window on the demo project (``make_window``)."""
    return make_window(demo_project)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    """Every GUI test reads and writes QSettings in a folder of its own: never the user's, and never what
    an earlier test saved (the window saves its layout and parameters when it closes)."""
    from PySide6.QtCore import QSettings

    folder = tmp_path_factory.mktemp("settings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Thumbnails and raw heads go to a cache folder of each test's own, never the user's cache."""
    from deepmark.core.studio.cache import CACHE_ENV

    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv(CACHE_ENV, str(folder))
    yield folder


@pytest.fixture(autouse=True)
def garbage_collected_in_the_gui_thread():
    """As the app does (``deepmark.app.main.collect_garbage_in_gui_thread``): no automatic collection while a GUI
    test runs, whose worker threads could otherwise free Qt objects of earlier tests; one collection in
    the GUI thread after each test."""
    import gc

    gc.collect()
    gc.disable()
    yield
    gc.enable()
    gc.collect()
