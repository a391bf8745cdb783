"""Property tests of the decoder (hypothesis) on realistic and noisy heads."""

from dataclasses import replace

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.centernet.peaks import find_peaks
from deepmark.core.domain.structures import PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.synthetic.simulate import random_scene, simulated_heads

TAXONOMY = load_taxonomy()
GROUPING = load_grouping("semantic62", TAXONOMY)
SIZE = (192, 128)  # 48×32 output map

unit = st.floats(0.0, 1.0)
params_strategy = st.builds(
    PostprocessParams,
    center_rescoring=st.booleans(), alpha=unit,
    heatmap_rescoring=st.booleans(), sigma_center=unit, sigma_keypoint=unit,
    location_refinement=st.booleans(), gamma=unit,
    keypoint_rescoring=st.booleans(),
    nms=st.booleans(), nms_iou=st.floats(0.1, 0.9), nms_per_class=st.booleans(),
    score_threshold=st.floats(0.0, 0.5), top_k=st.integers(1, 100), max_detections=st.integers(1, 100),
)


def _heads(seed: int, noise: float) -> RawHeads:
    rng = np.random.default_rng(seed)
    return simulated_heads(random_scene(rng, TAXONOMY, SIZE), SIZE, TAXONOMY, GROUPING, rng, noise)


def _decode(heads, params):
    return decode_detections(heads, params, TAXONOMY, GROUPING)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), noise=st.sampled_from([0.0, 0.05, 0.3]), params=params_strategy)
def test_outputs_are_well_formed(seed, noise, params):
    dets = _decode(_heads(seed, noise), params)
    assert len(dets) <= params.max_detections
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True)
    for d in dets:
        category = TAXONOMY.category(d.category_id)
        assert 0.0 <= d.score <= 1.0 and 0.0 <= d.box_score <= 1.0
        assert d.score >= params.score_threshold - 1e-12
        assert np.isfinite(d.box).all() and d.box[0] <= d.box[2] and d.box[1] <= d.box[3]
        assert d.landmarks.shape == (category.num_landmarks, 3)  # exactly the category's landmarks
        assert d.refined.shape == (category.num_landmarks,)
        assert np.isfinite(d.landmarks).all()
        assert ((d.landmarks[:, 2] >= 0) & (d.landmarks[:, 2] <= 1)).all()
        assert (d.landmarks[~d.refined, 2] == 0).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), noise=st.sampled_from([0.0, 0.05]), params=params_strategy)
def test_alpha_one_keeps_baseline_scores(seed, noise, params):
    heads = _heads(seed, noise)
    off = _decode(heads, replace(params, center_rescoring=False))
    on = _decode(heads, replace(params, center_rescoring=True, alpha=1.0))
    assert [(d.category_id, d.score) for d in on] == [(d.category_id, d.score) for d in off]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), noise=st.sampled_from([0.0, 0.05]), params=params_strategy)
def test_gamma_extremes(seed, noise, params):
    heads = _heads(seed, noise)
    params = replace(params, center_rescoring=False)  # keep scores, hence the detection set, fixed
    refined = _decode(heads, replace(params, location_refinement=False))
    gamma1 = _decode(heads, replace(params, location_refinement=True, gamma=1.0))
    gamma0 = _decode(heads, replace(params, location_refinement=True, gamma=0.0))
    # Coarse positions: no heatmap peak is ever accepted when none can score above 1.
    coarse = _decode(heads, replace(params, location_refinement=False, peak_threshold=1.0))
    assert len(refined) == len(gamma1) == len(gamma0)
    for a, b, c in zip(refined, gamma1, gamma0, strict=True):
        np.testing.assert_allclose(b.landmarks, a.landmarks, atol=1e-9)
        np.testing.assert_array_equal(b.refined, a.refined)
        same = [d for d in coarse if d.category_id == c.category_id and np.allclose(d.box, c.box)]
        assert same, "γ = 0 detection has no counterpart without refinement"
        np.testing.assert_allclose(c.landmarks[:, :2], same[0].landmarks[:, :2], atol=1e-6)


