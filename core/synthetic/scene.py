"""One synthetic scene (``render_scene``): garments placed back to front, painted over a background, and
labelled the DeepFashion2 way (``SynthItem``: box, landmarks with visibility, segmentation, attributes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from deepmark.core.domain.structures import Item
from deepmark.core.domain.taxonomy import Taxonomy, load_taxonomy
from deepmark.core.synthetic.config import SynthConfig
from deepmark.core.synthetic.paint import _background, _clutter, _draw_garment, _finish
from deepmark.core.synthetic.placement import _inside, _place_item, _Placed


@dataclass(eq=False)
class SynthItem:
    """One rendered garment with its DeepFashion2 attributes.

    ``item``: category, box (4,) xyxy and landmarks (L, 3) x, y, v in pixels (v = 0 stored as 0, 0, 0).
    ``segmentation``: polygons of the visible region, each a flat [x0, y0, x1, y1, ...] list (>= 3
    points). ``occlusion`` 1 slight / 2 medium / 3 heavy (fraction of in-image area covered by later
    garments: < 0.1, < 0.3, more); ``scale`` 1 small / 2 modest / 3 large (box area over image area:
    < 0.1, < 0.4, more); ``zoom_in`` 1 none / 2 medium / 3 large (fraction of the garment outside the
    image: < 0.05, < 0.25, more); ``viewpoint`` 2 (frontal); ``style`` 0. ``mask`` (H, W) bool: the
    garment's in-image pixels, occluded ones included; ``points`` (L, 2): every landmark's position,
    also those outside the image (neither is written to files).
    """

    item: Item
    segmentation: list[list[float]]
    occlusion: int = 1
    scale: int = 2
    zoom_in: int = 1
    viewpoint: int = 2
    style: int = 0
    mask: np.ndarray | None = field(default=None, repr=False)
    points: np.ndarray | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------------------
# Labels


def _level(value: float, thresholds: tuple[float, float]) -> int:
    return 1 if value < thresholds[0] else 2 if value < thresholds[1] else 3


def _segmentation(visible: np.ndarray) -> list[list[float]]:
    """Outer contours of a bool mask as flat [x, y, ...] polygons with >= 3 points."""
    contours, _ = cv2.findContours(visible.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in sorted(contours, key=cv2.contourArea, reverse=True):
        if cv2.contourArea(c) < 4:
            continue
        c = cv2.approxPolyDP(c, 0.8, True)
        if len(c) >= 3:
            polys.append([float(v) for v in c.reshape(-1)])
    return polys


def _label(placed: _Placed, later: np.ndarray, size: tuple[int, int]) -> SynthItem:
    """The DeepFashion2 item for ``placed``, given the union ``later`` (H, W) of garments in front."""
    w, h = size
    pts = np.round(placed.landmarks, 2)
    inside = _inside(pts, size)
    landmarks = np.zeros((len(pts), 3))
    landmarks[inside, :2] = pts[inside]
    landmarks[inside, 2] = 2.0
    ix = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
    iy = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
    landmarks[inside & later[iy, ix], 2] = 1.0
    mask = placed.mask
    xs, ys = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    labelled = landmarks[inside, :2]
    x1 = min(xs[0], labelled[:, 0].min()) if len(labelled) else xs[0]
    y1 = min(ys[0], labelled[:, 1].min()) if len(labelled) else ys[0]
    x2 = max(xs[-1], labelled[:, 0].max()) if len(labelled) else xs[-1]
    y2 = max(ys[-1], labelled[:, 1].max()) if len(labelled) else ys[-1]
    x1, y1 = min(x1, w - 2), min(y1, h - 2)  # a box at least one pixel wide, inside the image
    box = np.round(np.array([x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)], float), 2)
    area = placed.area
    visible = mask & ~later
    polys = _segmentation(visible) or _segmentation(mask)
    covered = 1 - int(np.count_nonzero(visible)) / max(area, 1)
    box_area = (box[2] - box[0]) * (box[3] - box[1])
    return SynthItem(
        item=Item(category_id=placed.category.id, box=box, landmarks=landmarks),
        segmentation=polys,
        occlusion=_level(covered, (0.1, 0.3)),
        scale=_level(box_area / (w * h), (0.1, 0.4)),
        zoom_in=_level(max(0.0, 1 - area / placed.full_area), (0.05, 0.25)),
        mask=mask,
        points=pts,
    )


# ---------------------------------------------------------------------------------------------
# Rendering


def render_scene(
    rng: np.random.Generator, taxonomy: Taxonomy | None = None, config: SynthConfig | None = None
) -> tuple[np.ndarray, list[SynthItem]]:
    """One synthetic scene: image (H, W, 3) uint8 RGB and its garments, back to front.

    Garments are listed in drawing order (later ones are in front). Uses only ``rng``, so a scene is
    reproducible from the generator's state. Returns between 0 and ``max_items`` items (0 only when no
    placement satisfies the constraints, which the defaults make practically impossible).
    """
    taxonomy = taxonomy or load_taxonomy()
    config = config or SynthConfig()
    w, h = config.image_size
    size = (w, h)
    ids = list(config.category_ids) if config.category_ids is not None else list(taxonomy.category_ids)
    categories = [taxonomy.category(i) for i in ids]
    n_items = int(rng.integers(config.min_items, config.max_items + 1))
    placed: list[_Placed] = []
    covers: list[np.ndarray] = []  # per placed item: union of the masks of the items after it
    for _ in range(n_items):
        category = categories[int(rng.integers(len(categories)))]
        cand = _place_item(rng, category, config, n_items, placed, covers)
        if cand is None:
            continue
        for cover in covers:
            cover |= cand.mask
        placed.append(cand)
        covers.append(np.zeros((h, w), bool))
    image = _background(rng, h, w)
    if rng.random() < config.clutter_prob:
        for _ in range(int(rng.integers(1, config.max_clutter + 1)) if config.max_clutter else 0):
            _clutter(rng, image)
        image = cv2.GaussianBlur(image, (0, 0), 0.7)
    for p in placed:
        _draw_garment(rng, image, p)
    image = _finish(rng, image, config.image_noise)
    items = [_label(p, cover, size) for p, cover in zip(placed, covers, strict=True)]
    return image, items
