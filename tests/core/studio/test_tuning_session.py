"""Tuning on a project's labelled images: which images count, heads loaded once, sweeps, grid, comparison."""

import threading
from dataclasses import replace

import numpy as np
import pytest

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.errors import Cancelled
from deepmark.core.evaluation.evaluate import evaluate_detections
from deepmark.core.evaluation.tune import TuneError
from deepmark.core.store import ItemData
from deepmark.core.studio.display import open_demo_project
from deepmark.core.studio.tuning import (
    DEFAULT_SWEEPS,
    TuningSession,
    TuningSpec,
    labelled_images,
    run_tuning,
)
from deepmark.core.synthetic.simulate import simulated_heads

SPEC = TuningSpec(sweeps={"alpha": [0.0, 0.5, 1.0], "gamma": [0.0, 0.5, 1.0], "score_threshold": [0.0, 0.3],
                          "nms_iou": [0.5, 0.7]},
                  grid=([0.0, 0.45, 0.9], [0.0, 0.9]))


@pytest.fixture
def demo(tmp_path):
    project, _ = open_demo_project(tmp_path)
    yield project
    project.close()


def biased_heads_fn(project, taxonomy, grouping):
    """Heads a network would give for the image's own labels, with landmark peaks 0.8 map px right of the
    truth and exact regressions: trusting the regression (γ = 0) is measurably best."""
    rng = np.random.default_rng(3)

    def heads(image_id, rgb):
        items = [r.to_item() for r in project.annotations.for_image(image_id)]
        h = simulated_heads(items, (rgb.shape[1], rgb.shape[0]), taxonomy, grouping, rng, noise=0.02)
        offset = h.hp_offset.copy()
        offset[0] += 0.8
        return replace(h, hp_offset=offset)
    return heads


def session_with_heads(demo, taxonomy, semantic62):
    session = TuningSession.from_project(demo, taxonomy, semantic62)
    session.load_heads(biased_heads_fn(demo, taxonomy, semantic62))
    return session


def test_labelled_images_follow_review_status_and_origins(demo, taxonomy):
    images = labelled_images(demo)
    assert len(images) == 8  # the demo's imported ground truth
    assert all(i.items and i.path.is_file() for i in images)
    first, second, third = (i.image_id for i in images[:3])
    demo.images.set_status(first, "rejected")
    # an unreviewed prediction makes an image unlabelled, until a reviewer accepts it
    item = demo.annotations.for_image(second)[0]
    demo.annotations.delete_item(item.id)
    demo.annotations.add_item(second, ItemData(category_id=item.category_id, box=item.box,
                                               landmarks=item.landmarks), origin="predicted")
    ids = [i.image_id for i in labelled_images(demo)]
    assert first not in ids and second not in ids and len(ids) == 6
    demo.images.set_status(second, "accepted")
    for annotation in demo.annotations.for_image(third):  # accepted with no item: a labelled empty image
        demo.annotations.delete_item(annotation.id)
    demo.images.set_status(third, "accepted")
    found = {i.image_id: i for i in labelled_images(demo)}
    assert second in found and found[third].items == []
    assert len(labelled_images(demo, limit=3)) == 3


def test_heads_are_computed_once_and_known_heads_are_reused(demo, taxonomy, semantic62):
    fn = biased_heads_fn(demo, taxonomy, semantic62)
    session = TuningSession.from_project(demo, taxonomy, semantic62)
    first = session.images[0]
    from deepmark.core.imaging.read import read_image

    known = {first.image_id: fn(first.image_id, read_image(first.path))}
    calls = []
    runs = session.load_heads(fn, known, progress=lambda d, t, s: calls.append((d, t, s)))
    assert runs == 7 and session.num_ready == 8
    assert calls[-1] == (8, 8, "running the model")
    assert session.load_heads(fn) == 0  # nothing left to run


def test_an_unreadable_image_is_reported_and_left_out(demo, taxonomy, semantic62, tmp_path):
    session = TuningSession.from_project(demo, taxonomy, semantic62)
    fn = biased_heads_fn(demo, taxonomy, semantic62)
    from deepmark.core.imaging.read import ImageError, read_image

    broken = session.images[2].path

    def read(path):
        if path == broken:
            raise ImageError(f"{path}: unreadable")
        return read_image(path)
    session.load_heads(fn, read=read)
    assert session.num_ready == 7 and len(session.errors) == 1 and "unreadable" in session.errors[0]


