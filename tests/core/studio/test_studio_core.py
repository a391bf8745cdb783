"""The app's Qt-free helpers: opening work into a project, the heads cache, heatmap views, the live model."""

import numpy as np
import pytest

from deepmark.core.domain.structures import Affine, PostprocessParams, RawHeads
from deepmark.core.errors import DeepMarkError
from deepmark.core.studio.display import (
    colorize,
    demo_folder,
    group_labels,
    heat_lut,
    heatmap_view,
    is_df2_folder,
    open_demo_project,
    open_inputs,
)
from deepmark.core.studio.live import LiveModel


def _heads(groups: int = 62, h: int = 8, w: int = 10) -> RawHeads:
    rng = np.random.default_rng(0)
    z = lambda c: rng.random((c, h, w), dtype=np.float32)  # noqa: E731
    return RawHeads(z(13), z(2), z(2), z(2 * groups), z(groups), z(2), Affine.scale_translate(0.25), (4 * w, 4 * h))


def test_demo_project_and_idempotent_reopen(tmp_path):
    assert is_df2_folder(demo_folder()) and not is_df2_folder(demo_folder() / "image")
    project, report = open_demo_project(tmp_path)
    with project:
        assert report.images_added == 8 and report.items_added > 0 and not report.errors
        again = open_inputs(project, [demo_folder(), demo_folder() / "image" / "000001.jpg"])
        assert again.images_added == 0 and project.images.count() == 8


def test_heatmap_view_sources_and_smoothing():
    heads = _heads()
    view = heatmap_view(heads)
    np.testing.assert_allclose(view.values, heads.hm.max(axis=0))
    np.testing.assert_allclose(view.map_to_image.apply(np.array([10.0, 8.0])), [40.0, 32.0])
    np.testing.assert_allclose(heatmap_view(heads, "center", 4).values, heads.hm[4])
    np.testing.assert_allclose(heatmap_view(heads, "group", 7).values, heads.hm_hp[7])
    smoothed = heatmap_view(heads, "group", 7, sigma=0.9).values
    assert smoothed.shape == (8, 10) and smoothed.max() <= heads.hm_hp[7].max() + 1e-6
    for source, index in (("group", None), ("group", 62), ("size", 0)):
        with pytest.raises(DeepMarkError):
            heatmap_view(heads, source, index)


def test_colorize_is_one_lookup():
    lut = heat_lut()
    assert lut.shape == (256, 4) and lut.dtype == np.uint8 and lut[0, 3] == 0 and lut[255, 3] > 200
    rgba = colorize(np.array([[0.0, 1.0], [0.5, np.nan]], np.float32))
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[0, 1], lut[255])
    np.testing.assert_array_equal(rgba[1, 1], lut[0])


def test_group_labels(taxonomy, semantic62):
    labels = group_labels(taxonomy, semantic62)
    assert len(labels) == semantic62.num_groups and labels[0].startswith("0: ")


def test_live_model_runs_once_per_image_and_stores_once(tiny_onnx, tmp_path):
    live = LiveModel.load(tiny_onnx, threads=1)
    assert "mobilenetv2" in live.describe()
    image = np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    heads = live.heads(5, image)
    assert live.heads(5, image) is heads and live.cached(5) is heads and live.runs == 1
    params = PostprocessParams.all_techniques(score_threshold=0.0, max_detections=5)
    detections = live.decode(heads, params)
    assert len(detections) == 5
    project, _ = open_demo_project(tmp_path)
    with project:
        image_id = project.images.page()[0].id
        assert live.store_predictions(project, image_id, detections, params)
        assert not live.store_predictions(project, image_id, detections, params)
        assert len(project.predictions.for_image(image_id)) == 5 and len(project.model_runs.list()) == 1


def test_best_per_location_keeps_one_class_per_place():
    from deepmark.core.domain.structures import Detection
    from deepmark.core.studio.display import best_per_location

    def det(category_id, score, box):
        return Detection(category_id, score, score, np.array(box, float), np.zeros((25, 3)), np.zeros(25, bool))

    same = [det(1, 0.5, [0, 0, 100, 100]), det(2, 0.9, [1, 0, 100, 101]), det(3, 0.7, [0, 1, 99, 100])]
    apart = [det(1, 0.3, [200, 200, 300, 300]), det(1, 0.2, [0, 0, 60, 100])]  # overlap 0.6 < 0.7: both stay
    assert best_per_location(same + apart) == [1, 3, 4]
    assert best_per_location([]) == []
