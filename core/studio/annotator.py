"""A simulated annotator: the edits a person makes to bring a model's predictions to the ground truth, with
and without the heatmap assists, and the labels they would store.

Pure functions over items, detections and raw heads (no store, no Qt); ``docs/benchmarks.md`` ("Simulated
annotator (issue 14)") states the edit model and its numbers. Units: image pixels; landmarks (L, 3) x, y, v.

The edit model, per image (``correct_image``):

* Garments are matched to detections greedily (same category first, then box IoU, IoU ≥ ``MATCH_IOU``).
* A detection no garment matches: deleted (1 edit).
* A garment no detection matches: a box drawn (1 edit, lands on the true box with ``drag_noise``) and its
  category picked (1 edit); its landmarks start as the category template over that box, or with the
  *prompted* assist as ``prompted_landmarks`` of the heads for that box.
* A matched detection of another category: its category changed (1 edit); its landmarks become what the app
  gives a re-categorised item (``derive_landmarks``), or with *prompted* those prompted by its box. A
  matched box with IoU < ``BOX_IOU``: re-drawn (1 edit).
* Each labelled landmark out of tolerance (KS < ``TOLERANCE_KS`` with DeepFashion2's σ and the true box's
  area) is dragged, those a heatmap peak placed first, each worst first (1 edit per drag). A drag lands at
  the true position plus Gaussian noise (``drag_noise`` px per axis); one that lands out of tolerance is
  dragged again (another edit). With *snap*, a drag lands on the nearest group-heatmap peak within
  ``SNAP_RADIUS`` of where it was dropped when that peak is within tolerance (the annotator sees the peak;
  otherwise they let go of the modifier). With *re-fit*, after each drag the landmarks neither dragged nor
  confident (no heatmap peak) are re-placed by ``refit_to_template`` on the dragged and confident ones.
* Each landmark whose visibility differs from the truth: one key (V, O or X). A landmark the truth marks
  not present (v = 0) needs only that key.

The noise of each landmark's drags comes from its own generator (seed, image, garment, landmark), so every
assist mode sees the same hand: an assist changes a count only through what it does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from deepmark.core.centernet.assist import prompted_landmarks, snap_to_peak
from deepmark.core.domain.structures import Detection, Item, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import Category, Grouping, Taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.studio.templates import box_ious, derive_landmarks, refit_to_template, template_landmarks

# A landmark is within tolerance at this per-landmark keypoint similarity (OKS's term, DeepFashion2's σ).
TOLERANCE_KS = 0.9
# A detection stands for a garment at this box IoU (the COCO match) ...
MATCH_IOU = 0.5
# ... and its box needs re-drawing below this one (COCO's strict level).
BOX_IOU = 0.75
# Where a hand drag lands: the aimed point plus Gaussian noise of this many image pixels per axis, 2 px RMS
# distance. Images of 320² are shown at about 2–3× in the canvas, so that is 4–6 screen pixels: careful
# pointing, not a quick flick (an assumption: the benchmark also reports 1 and 3 px).
DRAG_NOISE = 2.0 / math.sqrt(2.0)
# Snap looks for peaks this far (image pixels) from where the drag is dropped: 2 map pixels at stride 4.
SNAP_RADIUS = 8.0
# A drag that keeps missing is given up on after this many tries (the annotator zooms in: it then lands).
MAX_TRIES = 20


@dataclass(frozen=True)
class Assists:
    """Which assists the simulated annotator uses: ``prompted`` landmarks for a drawn box, ``snap`` to a
    heatmap peak while dragging, ``refit`` the template after each drag."""

    prompted: bool = False
    snap: bool = False
    refit: bool = False

    @property
    def name(self) -> str:
        on = [f.name for f in fields(self) if getattr(self, f.name)]
        return " + ".join(on) if on else "plain"


PLAIN = Assists()
ALL_ASSISTS = Assists(True, True, True)
# The modes the benchmark reports: plain, each assist alone, all together.
MODES = (PLAIN, Assists(prompted=True), Assists(snap=True), Assists(refit=True), ALL_ASSISTS)


@dataclass(frozen=True)
class EditCount:
    """Edits of one kind each, summed over garments or images. ``garments``: the true garments they bring
    to tolerance (the denominator of edits per garment)."""

    drags: int = 0
    visibility: int = 0
    category: int = 0
    boxes: int = 0
    deletes: int = 0
    garments: int = 0

    @property
    def total(self) -> int:
        return self.drags + self.visibility + self.category + self.boxes + self.deletes

    def __add__(self, other: EditCount) -> EditCount:
        return EditCount(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True)
class Correction:
    """One image corrected: ``items`` what the annotator stores (one per true garment, in its order: its
    category and visibility, landmarks within tolerance, v = 0 landmarks as 0, 0, 0) and ``edits``."""

    items: list[Item]
    edits: EditCount


def tolerance_radius(item: Item, category: Category, ks: float = TOLERANCE_KS) -> np.ndarray:
    """(L,) the distance in pixels at which a landmark of ``item`` falls to keypoint similarity ``ks``:
    KS = exp(−d² / (2 · area · (2σ)²)) with the item's box area, so d = 2σ · √area · √(2 ln(1/ks))."""
    box = np.asarray(item.box, np.float64)
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-9)
    return 2.0 * np.asarray(category.oks_sigmas, np.float64) * math.sqrt(area) * math.sqrt(2.0 * math.log(1.0 / ks))


