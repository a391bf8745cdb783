"""The vectorised ``deepmark.core.centernet.decode.decode_detections`` agrees with the loop-based reference decoder.

The reference (``reference_decoder.py``) is written from ``docs/decoding.md`` alone. Heads are either
uniform random (many peaks everywhere, so every rule — rejection, top_k, NMS — is exercised) or
simulated scenes with background noise. Maps are kept small (16×16 to 24×24) so the loops stay fast.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import Affine, Detection, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.synthetic.simulate import random_scene, simulated_heads

try:
    from tests.core.centernet.reference_decoder import reference_decode
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    from reference_decoder import reference_decode

TAXONOMY = load_taxonomy()
GROUPINGS = {name: load_grouping(name, TAXONOMY) for name in ("semantic62", "agg81")}

SCALE_SHIFT = Affine.scale_translate(0.25, -3, 5)
# x mirrored: the inverse maps x1 > x2, so the box corners must be re-ordered.
MIRROR = Affine(np.array([[-0.25, 0.0, 30.0], [0.0, 0.25, 1.0]]))


def random_heads(seed: int, grouping_name: str = "semantic62", size: tuple[int, int] = (20, 22),
                 image_to_map: Affine | None = None) -> RawHeads:
    """Uniform random heads: heatmaps in [0, 1), sub-pixel offsets in [0, 1), boxes 3–14 px, landmark
    offsets within ±5 px (so some nearest peaks are accepted and some rejected by each rule)."""
    rng = np.random.default_rng(seed)
    g = GROUPINGS[grouping_name].num_groups
    h, w = size

    def u(lo, hi, channels):
        return rng.uniform(lo, hi, (channels, h, w)).astype(np.float32)

    return RawHeads(
        hm=u(0, 1, TAXONOMY.num_classes),
        reg=u(0, 1, 2),
        wh=u(3, 14, 2),
        hps=u(-5, 5, 2 * g),
        hm_hp=u(0, 1, g),
        hp_offset=u(0, 1, 2),
        image_to_map=image_to_map or Affine.identity(),
        image_size=(4 * w, 4 * h),
    )


def scene_heads(seed: int, grouping_name: str = "semantic62", image_size: tuple[int, int] = (96, 96),
                noise: float = 0.05) -> RawHeads:
    """Simulated heads of a random scene (map 24×24 for a 96×96 image) with background noise."""
    rng = np.random.default_rng(seed)
    grouping = GROUPINGS[grouping_name]
    items = random_scene(rng, TAXONOMY, image_size=image_size)
    return simulated_heads(items, image_size, TAXONOMY, grouping, rng=rng, noise=noise)


def _key(d: Detection):
    return (-round(d.score, 5), d.category_id, tuple(np.round(d.box, 3)))


def assert_same(got: list[Detection], want: list[Detection]) -> None:
    assert len(got) == len(want), f"{len(got)} detections, reference has {len(want)}"
    # Both are sorted by score; sort again on (−score, category, box) so exact ties match robustly.
    got, want = sorted(got, key=_key), sorted(want, key=_key)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        where = f"detection {i} (reference: category {b.category_id}, score {b.score:.6f})"
        assert a.category_id == b.category_id, where
        assert a.score == pytest.approx(b.score, abs=1e-5), where
        assert a.box_score == pytest.approx(b.box_score, abs=1e-5), where
        np.testing.assert_allclose(a.box, b.box, atol=1e-4, rtol=0, err_msg=where)
        assert a.landmarks.shape == b.landmarks.shape, where
        np.testing.assert_array_equal(a.refined, b.refined, err_msg=where)
        np.testing.assert_allclose(a.landmarks[:, :2], b.landmarks[:, :2], atol=1e-3, rtol=0, err_msg=where)
        np.testing.assert_allclose(a.landmarks[:, 2], b.landmarks[:, 2], atol=1e-5, rtol=0, err_msg=where)


PARAMS = {
    "baseline": PostprocessParams(),
    "center_rescoring": PostprocessParams(center_rescoring=True),
    "center_rescoring_exact": PostprocessParams(center_rescoring=True, candidate_floor=0.0),
    "all_techniques_exact": PostprocessParams.all_techniques(candidate_floor=0.0),
    "heatmap_rescoring": PostprocessParams(heatmap_rescoring=True),
    "location_refinement": PostprocessParams(location_refinement=True),
    "keypoint_rescoring": PostprocessParams(keypoint_rescoring=True),
    "all_techniques": PostprocessParams.all_techniques(),
    "all_nms_across_classes": PostprocessParams.all_techniques(nms_per_class=False, nms_iou=0.3),
    "nms_only": PostprocessParams(nms=True, nms_iou=0.2),
    "centernet": PostprocessParams.centernet(),
    "top_k_7": PostprocessParams.all_techniques(top_k=7),
    "top_k_7_baseline": PostprocessParams(top_k=7, score_threshold=0.0),
    "max_detections_5": PostprocessParams.all_techniques(max_detections=5, score_threshold=0.3),
    "other_alpha_sigma_gamma": PostprocessParams.all_techniques(
        alpha=0.55, sigma_center=1.3, sigma_keypoint=0.3, gamma=0.4, peak_threshold=0.25, score_threshold=0.35
    ),
    "sigma_off": PostprocessParams.all_techniques(sigma_center=0.0, sigma_keypoint=0.0005, alpha=1.0, gamma=1.0),
    "alpha_0_high_threshold": PostprocessParams(center_rescoring=True, alpha=0.0, score_threshold=0.5,
                                                peak_threshold=0.3, top_k=30),
}


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", list(PARAMS))
def test_random_heads_match_reference(name: str, seed: int) -> None:
    transform = SCALE_SHIFT if seed == 2 else None
    heads = random_heads(seed, image_to_map=transform)
    params = PARAMS[name]
    grouping = GROUPINGS["semantic62"]
    want = reference_decode(heads, params, TAXONOMY, grouping)
    got = decode_detections(heads, params, TAXONOMY, grouping)
    assert_same(got, want)


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("name", ["baseline", "all_techniques", "centernet", "top_k_7", "other_alpha_sigma_gamma"])
def test_scene_heads_match_reference(name: str, seed: int) -> None:
    heads = scene_heads(seed)
    params = PARAMS[name]
    grouping = GROUPINGS["semantic62"]
    want = reference_decode(heads, params, TAXONOMY, grouping)
    got = decode_detections(heads, params, TAXONOMY, grouping)
    assert want, "the scene should give detections"
    assert_same(got, want)


@pytest.mark.parametrize("name", ["baseline", "all_techniques"])
def test_agg81_grouping_matches_reference(name: str) -> None:
    heads = random_heads(5, "agg81", size=(16, 18))
    params = PARAMS[name]
    grouping = GROUPINGS["agg81"]
    assert_same(decode_detections(heads, params, TAXONOMY, grouping),
                reference_decode(heads, params, TAXONOMY, grouping))


@pytest.mark.parametrize("name", ["baseline", "all_techniques"])
def test_mirrored_transform_reorders_box_corners(name: str) -> None:
    heads = random_heads(6, size=(16, 16), image_to_map=MIRROR)
    params = PARAMS[name]
    grouping = GROUPINGS["semantic62"]
    want = reference_decode(heads, params, TAXONOMY, grouping)
    got = decode_detections(heads, params, TAXONOMY, grouping)
    assert want
    assert all(d.box[0] <= d.box[2] and d.box[1] <= d.box[3] for d in got)
    assert_same(got, want)


def _replace(heads: RawHeads, **arrays) -> RawHeads:
    fields = {**heads.arrays(), **{k: np.asarray(v, np.float32) for k, v in arrays.items()}}
    return RawHeads(**fields, image_to_map=heads.image_to_map, image_size=heads.image_size)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("params", [
    PostprocessParams(score_threshold=0.5, peak_threshold=0.25, top_k=10_000, max_detections=10_000),
    PostprocessParams(center_rescoring=True, location_refinement=True, keypoint_rescoring=True,
                      score_threshold=0.5, peak_threshold=0.5, top_k=10_000, max_detections=10_000),
], ids=["baseline", "techniques_1_3_4"])
def test_plateaus_and_threshold_equalities(params: PostprocessParams, seed: int) -> None:
    """Heatmaps quantised to multiples of 1/4: plateaus (ties keep every pixel as a peak), center
    scores exactly at ``score_threshold`` (kept: ≥) and group peaks exactly at ``peak_threshold``
    (dropped: strictly greater). ``top_k`` exceeds the number of peaks so no top-k tie is ambiguous.
    No smoothing here: float32 vs float64 smoothing of exact plateaus would be a razor-edge tie."""
    heads = random_heads(seed, size=(16, 18))
    heads = _replace(heads, hm=np.floor(heads.hm * 4) / 4, hm_hp=np.floor(heads.hm_hp * 4) / 4)
    grouping = GROUPINGS["semantic62"]
    assert_same(decode_detections(heads, params, TAXONOMY, grouping),
                reference_decode(heads, params, TAXONOMY, grouping))


@pytest.mark.parametrize("params", [PostprocessParams(), PostprocessParams(keypoint_rescoring=True)],
                         ids=["baseline", "keypoint_rescoring"])
def test_peaks_exactly_on_box_edges(params: PostprocessParams) -> None:
    """Integer geometry: zero sub-pixel offsets and even box sizes put box edges and peaks on integers,
    so many chosen peaks lie exactly on an edge (inside: the rule is x < x1 or x > x2). Sizes
    {4, 6, 8, 12, 14} keep 0.3·max(w, h) off every integer distance; landmark offsets get a small
    non-integer part so no two peaks are equally near."""
    rng = np.random.default_rng(11)
    heads = random_heads(3, size=(16, 18))
    zeros = np.zeros_like(heads.reg)
    wh = rng.choice([4.0, 6.0, 8.0, 12.0, 14.0], size=heads.wh.shape)
    hps = rng.integers(-5, 6, size=heads.hps.shape) + rng.uniform(-0.2, 0.2, size=heads.hps.shape)
    heads = _replace(heads, reg=zeros, hp_offset=zeros, wh=wh, hps=hps)
    grouping = GROUPINGS["semantic62"]
    assert_same(decode_detections(heads, params, TAXONOMY, grouping),
                reference_decode(heads, params, TAXONOMY, grouping))


def thin_box_heads(seed: int) -> RawHeads:
    """Boxes 12–18 px wide and 1.5–2.5 px high: σ_m = min(w, h)/9 is tiny, so the keypoint mask
    exp(−d²/2σ_m²) of acceptable peaks (d ≤ 0.3·18) goes down to ~1e-228: below float32's range, still
    inside float64's (so the reference never meets an underflow tie among acceptable peaks)."""
    rng = np.random.default_rng(seed + 7)
    heads = random_heads(seed, size=(16, 18))
    shape = heads.wh.shape[1:]
    return _replace(heads, wh=np.stack([rng.uniform(12, 18, shape), rng.uniform(1.5, 2.5, shape)]))


