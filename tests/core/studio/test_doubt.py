"""Review where the model doubts: the per-image uncertainty from cached heads and the likely label mistakes.

Simulated scenes with known truth (clean vs degraded heads; labels with injected errors at a known rate,
ranked against clean ones), and the bundled model's heads on the demo images.
"""

import math
from dataclasses import replace

import numpy as np
import pytest

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import Detection, Item, PostprocessParams
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.errors import DecodeError
from deepmark.core.studio import doubt as doubt_module
from deepmark.core.studio.doubt import (
    EDITS_SCALE,
    NO_PREDICTION_DOUBT,
    centre_doubt,
    image_uncertainty,
    keypoint_similarity,
    label_mistakes,
    off_tolerance,
    rival_share,
)
from deepmark.core.studio.templates import template_landmarks
from deepmark.core.synthetic.simulate import random_scene, simulated_heads

TAXONOMY = load_taxonomy()
GROUPING = load_grouping("semantic62", TAXONOMY)
SIZE = (256, 256)  # 64×64 output map, the default model's
PARAMS = PostprocessParams.all_techniques()


def _scene(seed: int, noise: float = 0.0, regression_noise: float | None = None, **scene):
    rng = np.random.default_rng(seed)
    items = random_scene(rng, TAXONOMY, SIZE, **scene)
    return items, simulated_heads(items, SIZE, TAXONOMY, GROUPING, rng, noise, regression_noise)


def _doubt(heads, **kw):
    return image_uncertainty(heads, PARAMS, TAXONOMY, GROUPING, **kw)


# ---------------------------------------------------------------------------------------------
# Image uncertainty


def test_centre_doubt_peaks_at_the_threshold():
    scores = np.array([0.001, 0.05, 0.08, 0.1, 0.12, 0.2, 0.5, 0.95])
    doubt = centre_doubt(scores, 0.1)
    assert doubt[3] == pytest.approx(1.0)
    assert (np.diff(doubt[:4]) > 0).all() and (np.diff(doubt[3:]) < 0).all()
    assert doubt[0] < 0.01 and doubt[-1] < 0.01
    assert ((doubt >= 0) & (doubt <= 1)).all()
    assert np.isfinite(centre_doubt(np.array([0.0, 1.0]), 0.0)).all()  # clamped, never a log of 0


@pytest.mark.parametrize("seed", range(8))
def test_a_clean_image_doubts_less_than_a_noisy_one(seed):
    _, clean = _scene(seed, noise=0.0)
    _, noisy = _scene(seed, noise=0.3, regression_noise=1.5)
    a, b = _doubt(clean), _doubt(noisy)
    assert 0.0 <= a.score < b.score <= 1.0
    assert a.landmarks < b.landmarks
    assert math.isnan(a.flip)


@pytest.mark.parametrize("seed", range(4))
def test_a_rival_peak_raises_the_landmark_doubt(seed, monkeypatch):
    """A second peak as strong as the true one, next to each landmark inside the garment's box: ambiguous.
    (The position error is set near 0 here: the peaks alone are tested.)"""
    monkeypatch.setattr(doubt_module, "POSITION_ERROR", 1e-3)
    items, heads = _scene(seed, num_items=1, hidden_fraction=0.0)
    before = _doubt(heads)
    assert before.landmarks < 0.3  # one clear peak per landmark (smoothing keeps it below 1)
    item = items[0]
    k = TAXONOMY.category_index(item.category_id)
    rival = heads.hm_hp.copy()
    height, width = heads.map_size
    for i in np.flatnonzero(item.landmarks[:, 2] > 0):
        x, y = heads.image_to_map.apply(item.landmarks[i, :2]).astype(int)
        g = GROUPING.category_groups[k][i]
        # the 3×3 top of the true peak, copied 4 pixels to the side (towards the map's inside)
        step = 4 if x < width // 2 else -4
        if 1 <= y < height - 1 and 1 <= x + step < width - 1 and 1 <= x < width - 1:
            rival[g, y - 1: y + 2, x + step - 1: x + step + 2] = np.maximum(
                rival[g, y - 1: y + 2, x + step - 1: x + step + 2], heads.hm_hp[g, y - 1: y + 2, x - 1: x + 2])
    after = _doubt(replace(heads, hm_hp=rival))
    assert after.landmarks > before.landmarks + 0.3
    assert after.score > before.score


