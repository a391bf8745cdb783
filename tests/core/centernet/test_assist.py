"""Assisted correction: prompted landmarks (box or centre click), snap to peak, template re-fit.

Real heads of the bundled model on the demo images (measured against their labels), simulated heads with
known truth (exact answers), and hypothesis where a property holds for every input.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmark.core.centernet.assist import BOX_TOLERANCE, map_box, map_scale, prompted_landmarks, snap_to_peak
from deepmark.core.centernet.decode import decode_detections
from deepmark.core.centernet.peaks import find_peaks
from deepmark.core.domain.structures import Affine, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.errors import DecodeError, DeepMarkError, TaxonomyError
from deepmark.core.studio.templates import MIN_FIXED, refit_to_template, template_landmarks
from deepmark.core.synthetic.simulate import random_scene, simulated_heads

TAXONOMY = load_taxonomy()
GROUPING = load_grouping("semantic62", TAXONOMY)
SIZE = (256, 192)  # 64×48 output map
ALL = PostprocessParams.all_techniques()
PARAM_SETS = {
    "all techniques": ALL,
    "centernet": PostprocessParams.centernet(),
    "rescoring, no refinement": PostprocessParams.all_techniques(location_refinement=False),
    "refinement, nearest peak": PostprocessParams(location_refinement=True, gamma=0.6, heatmap_rescoring=True),
}


def _scene(seed: int, noise: float = 0.0, regression_noise: float = 0.0):
    rng = np.random.default_rng(seed)
    items = random_scene(rng, TAXONOMY, SIZE)
    return items, simulated_heads(items, SIZE, TAXONOMY, GROUPING, rng, noise, regression_noise)


def _mean_error(points: np.ndarray, item) -> float:
    labelled = item.landmarks[:, 2] > 0
    return float(np.hypot(*(points[labelled, :2] - item.landmarks[labelled, :2]).T).mean())


# ---------------------------------------------------------------------------------------------
# Prompted landmarks: real heads


@pytest.fixture(scope="module")
def demo_heads():
    """(items, heads) of each demo image, from the bundled default model."""
    from deepmark.core.formats.df2 import read_df2_annotations
    from deepmark.core.imaging.read import read_image
    from deepmark.core.inference.detector import Detector
    from deepmark.core.studio.display import demo_folder

    detector = Detector(threads=1)
    labels, problems = read_df2_annotations(demo_folder(), TAXONOMY)
    assert not problems and len(labels) == 8
    return [(items, detector.heads(read_image(demo_folder() / "image" / f"{image_id:06d}.jpg")))
            for image_id, items in sorted(labels.items())]


@pytest.mark.parametrize("name", list(PARAM_SETS))
def test_prompted_landmarks_beat_the_template_on_the_demo_images(demo_heads, name):
    """Inside the labelled box, the heatmaps place the landmarks closer to the labels than the template does
    (mean over every labelled landmark of the 28 demo garments), and so does a click at the box's centre."""
    params = PARAM_SETS[name]
    errors = {"template": [], "box": [], "click": []}
    for items, heads in demo_heads:
        for item in items:
            category = TAXONOMY.category(item.category_id)
            box = prompted_landmarks(heads, item.box, item.category_id, params, TAXONOMY, GROUPING)
            click = prompted_landmarks(heads, (item.box[:2] + item.box[2:]) / 2, item.category_id, params,
                                       TAXONOMY, GROUPING)
            errors["template"].append(_mean_error(template_landmarks(category, item.box), item))
            errors["box"].append(_mean_error(box.landmarks, item))
            errors["click"].append(_mean_error(click.landmarks, item))
    mean = {k: float(np.mean(v)) for k, v in errors.items()}
    assert len(errors["box"]) == 28
    # measured (image px) with all techniques: template 15.5; box 12.5, click 11.1
    assert mean["box"] < 0.9 * mean["template"], mean
    assert mean["click"] < 0.9 * mean["template"], mean


