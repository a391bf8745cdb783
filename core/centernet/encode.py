"""Ground-truth items → CenterNet multi-pose training targets at output stride 4.

Follows CenterNet's ``datasets/sample/multi_pose.py`` with landmarks mapped to group channels:
a Gaussian per object on its category's center heatmap (radius from the box size), the center's
sub-pixel offset and size, per group channel the landmark offset from the integer center, a Gaussian
per landmark on its group heatmap (same radius as the center) and the landmark's sub-pixel offset.
Landmarks with v = 0 or outside the map are masked out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deepmark.core.domain.structures import Affine, Item
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.errors import EncodeError, TaxonomyError

MAX_OBJECTS = 32


@dataclass(frozen=True, eq=False)
class Targets:
    """Training targets for one image with M = max_objects slots and G groups on an H×W map.

    ``hm`` (C, H, W) float32; ``ind`` (M,) int64 flat index y·W + x of each integer center;
    ``reg`` (M, 2) and ``wh`` (M, 2) float32 map pixels; ``reg_mask`` (M,) uint8;
    ``hps`` (M, 2G) float32 landmark offsets from the integer center; ``hps_mask`` (M, 2G) uint8;
    ``hm_hp`` (G, H, W) float32; ``hp_offset`` (M·G, 2) float32; ``hp_ind`` (M·G,) int64;
    ``hp_mask`` (M·G,) uint8 — slot m·G + g is object m's landmark in group g.
    """

    hm: np.ndarray
    ind: np.ndarray
    reg: np.ndarray
    wh: np.ndarray
    reg_mask: np.ndarray
    hps: np.ndarray
    hps_mask: np.ndarray
    hm_hp: np.ndarray
    hp_offset: np.ndarray
    hp_ind: np.ndarray
    hp_mask: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.__dict__)


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's Gaussian radius (map pixels) for a box, kept bit-for-bit with the reference
    implementation (including its known deviation from CornerNet) so trained models match."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: np.ndarray, center_x: int, center_y: int, radius: int) -> None:
    """Max-combine a Gaussian of diameter 2r+1, σ = diameter/6, peak 1, into ``heatmap`` (H, W) in place."""
    diameter = 2 * radius + 1
    sigma = diameter / 6
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma * sigma))
    kernel[kernel < np.finfo(kernel.dtype).eps * kernel.max()] = 0
    h, w = heatmap.shape
    left, right = min(center_x, radius), min(w - center_x, radius + 1)
    top, bottom = min(center_y, radius), min(h - center_y, radius + 1)
    if left + right <= 0 or top + bottom <= 0:
        return
    region = heatmap[center_y - top : center_y + bottom, center_x - left : center_x + right]
    patch = kernel[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(region, patch, out=region)


def validate_item(item: Item, taxonomy: Taxonomy) -> None:
    """Raise TaxonomyError/EncodeError when an item does not fit its category or has a bad box."""
    category = taxonomy.category(item.category_id)
    box = np.asarray(item.box, dtype=np.float64)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise EncodeError(f"category {item.category_id}: box must be 4 finite numbers, got {item.box!r}")
    if box[2] < box[0] or box[3] < box[1]:
        raise EncodeError(f"category {item.category_id}: box {box.tolist()} has negative size")
    lms = np.asarray(item.landmarks)
    if lms.shape != (category.num_landmarks, 3):
        raise TaxonomyError(
            f"category {category.id} ({category.name}) has {category.num_landmarks} landmarks, "
            f"got an array of shape {lms.shape}"
        )
    if not np.isfinite(lms).all() or not np.isin(lms[:, 2], (0, 1, 2)).all():
        raise EncodeError(f"category {category.id}: landmarks must be finite with visibility 0, 1 or 2")


def encode_targets(
    items: list[Item],
    image_to_map: Affine,
    map_size: tuple[int, int],
    taxonomy: Taxonomy,
    grouping: Grouping,
    max_objects: int = MAX_OBJECTS,
) -> Targets:
    """Encode items (image pixels) into targets on an H×W map; ``image_to_map`` maps image → map pixels.

    Items beyond ``max_objects`` raise EncodeError (raise the limit instead of losing labels).
    Boxes are clipped to the map; items whose clipped box is empty are skipped (their slot stays masked).
    """
    height, width = map_size
    num_groups = grouping.num_groups
    if len(items) > max_objects:
        raise EncodeError(f"{len(items)} items exceed max_objects={max_objects}")
    hm = np.zeros((taxonomy.num_classes, height, width), np.float32)
    hm_hp = np.zeros((num_groups, height, width), np.float32)
    ind = np.zeros(max_objects, np.int64)
    reg = np.zeros((max_objects, 2), np.float32)
    wh = np.zeros((max_objects, 2), np.float32)
    reg_mask = np.zeros(max_objects, np.uint8)
    hps = np.zeros((max_objects, 2 * num_groups), np.float32)
    hps_mask = np.zeros((max_objects, 2 * num_groups), np.uint8)
    hp_offset = np.zeros((max_objects * num_groups, 2), np.float32)
    hp_ind = np.zeros(max_objects * num_groups, np.int64)
    hp_mask = np.zeros(max_objects * num_groups, np.uint8)

    for slot, item in enumerate(items):
        validate_item(item, taxonomy)
        corners = image_to_map.apply(np.asarray(item.box, np.float64).reshape(2, 2))
        # Clipped to the map's extent [0, W] (CenterNet clips to W − 1, which shrinks edge boxes).
        x1, x2 = np.clip(np.sort(corners[:, 0]), 0, width)
        y1, y2 = np.clip(np.sort(corners[:, 1]), 0, height)
        box_h, box_w = y2 - y1, x2 - x1
        if box_h <= 0 or box_w <= 0:
            continue
        radius = max(0, int(gaussian_radius(math.ceil(box_h), math.ceil(box_w))))
        center = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
        cx, cy = min(int(center[0]), width - 1), min(int(center[1]), height - 1)
        ind[slot] = cy * width + cx
        reg[slot] = center - (cx, cy)
        wh[slot] = (box_w, box_h)
        category_index = taxonomy.category_index(item.category_id)

        landmarks = np.asarray(item.landmarks, np.float64)
        points = image_to_map.apply(landmarks[:, :2])
        inside = (
            (landmarks[:, 2] > 0) & (points[:, 0] >= 0) & (points[:, 0] < width)
            & (points[:, 1] >= 0) & (points[:, 1] < height)
        )
        groups = grouping.category_groups[category_index][inside]
        pts = points[inside]
        ipts = pts.astype(np.int64)  # non-negative, so truncation is floor
        hps[slot, 2 * groups] = pts[:, 0] - cx
        hps[slot, 2 * groups + 1] = pts[:, 1] - cy
        hps_mask[slot, 2 * groups] = 1
        hps_mask[slot, 2 * groups + 1] = 1
        slots = slot * num_groups + groups
        hp_offset[slots] = pts - ipts
        hp_ind[slots] = ipts[:, 1] * width + ipts[:, 0]
        hp_mask[slots] = 1
        for g, (ix, iy) in zip(groups, ipts, strict=True):
            draw_gaussian(hm_hp[g], int(ix), int(iy), radius)
        # Unlike CenterNet's COCO-person code, an item without labelled landmarks keeps its box loss:
        # DeepFashion2 labels boxes and landmarks independently.
        reg_mask[slot] = 1
        draw_gaussian(hm[category_index], cx, cy, radius)

    return Targets(hm, ind, reg, wh, reg_mask, hps, hps_mask, hm_hp, hp_offset, hp_ind, hp_mask)