def match_garments(items: Sequence[Item], detections: Sequence[Detection],
                   min_iou: float = MATCH_IOU) -> list[int | None]:
    """For each item the index of the detection standing for it (None: missed). Greedy, one detection per
    item: pairs with box IoU ≥ ``min_iou`` taken same category first, then by IoU, highest first."""
    if not items or not detections:
        return [None] * len(items)
    boxes = np.stack([np.asarray(d.box, np.float64) for d in detections])
    ious = np.stack([box_ious(item.box, boxes) for item in items])  # (I, D)
    same = np.array([[d.category_id == item.category_id for d in detections] for item in items])
    i, d = np.nonzero(ious >= min_iou)
    order = np.lexsort((-ious[i, d], ~same[i, d]))
    out: list[int | None] = [None] * len(items)
    used = np.zeros(len(detections), bool)
    for k in order:
        if out[i[k]] is None and not used[d[k]]:
            out[i[k]], used[d[k]] = int(d[k]), True
    return out


def landmark_rng(seed: int, image: int, garment: int, landmark: int) -> np.random.Generator:
    """The generator of one landmark's drags (``landmark`` −1: the garment's box): the same hand for every
    assist mode."""
    return np.random.default_rng([int(seed), int(image), int(garment), int(landmark) + 1])


def drag(target: np.ndarray, radius: float, rng: np.random.Generator, noise: float = DRAG_NOISE,
         snap=None) -> tuple[np.ndarray, int]:
    """Drag one landmark to ``target`` (2,): the position it ends at (within ``radius`` px) and the drags it
    took. Each drag lands at target + N(0, ``noise``²) per axis; ``snap(point)`` → (position, score) or None
    moves it onto a peak when that peak is within ``radius`` of the target. After ``MAX_TRIES`` it lands."""
    for tries in range(1, MAX_TRIES + 1):
        dropped = target + rng.normal(0.0, noise, 2) if noise > 0 else target.copy()
        snapped = snap(dropped) if snap is not None else None
        if snapped is not None and np.hypot(*(snapped[0] - target)) <= radius:
            return np.asarray(snapped[0], np.float64), tries
        if np.hypot(*(dropped - target)) <= radius:
            return dropped, tries
    return target.copy(), MAX_TRIES