def test_prompted_landmarks_are_well_formed(demo_heads):
    for items, heads in demo_heads[:3]:
        for item in items:
            category = TAXONOMY.category(item.category_id)
            for params in PARAM_SETS.values():
                out = prompted_landmarks(heads, item.box, item.category_id, params, TAXONOMY, GROUPING)
                n = category.num_landmarks
                assert out.landmarks.shape == (n, 3) and out.confident.shape == (n,)
                assert np.isfinite(out.landmarks).all()
                np.testing.assert_array_equal(out.box, item.box)
                # a confident landmark scored at least the peak floor; the fallback is the template, score 0
                assert (out.landmarks[out.confident, 2] >= params.peak_threshold).all()
                assert (out.landmarks[~out.confident, 2] == 0).all()
                template = template_landmarks(category, item.box)
                np.testing.assert_allclose(out.landmarks[~out.confident, :2], template[~out.confident, :2],
                                           atol=1e-6)
                # every landmark stays in the user's box, up to the tolerance of half a map pixel (2 image
                # pixels here): peaks outside are rejected, and the blend of two points in the box is in it
                tolerance = BOX_TOLERANCE / map_scale(heads.image_to_map) + 1e-6
                assert (out.landmarks[:, :2] >= item.box[:2] - tolerance).all()
                assert (out.landmarks[:, :2] <= item.box[2:] + tolerance).all()


# ---------------------------------------------------------------------------------------------
# Prompted landmarks: simulated heads with known truth


@pytest.mark.parametrize("seed", range(6))
def test_box_prompt_on_perfect_heads_finds_every_labelled_landmark_exactly(seed):
    """Perfect heads, the labelled box, peaks taken as they are: every labelled landmark is confident and on
    its label; every unlabelled one (no peak) is the template."""
    items, heads = _scene(seed)
    params = PostprocessParams()
    for item in items:
        out = prompted_landmarks(heads, item.box, item.category_id, params, TAXONOMY, GROUPING)
        labelled = item.landmarks[:, 2] > 0
        np.testing.assert_array_equal(out.confident, labelled)
        # exact, but for landmarks sharing a map pixel with another: CenterNet has one hp_offset map for
        # all groups, so those share one sub-pixel offset (still within the pixel, 4 image pixels)
        error = np.hypot(*(out.landmarks[labelled, :2] - item.landmarks[labelled, :2]).T)
        assert (error < 4 * math.sqrt(2)).all()
        assert np.mean(error < 1e-3) >= 0.9
        template = template_landmarks(TAXONOMY.category(item.category_id), item.box)
        np.testing.assert_allclose(out.landmarks[~labelled, :2], template[~labelled, :2], atol=1e-6)


@pytest.mark.parametrize("name", list(PARAM_SETS))
@pytest.mark.parametrize("seed", range(4))
def test_click_on_a_decoded_centre_gives_the_decoders_garment(seed, name):
    """A click on the center pixel of a decoded garment yields exactly the decoder's landmarks, scores,
    refined flags and box: the same candidate matched by the same function."""
    params = PARAM_SETS[name]
    _, heads = _scene(seed, noise=0.05, regression_noise=0.0)
    for det in decode_detections(heads, params, TAXONOMY, GROUPING):
        cx, cy = heads.image_to_map.apply((det.box[:2] + det.box[2:]) / 2)
        pixel_centre = heads.image_to_map.inverse().apply(np.array([math.floor(cx) + 0.5, math.floor(cy) + 0.5]))
        out = prompted_landmarks(heads, pixel_centre, det.category_id, params, TAXONOMY, GROUPING, centre_search=0)
        np.testing.assert_allclose(out.landmarks, det.landmarks, atol=1e-9)
        np.testing.assert_array_equal(out.confident, det.refined)
        np.testing.assert_allclose(out.box, det.box, atol=1e-9)
        assert out.centre_score == pytest.approx(det.box_score, abs=1e-6) or params.heatmap_rescoring