def test_a_small_garments_landmarks_are_doubted_more():
    """The tolerance a landmark is held to shrinks with the garment (OKS: σ · √area) while the model's error
    does not: the chance of an edit falls with the box's size, and is exp(−r² / 2e²) at each."""
    sigmas = np.array([[0.02, 0.05]] * 3)
    boxes = np.array([[0, 0, 4, 4], [0, 0, 10, 10], [0, 0, 30, 30]], np.float64)  # map pixels
    p = off_tolerance(boxes, sigmas)
    assert (np.diff(p, axis=0) < 0).all() and (p[:, 0] > p[:, 1]).all()
    r2 = (2 * 0.05) ** 2 * 100 * 2 * math.log(1 / doubt_module.TOLERANCE_KS)
    assert p[1, 1] == pytest.approx(math.exp(-r2 / (2 * doubt_module.POSITION_ERROR**2)))
    # one garment with perfect heads, large and small: the small one's landmarks are doubted more
    doubts = []
    for box in ((20.0, 20.0, 236.0, 236.0), (100.0, 100.0, 140.0, 140.0)):
        item = Item(1, np.array(box), template_landmarks(TAXONOMY.category(1), box))
        doubts.append(_doubt(simulated_heads([item], SIZE, TAXONOMY, GROUPING)).landmarks)
    assert doubts[1] > doubts[0] + 0.2


def test_a_centre_peak_at_the_threshold_is_doubted():
    _, heads = _scene(2)
    before = _doubt(heads)
    weak = heads.hm.copy()
    weak[5, 2, 2] = PARAMS.score_threshold  # a lone weak center far from every garment, no landmarks
    after = _doubt(replace(heads, hm=weak))
    assert before.centre < 0.2
    # with center rescoring its final score is α × 0.1: still near the threshold in logit terms
    assert after.centre > 0.5 and after.score > before.score


def test_flip_disagreement_counts_only_when_given():
    _, heads = _scene(1)
    same = _doubt(heads, flipped=heads)
    assert same.flip == 0.0 and same.score == pytest.approx(_doubt(heads).score)
    _, other = _scene(1, noise=0.3)
    disagree = _doubt(heads, flipped=other)
    assert 0.0 < disagree.flip <= 1.0 and disagree.score > same.score
    _, small = _scene(1)
    with pytest.raises(DecodeError):
        _doubt(heads, flipped=replace(small, hm=small.hm[:, :32]))


def test_an_empty_image_is_certain():
    _, heads = _scene(0)
    empty = replace(heads, hm=np.zeros_like(heads.hm), hm_hp=np.zeros_like(heads.hm_hp))
    doubt = _doubt(empty)
    assert doubt.score == 0.0 and doubt.landmarks == 0.0


def test_uncertainty_orders_images_by_degradation_on_a_set():
    """Over 12 scenes at three degradation levels, every clean scene ranks below every heavily degraded one."""
    levels = {0.0: [], 0.1: [], 0.4: []}
    for seed in range(12):
        for noise, scores in levels.items():
            scores.append(_doubt(_scene(100 + seed, noise=noise, regression_noise=2 * noise)[1]).score)
    assert max(levels[0.0]) < min(levels[0.4])
    assert np.mean(levels[0.0]) < np.mean(levels[0.1]) < np.mean(levels[0.4])


def test_uncertainty_of_real_heads(demo_model_heads):
    """The bundled model on the demo images (and their mirrors): scores in [0, 1], flip part measured."""
    from deepmark.core.inference.detector import flip_heads

    for heads, mirrored in demo_model_heads:
        flipped = flip_heads(mirrored, GROUPING.group_flip)
        doubt = image_uncertainty(heads, PARAMS, TAXONOMY, GROUPING, flipped=flipped)
        for value in (doubt.score, doubt.centre, doubt.landmarks, doubt.flip):
            assert 0.0 <= value <= 1.0
        assert doubt.score == pytest.approx(1 - math.exp(-doubt.expected_edits / EDITS_SCALE))
        # disagreeing with the mirror image only adds doubt
        assert doubt.expected_edits >= image_uncertainty(heads, PARAMS, TAXONOMY, GROUPING).expected_edits


@pytest.fixture(scope="module")
def demo_model_heads():
    from deepmark.core.imaging.read import read_image
    from deepmark.core.inference.detector import Detector
    from deepmark.core.studio.display import demo_folder

    detector = Detector(threads=1)
    images = [read_image(p) for p in sorted((demo_folder() / "image").glob("*.jpg"))[:4]]
    return [(detector.heads(im), detector.heads(np.ascontiguousarray(im[:, ::-1]))) for im in images]


# ---------------------------------------------------------------------------------------------
# Likely label mistakes


def _detection_of(item: Item, score: float = 0.9) -> Detection:
    n = len(item.landmarks)
    return Detection(item.category_id, score, score, item.box.copy(),
                     np.column_stack([item.landmarks[:, :2], np.full(n, 0.8)]), np.ones(n, bool))