def correct_landmarks(category: Category, start: np.ndarray, confident: np.ndarray, truth: np.ndarray,
                      radius: np.ndarray, rngs: Sequence[np.random.Generator], assists: Assists,
                      noise: float = DRAG_NOISE, snap=None) -> tuple[np.ndarray, int]:
    """Drag one garment's landmarks into tolerance: (L, 2) final positions and the drags made.

    ``start`` (L, 2) where they are; ``confident`` (L,) bool, placed by a heatmap peak; ``truth`` (L, 3)
    true x, y, v (v = 0 landmarks are never dragged); ``radius`` (L,) tolerance in pixels; ``rngs`` one
    generator per landmark; ``snap(landmark, point)`` → (position, score) or None (with ``assists.snap``).
    Confident landmarks are dragged first, then the others, each worst (distance / radius) first; with
    ``assists.refit`` the landmarks neither dragged nor confident are re-placed on the template after every
    drag, so the anchors it fits to are right before it places the rest."""
    pos = np.array(start, np.float64)
    labelled = truth[:, 2] > 0
    dragged = np.zeros(len(pos), bool)
    drags = 0
    while True:
        excess = np.hypot(*(pos - truth[:, :2]).T) / np.maximum(radius, 1e-9)
        bad = labelled & ~dragged & (excess > 1.0)
        if not bad.any():
            return pos, drags
        # anchors first (a peak placed them; re-fit leans on them), each group worst first
        candidates = np.flatnonzero(bad)
        i = int(candidates[np.lexsort((-excess[candidates], ~confident[candidates]))[0]])
        one = (lambda p, i=i: snap(i, p)) if assists.snap and snap is not None else None
        pos[i], tries = drag(truth[i, :2], float(radius[i]), rngs[i], noise, one)
        drags += tries
        dragged[i] = True
        if assists.refit:
            pos = refit_to_template(category, pos, dragged | confident)


def _visibility_edits(stored_v: np.ndarray, truth: np.ndarray) -> int:
    """Keys to set each landmark's visibility to the truth's (one key per landmark that differs)."""
    return int(np.sum(np.asarray(stored_v) != truth[:, 2]))


def _stored(category_id: int, box: np.ndarray, positions: np.ndarray, truth: np.ndarray) -> Item:
    """The item the annotator stores: positions with the truth's visibility, v = 0 landmarks as 0, 0, 0."""
    landmarks = np.column_stack([positions, truth[:, 2]])
    landmarks[truth[:, 2] <= 0] = 0.0
    return Item(int(category_id), np.asarray(box, np.float64).copy(), landmarks)


def correct_image(
    items: Sequence[Item],
    detections: Sequence[Detection],
    taxonomy: Taxonomy,
    assists: Assists = PLAIN,
    heads: RawHeads | None = None,
    params: PostprocessParams | None = None,
    grouping: Grouping | None = None,
    seed: int = 0,
    image: int = 0,
    noise: float = DRAG_NOISE,
) -> Correction:
    """Correct one image's ``detections`` (as the app shows them) into its true ``items`` by the edit model of
    this module, with ``assists`` (which need ``heads``, ``params`` and ``grouping``; without heads no assist
    but re-fit can act). ``seed`` and ``image`` choose the hand's noise; ``noise`` 0 makes every drag land."""
    if (assists.prompted or assists.snap) and (heads is None or params is None or grouping is None):
        raise DeepMarkError("the prompted and snap assists need the image's heads, params and grouping")
    match = match_garments(items, detections)
    edits = EditCount(deletes=len(detections) - sum(m is not None for m in match), garments=len(items))
    stored = []
    for g, (item, m) in enumerate(zip(items, match, strict=True)):
        category = taxonomy.category(item.category_id)
        truth = np.asarray(item.landmarks, np.float64)
        start, confident, stored_v, box, fixed = _starting_point(item, category, detections, m, assists, heads,
                                                                 params, grouping, landmark_rng(seed, image, g, -1),
                                                                 noise, taxonomy)
        rngs = [landmark_rng(seed, image, g, i) for i in range(len(truth))]
        snap = _snapper(heads, grouping.category_groups[taxonomy.category_index(category.id)]) if assists.snap else None
        final, drags = correct_landmarks(category, start, confident, truth, tolerance_radius(item, category), rngs,
                                         assists, noise, snap)
        edits = edits + fixed + EditCount(drags=drags, visibility=_visibility_edits(stored_v, truth))
        stored.append(_stored(category.id, box, final, truth))
    return Correction(stored, edits)