def test_click_finds_the_centre_peak_near_the_click():
    items, heads = _scene(3)
    for item in items:
        centre = (item.box[:2] + item.box[2:]) / 2
        exact = prompted_landmarks(heads, centre, item.category_id, ALL, TAXONOMY, GROUPING)
        nearby = prompted_landmarks(heads, centre + (5.0, -6.0), item.category_id, ALL, TAXONOMY, GROUPING)
        np.testing.assert_allclose(nearby.landmarks, exact.landmarks)
        np.testing.assert_allclose(exact.box, item.box, atol=1e-3)  # perfect heads regress the labelled box


def test_prompt_under_a_letterbox_transform_maps_back_to_image_pixels():
    """Heads of a letterboxed input: prompts and results stay in the original image's pixels."""
    items, heads = _scene(5)
    to_map = Affine(np.array([[0.5, 0.0, -20.0], [0.0, 0.5, -12.0]])).then(heads.image_to_map)
    to_image = Affine(np.array([[2.0, 0.0, 40.0], [0.0, 2.0, 24.0]]))  # the inverse of the first map
    moved = replace(heads, image_to_map=to_map)
    for item in items:
        scaled = np.concatenate([to_image.apply(item.box[:2]), to_image.apply(item.box[2:])])
        plain = prompted_landmarks(heads, item.box, item.category_id, ALL, TAXONOMY, GROUPING)
        out = prompted_landmarks(moved, scaled, item.category_id, ALL, TAXONOMY, GROUPING)
        np.testing.assert_allclose(out.landmarks[:, :2], to_image.apply(plain.landmarks[:, :2]), atol=1e-4)
        np.testing.assert_array_equal(out.confident, plain.confident)
    np.testing.assert_allclose(map_box(to_image, [0, 0, 10, 5]), [40, 24, 60, 34])


@pytest.mark.parametrize("prompt", [[1.0, 2.0, 3.0], [10, 10, 5, 20], [10, 10, 20, 10], [np.nan, 1.0],
                                    [0, 0, np.inf, 20], [[1, 2], [3, 4], [5, 6]]])
def test_malformed_prompts_are_refused(prompt):
    _, heads = _scene(0)
    with pytest.raises(DecodeError, match="prompt"):
        prompted_landmarks(heads, prompt, 1, ALL, TAXONOMY, GROUPING)


def test_unknown_category_and_foreign_heads_are_refused():
    _, heads = _scene(0)
    with pytest.raises(TaxonomyError, match="unknown category"):
        prompted_landmarks(heads, [10, 10, 50, 50], 14, ALL, TAXONOMY, GROUPING)
    other = load_grouping("agg81", TAXONOMY)
    with pytest.raises(DecodeError, match="shape"):
        prompted_landmarks(heads, [10, 10, 50, 50], 1, ALL, TAXONOMY, other)


# ---------------------------------------------------------------------------------------------
# Snap to peak


def _blank_heads(height: int = 40, width: int = 48, to_map: Affine | None = None) -> RawHeads:
    g = GROUPING.num_groups
    z = np.zeros
    return RawHeads(z((13, height, width), np.float32), z((2, height, width), np.float32),
                    z((2, height, width), np.float32), z((2 * g, height, width), np.float32),
                    z((g, height, width), np.float32), z((2, height, width), np.float32),
                    to_map or Affine.scale_translate(0.25), (width * 4, height * 4))


def _plant(heads: RawHeads, group: int, x: float, y: float, score: float) -> None:
    """A 3×3 blob peaking at ``score`` on map point (x, y) of ``group``: pixel ⌊x⌋, ⌊y⌋ with its offset."""
    px, py = math.floor(x), math.floor(y)
    heads.hm_hp[group, py - 1: py + 2, px - 1: px + 2] = np.maximum(heads.hm_hp[group, py - 1: py + 2, px - 1: px + 2],
                                                                   score * 0.5)
    heads.hm_hp[group, py, px] = score
    heads.hp_offset[:, py, px] = (x - px, y - py)