def test_keypoint_similarity_is_cocos_term():
    label = np.array([[0.0, 0.0], [10.0, 0.0]])
    predicted = np.array([[0.0, 0.0], [13.0, 4.0]])
    sigmas = np.array([0.05, 0.1])
    ks = keypoint_similarity(label, predicted, sigmas, area=400.0)
    assert ks[0] == 1.0
    assert ks[1] == pytest.approx(math.exp(-25 / (2 * 400 * 0.2**2)))


def _moved(item: Item, rng: np.random.Generator) -> tuple[Item, str]:
    labelled = np.flatnonzero(item.landmarks[:, 2] > 0)
    i = int(rng.choice(labelled))
    size = np.hypot(*(item.box[2:] - item.box[:2]))
    angle = rng.uniform(0, 2 * np.pi)
    landmarks = item.landmarks.copy()
    landmarks[i, :2] += 0.2 * size * np.array([np.cos(angle), np.sin(angle)])
    return replace(item, landmarks=landmarks), "moved"


def _swapped(item: Item, rng: np.random.Generator) -> tuple[Item, str] | None:
    category = TAXONOMY.category(item.category_id)
    pairs = category.flip_pairs[(item.landmarks[category.flip_pairs, 2] > 0).all(1)]
    # a pair of nearly coincident points swapped is not a mistake anyone could see
    far = pairs[np.hypot(*(item.landmarks[pairs[:, 0], :2] - item.landmarks[pairs[:, 1], :2]).T)
                > 0.1 * np.hypot(*(item.box[2:] - item.box[:2]))]
    if len(far) == 0:
        return None
    i, j = far[rng.integers(len(far))]
    landmarks = item.landmarks.copy()
    landmarks[[i, j], :2] = landmarks[[j, i], :2]
    return replace(item, landmarks=landmarks), "swapped"


def _recategorised(item: Item, rng: np.random.Generator) -> tuple[Item, str]:
    other = int(rng.choice([c for c in TAXONOMY.category_ids if c != item.category_id]))
    # as the app re-labels an item without a matching prediction: the new category's template over the box
    return Item(other, item.box.copy(), template_landmarks(TAXONOMY.category(other), item.box)), "category"


def _simulated_review_set(count: int, error_rate: float, seed: int = 0):
    """``count`` simulated images: per image the labels (some with an injected error), the model's
    detections from degraded heads, and which labels were altered and how."""
    rng = np.random.default_rng(seed)
    low = replace(PARAMS, score_threshold=0.05)
    images = []
    for _ in range(count):
        truth = random_scene(rng, TAXONOMY, SIZE)
        heads = simulated_heads(truth, SIZE, TAXONOMY, GROUPING, rng, noise=0.05, regression_noise=1.5)
        labels, kinds = [], []
        for item in truth:
            kind = None
            if rng.random() < error_rate:
                altered = [_moved, _swapped, _recategorised][int(rng.integers(3))](item, rng)
                if altered is not None:
                    item, kind = altered
            labels.append(item)
            kinds.append(kind)
        images.append((labels, kinds, decode_detections(heads, low, TAXONOMY, GROUPING)))
    return images


@pytest.fixture(scope="module")
def review_set():
    return _simulated_review_set(80, 0.15)


def test_likely_mistakes_put_injected_errors_first(review_set):
    """Injected errors (moved landmark, swapped flip pair, wrong category) at 15 % of ~240 simulated items:
    ≥ 80 % of them in the top N = 2 × injected; measured: all of them, and the top n_injected ≥ 90 %
    precise."""
    scored = []
    for labels, kinds, detections in review_set:
        for doubt, kind in zip(label_mistakes(labels, detections, TAXONOMY), kinds, strict=True):
            scored.append((doubt.score, kind))
    scored.sort(key=lambda s: -s[0])
    injected = sum(kind is not None for _, kind in scored)
    assert injected >= 20
    recall_2n = sum(kind is not None for _, kind in scored[: 2 * injected]) / injected
    precision_n = sum(kind is not None for _, kind in scored[:injected]) / injected
    assert recall_2n >= 0.8 and precision_n >= 0.8, (recall_2n, precision_n)


def test_each_kind_of_mistake_is_named(review_set):
    named = {"moved": 0, "swapped": 0, "category": 0}
    counts = dict.fromkeys(named, 0)
    for labels, kinds, detections in review_set:
        for doubt, kind in zip(label_mistakes(labels, detections, TAXONOMY), kinds, strict=True):
            if kind is None:
                continue
            counts[kind] += 1
            if kind == "moved" and doubt.moved:
                named[kind] += 1
            elif kind == "swapped" and doubt.swapped:
                named[kind] += 1
            elif kind == "category" and doubt.predicted_category is not None:
                named[kind] += 1
            assert doubt.reasons
    for kind in named:
        assert counts[kind] >= 5 and named[kind] >= 0.8 * counts[kind], (named, counts)