def test_keypoint_rescoring_thin_boxes() -> None:
    heads = thin_box_heads(1)
    params = PostprocessParams(keypoint_rescoring=True)
    grouping = GROUPINGS["semantic62"]
    assert_same(decode_detections(heads, params, TAXONOMY, grouping),
                reference_decode(heads, params, TAXONOMY, grouping))


# Regression test for a bug this file found: per-class center-rescoring floors applied BEFORE top_k
# freed top_k slots that lower-scored peaks of other classes then filled, so candidates outside the
# top_k were examined and output. Here class 0 (id 1) holds every center peak in [0.30, 0.37] and its
# groups are dead (no landmark peak), so none of its candidates can reach 0.3; the other classes' peaks
# are in [0.05, 0.29]. The top_k = 10 highest peaks are all class 0's, so the answer is no detection.
def test_center_rescoring_class_floors_do_not_change_top_k() -> None:
    grouping = GROUPINGS["semantic62"]
    heads = random_heads(1, size=(16, 16))
    hm = np.concatenate([0.30 + 0.07 * heads.hm[:1], 0.05 + 0.24 * heads.hm[1:]])
    hm_hp = heads.hm_hp.copy()
    hm_hp[np.asarray(grouping.category_groups[0])] *= 0.05
    heads = _replace(heads, hm=hm, hm_hp=hm_hp)
    params = PostprocessParams(center_rescoring=True, score_threshold=0.3, top_k=10)
    want = reference_decode(heads, params, TAXONOMY, grouping)
    assert want == []
    assert_same(decode_detections(heads, params, TAXONOMY, grouping), want)