def test_snap_finds_the_planted_peak():
    heads = _blank_heads()
    _plant(heads, 7, 20.3, 15.6, 0.8)  # image (81.2, 62.4)
    _plant(heads, 7, 30.5, 15.5, 0.9)  # image (122, 62), farther from the point below
    _plant(heads, 8, 21.5, 15.5, 0.9)  # another group: never seen
    found = snap_to_peak(heads, 7, (86.0, 60.0), radius=20.0)
    assert found is not None
    np.testing.assert_allclose(found[0], [81.2, 62.4], atol=1e-4)
    assert found[1] == pytest.approx(0.8)
    assert snap_to_peak(heads, 7, (86.0, 60.0), radius=4.0) is None  # nothing that close
    far = snap_to_peak(heads, 7, (118.0, 62.0), radius=20.0)
    np.testing.assert_allclose(far[0], [122.0, 62.0], atol=1e-4)
    assert snap_to_peak(heads, 7, (86.0, 60.0), radius=20.0, min_score=0.85) is None  # too weak
    assert snap_to_peak(heads, 6, (86.0, 60.0), radius=50.0) is None  # an empty group


def test_snap_at_the_map_edge_and_outside_it():
    heads = _blank_heads()
    _plant(heads, 0, 0.2, 0.4, 0.7)  # in the corner pixel: the crop's padding is the map's
    heads.hm_hp[0, 0, 0] = 0.7
    found = snap_to_peak(heads, 0, (3.0, 3.0), radius=6.0)
    assert found is not None and found[1] == pytest.approx(0.7)
    assert snap_to_peak(heads, 0, (-500.0, -500.0), radius=10.0) is None
    with pytest.raises(DecodeError, match="group"):
        snap_to_peak(heads, GROUPING.num_groups, (3.0, 3.0), 5.0)
    with pytest.raises(DecodeError, match="radius"):
        snap_to_peak(heads, 0, (3.0, 3.0), -1.0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), x=st.floats(-20, 220), y=st.floats(-20, 180), radius=st.floats(0, 80),
       sigma=st.sampled_from([0.0, 0.9]), scale=st.sampled_from([0.25, 0.5]))
def test_snap_is_the_nearest_of_the_whole_maps_peaks(seed, x, y, radius, sigma, scale):
    """The windowed search agrees with brute force over every peak of the whole map."""
    rng = np.random.default_rng(seed)
    heads = _blank_heads(to_map=Affine(np.array([[scale, 0.0, 3.0], [0.0, scale, -2.0]])))
    group = int(rng.integers(GROUPING.num_groups))
    heads.hm_hp[group] = rng.uniform(0, 1, heads.hm_hp.shape[1:]) ** 4
    heads.hp_offset[:] = rng.uniform(-0.9, 1.9, heads.hp_offset.shape)  # a network strays from [0, 1)
    found = snap_to_peak(heads, group, (x, y), radius, min_score=0.1, sigma=sigma)
    peaks = find_peaks(heads.hm_hp[group][None], 0.1, sigma, strict=True)
    at = np.stack([peaks.x + heads.hp_offset[0, peaks.y, peaks.x], peaks.y + heads.hp_offset[1, peaks.y, peaks.x]], 1)
    image_xy = heads.image_to_map.inverse().apply(at.astype(np.float64))
    dist = np.hypot(image_xy[:, 0] - x, image_xy[:, 1] - y)
    if not (dist <= radius).any():
        assert found is None
    else:
        assert found is not None
        assert np.hypot(*(found[0] - (x, y))) == pytest.approx(dist.min(), abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Re-fit to the template


def _similar(points: np.ndarray, scale: float, angle: float, shift) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return scale * points @ np.array([[c, s], [-s, c]]) + np.asarray(shift)


def _drawing(category) -> np.ndarray:
    return category.template * (category.template_aspect, 1.0)


similarity = st.tuples(st.floats(0.2, 5.0), st.floats(-math.pi, math.pi),
                       st.tuples(st.floats(-500, 500), st.floats(-500, 500)))


@settings(max_examples=60, deadline=None)
@given(category_id=st.integers(1, 13), transform=similarity, seed=st.integers(0, 10**6))
def test_refit_recovers_a_known_similarity_exactly(category_id, transform, seed):
    """Landmarks that are a similarity of the template: any ≥ 2 fixed ones place all others exactly."""
    category = TAXONOMY.category(category_id)
    rng = np.random.default_rng(seed)
    truth = _similar(_drawing(category) * 300, *transform)
    fixed = np.zeros(category.num_landmarks, bool)
    fixed[rng.choice(category.num_landmarks, size=int(rng.integers(MIN_FIXED, category.num_landmarks)),
                     replace=False)] = True
    start = truth + np.where(fixed[:, None], 0.0, rng.normal(0, 40, truth.shape))  # the others anywhere
    out = refit_to_template(category, start, fixed)
    np.testing.assert_array_equal(out[fixed], start[fixed])
    np.testing.assert_allclose(out, truth, atol=1e-6 * (1 + np.abs(truth).max()))


@settings(max_examples=60, deadline=None)
@given(category_id=st.integers(1, 13), transform=similarity, seed=st.integers(0, 10**6))
def test_refit_commutes_with_similarity_transforms(category_id, transform, seed):
    """Moving, turning and scaling the fixed landmarks moves, turns and scales the re-fit the same way."""
    category = TAXONOMY.category(category_id)
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 400, (category.num_landmarks, 2))
    fixed = rng.random(category.num_landmarks) < 0.5
    fixed[:2] = True
    out = refit_to_template(category, points, fixed)
    moved = refit_to_template(category, _similar(points, *transform), fixed)
    np.testing.assert_allclose(moved, _similar(out, *transform), atol=1e-6 * (1 + np.abs(moved).max()))