def test_a_clean_label_with_its_own_prediction_is_not_doubted():
    items, _ = _scene(7)
    doubts = label_mistakes(items, [_detection_of(it) for it in items], TAXONOMY)
    assert [d.index for d in doubts] == list(range(len(items)))
    for doubt in doubts:
        assert doubt.score == pytest.approx(0.0, abs=1e-12) and doubt.oks == pytest.approx(1.0)
        assert doubt.reasons == () and doubt.moved == () and doubt.swapped == ()


def test_a_mirrored_label_still_finds_its_prediction_and_names_the_pairs():
    items, _ = _scene(9, noise=0.0)
    item = max(items, key=lambda it: len(TAXONOMY.category(it.category_id).flip_pairs))
    category = TAXONOMY.category(item.category_id)
    mirrored = replace(item, landmarks=item.landmarks[category.flip_permutation])
    (doubt,) = label_mistakes([mirrored], [_detection_of(item)], TAXONOMY)
    assert doubt.detection == 0 and doubt.score > 0.5
    assert len(doubt.swapped) >= 1 and any("swapped" in r for r in doubt.reasons)


def test_no_prediction_and_no_landmarks():
    items, _ = _scene(3)
    item = items[0]
    (alone,) = label_mistakes([item], [], TAXONOMY)
    assert alone.score == NO_PREDICTION_DOUBT and alone.detection is None and math.isnan(alone.oks)
    assert alone.reasons == ("no prediction matches this box",)
    unlabelled = replace(item, landmarks=np.zeros_like(item.landmarks))
    (doubt,) = label_mistakes([unlabelled], [_detection_of(item)], TAXONOMY)
    assert doubt.score == 0.0 and math.isnan(doubt.oks)


def test_a_weak_rival_category_is_less_doubtful_than_a_strong_one():
    items, _ = _scene(5)
    item = items[0]
    other = 1 if item.category_id != 1 else 2
    rival = Detection(other, 0.9, 0.9, item.box.copy(), np.zeros((TAXONOMY.category(other).num_landmarks, 3)),
                      np.zeros(TAXONOMY.category(other).num_landmarks, bool))
    strong = label_mistakes([item], [replace(_detection_of(item), score=0.2), rival], TAXONOMY)[0]
    weak = label_mistakes([item], [_detection_of(item), replace(rival, score=0.3)], TAXONOMY)[0]
    assert strong.predicted_category == other and strong.score == pytest.approx(0.9 / (0.9 + 0.2))  # its share
    assert weak.predicted_category is None and weak.score < 0.1


def test_rival_share():
    assert rival_share(0.3, 0.0) == pytest.approx(0.3 / 0.35)  # the labelled category unseen: below 0.05
    assert rival_share(0.9, 0.6) == pytest.approx(0.6)
    assert rival_share(0.5, 0.5) == 0.0 and rival_share(0.2, 0.7) == 0.0
    assert rival_share(0.3, 0.0) > rival_share(0.9, 0.6)


def test_one_landmark_off_a_fitting_garment_is_a_mistake_not_the_models_error():
    """The same label landmark 25 px from the model's: a likely mistake where every other landmark agrees
    with the model, hardly one where the model is off everywhere (then the model is the one to doubt)."""
    items, _ = _scene(6, noise=0.0, hidden_fraction=0.0)
    item = max(items, key=lambda it: (it.box[2] - it.box[0]) * (it.box[3] - it.box[1]))
    label = item.landmarks.copy()
    label[0, 0] += 25.0
    labelled = replace(item, landmarks=label)
    agrees = _detection_of(item)
    off = _detection_of(item)
    rng = np.random.default_rng(0)
    off.landmarks[1:, :2] += rng.choice([-1.0, 1.0], (len(label) - 1, 2)) * 12.0
    (fits,) = label_mistakes([labelled], [agrees], TAXONOMY)
    (model_off,) = label_mistakes([labelled], [off], TAXONOMY)
    assert 0 in fits.moved and fits.score > 0.6
    assert fits.score > model_off.score + 0.2


@pytest.mark.parametrize("seed", range(4))
def test_more_doubtful_garments_mean_more_expected_edits(seed):
    """The score adds up over garments: a scene ranks above the same scene with only one of its garments."""
    rng = np.random.default_rng(seed)
    items = random_scene(rng, TAXONOMY, SIZE, num_items=3)
    one = simulated_heads(items[:1], SIZE, TAXONOMY, GROUPING, np.random.default_rng(1), 0.1, 1.0)
    three = simulated_heads(items, SIZE, TAXONOMY, GROUPING, np.random.default_rng(1), 0.1, 1.0)
    assert _doubt(three).expected_edits > _doubt(one).expected_edits
    assert _doubt(three).score > _doubt(one).score