def _has_tied_peaks(heads: RawHeads, params: PostprocessParams) -> bool:
    """True when two center peaks, or two peaks of one group heatmap, have exactly the same score."""
    smooth = params.heatmap_rescoring
    for heat, sigma in ((heads.hm, params.sigma_center), (heads.hm_hp, params.sigma_keypoint)):
        peaks = find_peaks(heat, 0.0, sigma if smooth else 0.0)
        keys = peaks.score if heat is heads.hm else np.stack([peaks.channel, peaks.score.view(np.int32)], 1)
        if len(np.unique(keys, axis=0)) < len(keys):
            return True
    return False


def flip_heads(heads: RawHeads) -> RawHeads:
    """The heads of the horizontally mirrored image (pixel x ↦ W − 1 − x, group g ↦ its mirror group).

    A point at map x = x0 + dx mirrors to W − x0 − dx = (W − 1 − x0) + (1 − dx), so every x offset
    measured from a pixel becomes 1 − dx; landmark channels follow the group flip map.
    """
    flip = GROUPING.group_flip
    hps = heads.hps.reshape(-1, 2, *heads.map_size)[flip][..., ::-1].copy()
    hps[:, 0] = 1.0 - hps[:, 0]
    reg, off = heads.reg[..., ::-1].copy(), heads.hp_offset[..., ::-1].copy()
    reg[0], off[0] = 1.0 - reg[0], 1.0 - off[0]
    return RawHeads(
        hm=heads.hm[..., ::-1].copy(), reg=reg, wh=heads.wh[..., ::-1].copy(),
        hps=hps.reshape(heads.hps.shape), hm_hp=heads.hm_hp[flip][..., ::-1].copy(), hp_offset=off,
        image_to_map=heads.image_to_map, image_size=heads.image_size,
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), params=params_strategy)
def test_flipped_input_gives_mirrored_detections(seed, params):
    heads = _heads(seed, 0.05)  # noise breaks score ties, whose order would differ in the mirror
    # ... nearly always: among ~2,000 float32 noise peaks two can still score exactly the same, and
    # when they straddle the top-K cut the mirror keeps the other one. Not a property violation.
    assume(not _has_tied_peaks(heads, params))
    width = SIZE[0]
    original = _decode(heads, params)
    mirrored = _decode(flip_heads(heads), params)
    assert len(original) == len(mirrored)
    for a, b in zip(original, mirrored, strict=True):
        assert a.category_id == b.category_id
        assert abs(a.score - b.score) < 1e-5
        np.testing.assert_allclose(b.box, [width - a.box[2], a.box[1], width - a.box[0], a.box[3]], atol=1e-3)
        perm = TAXONOMY.category(a.category_id).flip_permutation
        expected = a.landmarks[perm].copy()
        expected[:, 0] = width - expected[:, 0]
        np.testing.assert_allclose(b.landmarks, expected, atol=1e-3)
        np.testing.assert_array_equal(b.refined, a.refined[perm])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), noise=st.sampled_from([0.05, 0.3]), params=params_strategy)
def test_pruning_weak_candidates_changes_no_result(seed, noise, params):
    """The grid search prunes candidates that cannot reach the threshold; decoding the survivors gives
    exactly what decoding every candidate gives."""
    import deepmark.core.centernet.decode as dec

    heads = _heads(seed, noise)
    params = replace(params, center_rescoring=True)
    layout = dec.decode_layout(TAXONOMY, GROUPING)
    peaks = dec.landmark_peaks(heads, params)
    cand = dec.center_candidates(heads, params, dec.candidate_floors(params, layout, peaks[2]))
    kept = dec.prune_unreachable(cand, layout, peaks, params)
    coarse, groups = dec.coarse_landmarks(heads, kept, layout)
    pruned = dec.finalize_detections(heads, kept, dec.match_landmarks(coarse, groups, kept.box, peaks, params),
                                     params, layout)
    unpruned = _decode(heads, params)
    assert [(d.category_id, d.score) for d in pruned] == [(d.category_id, d.score) for d in unpruned]
    for a, b in zip(pruned, unpruned, strict=True):
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