def _snapper(heads: RawHeads, groups: np.ndarray):
    """snap(landmark, point) → (position, score) or None: ``snap_to_peak`` in that landmark's group
    (``groups`` (L,)) within ``SNAP_RADIUS``."""

    def snap(landmark: int, point: np.ndarray):
        return snap_to_peak(heads, int(groups[landmark]), point, SNAP_RADIUS)

    return snap


def _drawn_box(box: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """A box drawn by hand over ``box``: each corner off by the drag noise, corners kept ordered."""
    drawn = np.asarray(box, np.float64) + (rng.normal(0.0, noise, 4) if noise > 0 else 0.0)
    return np.concatenate([np.minimum(drawn[:2], drawn[2:]), np.maximum(drawn[:2], drawn[2:] + 1e-6)])


def _starting_point(item, category, detections, m, assists, heads, params, grouping, rng, noise, taxonomy):
    """Where one garment's correction starts: landmark positions (L, 2), confident (L,), stored visibility
    (L,), the box, and the box / category edits made to get there."""
    if m is None:  # missed: draw the box, pick the category, then its landmarks
        box = _drawn_box(item.box, rng, noise)
        if assists.prompted:
            return (*_prompted(heads, box, category, params, taxonomy, grouping), box, EditCount(boxes=1, category=1))
        start = template_landmarks(category, box)
        return start[:, :2], np.zeros(len(start), bool), start[:, 2], box, EditCount(boxes=1, category=1)
    detection = detections[m]
    box = np.asarray(detection.box, np.float64)
    fixed = EditCount()
    if box_ious(item.box, box[None])[0] < BOX_IOU:
        box = _drawn_box(item.box, rng, noise)
        fixed = fixed + EditCount(boxes=1)
    if detection.category_id != category.id:
        fixed = fixed + EditCount(category=1)
        if assists.prompted:  # a category picked for a box: the same prompt
            return (*_prompted(heads, box, category, params, taxonomy, grouping), box, fixed)
        landmarks, source = derive_landmarks(category, box, detections)
        confident = (landmarks[:, 2] >= 2) if source == "prediction" else np.zeros(len(landmarks), bool)
        return landmarks[:, :2], confident, landmarks[:, 2], box, fixed
    landmarks = np.asarray(detection.landmarks, np.float64)
    confident = np.asarray(detection.refined, bool) & (landmarks[:, 2] > 0)
    # what accepting a prediction stores (``prediction_landmarks``): visible where a peak placed it
    return landmarks[:, :2], confident, np.where(landmarks[:, 2] > 0, 2.0, 1.0), box, fixed


def _prompted(heads, box, category, params, taxonomy, grouping):
    """Box-prompted landmarks: positions (L, 2), confident (L,), and the visibility accepting them stores
    (visible where a peak placed them, else occluded, as for a prediction)."""
    out = prompted_landmarks(heads, box, category.id, params, taxonomy, grouping)
    return out.landmarks[:, :2], out.confident.copy(), np.where(out.confident, 2.0, 1.0)


def simulate_correction(
    predictions: Mapping[int, Sequence[Detection]],
    ground_truth: Mapping[int, Sequence[Item]],
    taxonomy: Taxonomy,
    assists: Assists = PLAIN,
    heads: Mapping[int, RawHeads] | None = None,
    params: PostprocessParams | None = None,
    grouping: Grouping | None = None,
    seed: int = 0,
    noise: float = DRAG_NOISE,
    image_sizes: Mapping[int, tuple[int, int]] | None = None,
) -> dict[int, list[Item]]:
    """What the simulated annotator stores after correcting each image's ``predictions`` (image id →
    detections; an image without predictions starts empty) into its ``ground_truth`` (image id → items):
    image id → items, every true garment with its category and visibility and each landmark within
    tolerance (KS ≥ ``TOLERANCE_KS``) — the predicted position where it already was, else where the hand's
    drag landed. For the retrain loop: the labels a model's own predictions become after review.
    ``heads`` (image id → heads) is needed for the prompted and snap assists; the stored labels meet the
    same tolerance with or without them. ``image_sizes`` (image id → width, height): boxes and positions are
    kept inside the image, as the app keeps what a person draws or drags (a hand-drawn box of a garment at the
    border would otherwise stick out and the store would refuse it)."""
    out = {}
    for image_id, items in ground_truth.items():
        h = heads.get(image_id) if heads is not None else None
        stored = correct_image(items, predictions.get(image_id, ()), taxonomy, assists, h, params, grouping,
                               seed, image_id, noise).items
        size = image_sizes.get(image_id) if image_sizes is not None else None
        out[image_id] = stored if size is None else [inside_image(item, size) for item in stored]
    return out


def inside_image(item: Item, size: tuple[int, int]) -> Item:
    """``item`` with its box and labelled landmark positions moved into a ``size`` (width, height) image."""
    w, h = size
    landmarks = item.landmarks.copy()
    labelled = landmarks[:, 2] > 0
    landmarks[labelled, 0] = np.clip(landmarks[labelled, 0], 0.0, w)
    landmarks[labelled, 1] = np.clip(landmarks[labelled, 1], 0.0, h)
    return replace(item, box=np.clip(item.box, 0.0, [w, h, w, h]), landmarks=landmarks)


# ---------------------------------------------------------------------------------------------
# How well a review order and the likely-mistakes view find the work


def found_share(edits, order, fraction: float = 0.2) -> float:
    """The share of all ``edits`` (N,) ≥ 0 (per image) in the first ``fraction`` of images (rounded, at least
    one) when reviewed in ``order`` (N,) image indices; 0 when there are no edits."""
    edits = np.asarray(edits, np.float64)
    top = max(1, round(fraction * len(edits)))
    total = float(edits.sum())
    return float(edits[np.asarray(order)[:top]].sum() / total) if total > 0 else 0.0


def random_share(edits, fraction: float = 0.2, orders: int = 1000, seed: int = 0) -> float:
    """``found_share`` averaged over ``orders`` random orders (its expectation is the share of images looked
    at, top / N)."""
    rng = np.random.default_rng(seed)
    n = len(edits)
    return float(np.mean([found_share(edits, rng.permutation(n), fraction) for _ in range(orders)]))


def order_gain(edits, order, fraction: float = 0.2) -> float:
    """How much of the perfect order's gain over a random order ``order`` achieves: (share − random) /
    (perfect − random), with the random order's expected share top / N; 1 for the perfect order (most edits
    first), 0 for a random one's expectation, nan when the perfect order gains nothing."""
    edits = np.asarray(edits, np.float64)
    top = max(1, round(fraction * len(edits)))
    chance = top / len(edits)
    perfect = found_share(edits, np.argsort(-edits, kind="stable"), fraction)
    if perfect - chance <= 1e-12:
        return math.nan
    return (found_share(edits, order, fraction) - chance) / (perfect - chance)


def top_n_recall(scores, injected, n: int | None = None) -> float:
    """The share of ``injected`` (N,) bool items among the ``n`` highest ``scores`` (N,) (default twice the
    number injected; ties broken by position); nan when none was injected."""
    injected = np.asarray(injected, bool)
    count = int(injected.sum())
    if count == 0:
        return math.nan
    n = 2 * count if n is None else n
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    return float(injected[order[:n]].sum() / count)


def top_n_precision(scores, injected, n: int | None = None) -> float:
    """The share of the ``n`` highest ``scores`` (N,) that are ``injected`` (N,) bool (default n: the number
    injected); nan when n is 0."""
    injected = np.asarray(injected, bool)
    n = int(injected.sum()) if n is None else n
    if n == 0:
        return math.nan
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    return float(injected[order[:n]].mean())


# The kinds of labelling error ``inject_error`` makes.
ERROR_KINDS = ("moved", "swapped", "category")
# A moved landmark goes this fraction of the garment's box diagonal away; a swapped pair's two landmarks are
# at least this far apart (else exchanging them changes nothing one could see).
MOVE_FRACTION = 0.2
SWAP_MIN_FRACTION = 0.1


def inject_error(item: Item, kind: str, rng: np.random.Generator, taxonomy: Taxonomy) -> Item | None:
    """``item`` with one labelling error of ``kind``: ``"moved"`` one labelled landmark ``MOVE_FRACTION`` ×
    the box diagonal in a random direction; ``"swapped"`` one left/right pair exchanged (both labelled, at
    least ``SWAP_MIN_FRACTION`` × the diagonal apart); ``"category"`` another category, with its template
    over the box (what relabelling in the app gives without a prediction). None when the kind does not apply
    to this item (no such landmark or pair)."""
    landmarks = np.asarray(item.landmarks, np.float64).copy()
    labelled = np.flatnonzero(landmarks[:, 2] > 0)
    box = np.asarray(item.box, np.float64)
    size = float(np.hypot(*(box[2:] - box[:2])))
    if kind == "moved":
        if len(labelled) == 0:
            return None
        angle = rng.uniform(0.0, 2.0 * math.pi)
        landmarks[int(rng.choice(labelled)), :2] += MOVE_FRACTION * size * np.array([math.cos(angle), math.sin(angle)])
        return Item(item.category_id, box.copy(), landmarks)
    if kind == "swapped":
        pairs = taxonomy.category(item.category_id).flip_pairs.reshape(-1, 2)
        pairs = pairs[(landmarks[pairs, 2] > 0).all(1)]
        apart = np.hypot(*(landmarks[pairs[:, 0], :2] - landmarks[pairs[:, 1], :2]).T) > SWAP_MIN_FRACTION * size
        pairs = pairs[apart]
        if len(pairs) == 0:
            return None
        i, j = pairs[rng.integers(len(pairs))]
        landmarks[[i, j], :2] = landmarks[[j, i], :2]
        return Item(item.category_id, box.copy(), landmarks)
    if kind == "category":
        other = int(rng.choice([c for c in taxonomy.category_ids if c != item.category_id]))
        return Item(other, box.copy(), template_landmarks(taxonomy.category(other), box))
    raise DeepMarkError(f"unknown labelling error kind {kind!r}; kinds: {', '.join(ERROR_KINDS)}")


def inject_errors(images: Mapping[int, Sequence[Item]], rate: float, rng: np.random.Generator,
                  taxonomy: Taxonomy) -> tuple[dict[int, list[Item]], dict[int, np.ndarray]]:
    """Each item of ``images`` (image id → items) given an error with probability ``rate``, of a kind drawn
    uniformly among those that apply to it: (image id → items, image id → (N,) bool injected)."""
    out, flags = {}, {}
    for image_id, items in images.items():
        altered, injected = [], []
        for item in items:
            wrong = None
            if rng.random() < rate:
                for kind in rng.permutation(ERROR_KINDS):
                    wrong = inject_error(item, str(kind), rng, taxonomy)
                    if wrong is not None:
                        break
            altered.append(wrong or item)
            injected.append(wrong is not None)
        out[image_id], flags[image_id] = altered, np.array(injected, bool)
    return out, flags