def test_refit_is_a_least_squares_fit():
    """With noisy fixed landmarks the fit beats the template under the true transform on those landmarks."""
    category = TAXONOMY.category(1)
    rng = np.random.default_rng(0)
    truth = _similar(_drawing(category) * 200, 1.3, 0.2, (50, 60))
    noisy = truth + rng.normal(0, 3, truth.shape)
    fixed = np.ones(category.num_landmarks, bool)
    fixed[::3] = False
    out = refit_to_template(category, noisy, fixed)
    # re-fitting with the fitted positions of the free landmarks as well changes nothing (a fixed point)
    np.testing.assert_allclose(refit_to_template(category, out, fixed), out)
    assert np.hypot(*(out[~fixed] - truth[~fixed]).T).mean() < 3.0


@pytest.mark.parametrize("count", [0, 1])
def test_refit_with_fewer_than_two_fixed_changes_nothing(count):
    category = TAXONOMY.category(2)
    points = np.random.default_rng(1).uniform(0, 100, (category.num_landmarks, 2))
    fixed = np.zeros(category.num_landmarks, bool)
    fixed[:count] = True
    out = refit_to_template(category, points, fixed)
    np.testing.assert_array_equal(out, points)
    assert out is not points


def test_refit_refuses_wrong_shapes_and_non_finite_fixed_landmarks():
    category = TAXONOMY.category(3)
    n = category.num_landmarks
    with pytest.raises(DeepMarkError, match="expected landmarks"):
        refit_to_template(category, np.zeros((n + 1, 2)), np.ones(n + 1, bool))
    with pytest.raises(DeepMarkError, match="expected landmarks"):
        refit_to_template(category, np.zeros((n, 2)), np.ones(n - 1, bool))
    points = np.zeros((n, 2))
    points[0] = np.nan
    with pytest.raises(DeepMarkError, match="finite"):
        refit_to_template(category, points, np.ones(n, bool))
    # a non-finite landmark that is re-placed anyway is fine
    out = refit_to_template(category, np.where(np.arange(n)[:, None] == 0, np.nan, np.arange(2 * n).reshape(n, 2)),
                            np.arange(n) > 0)
    assert np.isfinite(out).all()