def test_run_gives_every_sweep_the_grid_and_the_best_measured_params(demo, taxonomy, semantic62):
    session = session_with_heads(demo, taxonomy, semantic62)
    base = PostprocessParams.all_techniques(gamma=1.0)
    calls = []
    report = session.run(base, SPEC, progress=lambda d, t, s: calls.append((d, t, s)))
    assert set(report.sweeps) == {"alpha", "gamma", "score_threshold", "nms_iou"}
    for name, result in report.sweeps.items():
        n = len(SPEC.sweeps[name])
        assert result.parameters == (name,) and result.map_pt.shape == result.map_box.shape == (n,)
        np.testing.assert_allclose(result.values[0], SPEC.sweeps[name])
    assert report.grid.parameters == ("sigma_center", "sigma_keypoint") and report.grid.map_pt.shape == (3, 2)
    assert calls[-1] == (SPEC.points(), SPEC.points(), "σ_c × σ_k") and SPEC.points() == 10 + 6
    # biased peaks: the γ sweep falls from γ = 0, and the best measured set trusts the regression
    gamma = report.sweeps["gamma"]
    assert gamma.map_pt[0] > gamma.map_pt[-1] + 0.05 and gamma.best.gamma == 0.0
    assert report.best.gamma == 0.0 and report.gain() > 0.05
    assert report.best_result.map_pt == pytest.approx(session.evaluate(report.best).map_pt)
    assert report.base_result.map_pt == pytest.approx(gamma.map_pt[-1])
    assert report.num_images == 8


def test_sweeps_outside_the_staged_search_decode_and_evaluate_each_value(demo, taxonomy, semantic62):
    session = session_with_heads(demo, taxonomy, semantic62)
    base = PostprocessParams.all_techniques()
    result = session.sweep("score_threshold", base, [0.0, 0.6])
    p = replace(base, score_threshold=0.6)
    heads = session.heads
    direct = evaluate_detections(session.ground_truth,
                                 {i: decode_detections(h, p, taxonomy, semantic62) for i, h in heads.items()},
                                 taxonomy)
    assert result.map_pt[1] == pytest.approx(direct.map_pt) and result.map_box[1] == pytest.approx(direct.map_box)
    nms = session.sweep("nms_iou", PostprocessParams(), [0.5])
    assert nms.best.nms  # the switch the parameter needs is turned on
    assert len(DEFAULT_SWEEPS["alpha"]) == 21 and DEFAULT_SWEEPS["sigma_center"][-1] == 1.5


def test_compare_presets(demo, taxonomy, semantic62):
    session = session_with_heads(demo, taxonomy, semantic62)
    good = PostprocessParams.all_techniques(gamma=0.0)
    bad = PostprocessParams.all_techniques(gamma=1.0)
    comparison = session.compare_presets(good, bad)
    rows = {label: (a, b) for label, a, b in comparison.rows()}
    assert set(rows) >= {"mAP_pt", "AP50_pt", "AP75_pt", "mAP_box", "AP50_box", "AP75_box", "detections"}
    assert rows["mAP_pt"][0] > rows["mAP_pt"][1]
    assert rows["mAP_box"][0] == pytest.approx(rows["mAP_box"][1])  # γ moves landmarks, not boxes


def test_cancel_stops_a_run(demo, taxonomy, semantic62):
    session = TuningSession.from_project(demo, taxonomy, semantic62)
    cancel = threading.Event()

    def progress(done, total, stage):
        if stage != "running the model":
            cancel.set()
    with pytest.raises(Cancelled):
        run_tuning(session, PostprocessParams.all_techniques(), SPEC, biased_heads_fn(demo, taxonomy, semantic62),
                   progress=progress, cancel=cancel)
    cancel.set()
    with pytest.raises(Cancelled):
        session.sigma_grid(PostprocessParams(), ([0.0, 1.0], [0.0, 1.0]), cancel=cancel)


def test_bad_requests(demo, taxonomy, semantic62):
    with pytest.raises(TuneError):
        TuningSpec(sweeps={"top_k": [1]})
    with pytest.raises(TuneError):
        TuningSpec(metric="f1")
    empty = TuningSession([], taxonomy, semantic62)
    with pytest.raises(TuneError, match="no labelled image"):
        empty.evaluate(PostprocessParams())


def test_heads_come_from_and_go_to_the_disk_cache(demo, taxonomy, semantic62, tmp_path):
    from deepmark.core.studio.heads_cache import HeadsDiskCache, ModelHeadsCache

    cache = ModelHeadsCache(HeadsDiskCache(tmp_path / "heads"), "model", "plain")
    heads_fn = biased_heads_fn(demo, taxonomy, semantic62)
    first = TuningSession.from_project(demo, taxonomy, semantic62)
    assert all(image.key for image in first.images)
    assert first.load_heads(heads_fn, cache=cache) == 8  # computed once, and stored
    again = TuningSession.from_project(demo, taxonomy, semantic62)
    assert again.load_heads(heads_fn, cache=cache) == 0  # a later run (or a batch job's heads): no network
    a, b = first.evaluate(PostprocessParams.all_techniques()), again.evaluate(PostprocessParams.all_techniques())
    assert a.map_pt == b.map_pt and a.map_box == b.map_box  # both decode the heads as stored
