"""Placing garments in a scene: a deformed shape at a position in pixels, rasterised to an anti-aliased
coverage and a mask, under the occlusion, truncation and landmark-count constraints of ``SynthConfig``.
Also the fixed-point polygon convention shared with the drawing code (``_fixed``)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deepmark.core.domain.taxonomy import Category
from deepmark.core.synthetic.config import SynthConfig
from deepmark.core.synthetic.shapes import _random_warp, _Shape, _shape, _Warp

_SHIFT = 4  # fractional bits for OpenCV drawing
_ONE = 1 << _SHIFT


@dataclass(eq=False)
class _Placed:
    """A garment placed in the scene (pixel geometry and rasterised masks)."""

    category: Category
    shape: _Shape
    warp: _Warp
    landmarks: np.ndarray  # (L, 2) pixels
    faces: list[np.ndarray]  # dense pixel polygons
    bands: list[np.ndarray]  # dense pixel polylines
    band_px: int
    alpha: np.ndarray  # (H, W) uint8 anti-aliased coverage
    mask: np.ndarray  # (H, W) bool
    area: int  # in-image mask pixels
    full_area: float  # garment area in pixels, in and out of the image
    bounds: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of the drawing, clipped to the image


def _fixed(poly: np.ndarray) -> np.ndarray:
    return np.round(poly * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _polygon_area(poly: np.ndarray) -> float:
    return float(cv2.contourArea(poly.astype(np.float32)))


def _rasterise(faces: list[np.ndarray], bands: list[np.ndarray], band_px: int,
               size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 anti-aliased coverage of the filled faces and the bands."""
    w, h = size
    alpha = np.zeros((h, w), np.uint8)
    for poly in faces:
        cv2.fillPoly(alpha, [_fixed(poly)], 255, cv2.LINE_AA, _SHIFT)
    if bands:
        cv2.polylines(alpha, [_fixed(b) for b in bands], False, 255, band_px, cv2.LINE_AA, _SHIFT)
    return alpha


def _instance(category: Category, shape: _Shape, warp: _Warp, centre: np.ndarray,
              size: tuple[int, int]) -> _Placed:
    warp = _Warp(warp.base, warp.waves, warp.rotation, warp.scale, centre)
    lines = warp.outlines(shape)
    faces, bands = lines[: len(shape.faces)], lines[len(shape.faces) :]
    band_px = max(2, int(round(0.025 * warp.scale)))
    alpha = _rasterise(faces, bands, band_px, size)
    full = sum(_polygon_area(f) for f in faces) + sum(
        band_px * float(np.sum(np.linalg.norm(np.diff(b, axis=0), axis=1))) for b in bands)
    allpts = np.vstack(faces + bands)
    lo = np.floor(allpts.min(axis=0)).astype(int) - band_px - 2
    hi = np.ceil(allpts.max(axis=0)).astype(int) + band_px + 3
    w, h = size
    bounds = (max(0, lo[0]), max(0, lo[1]), min(w, hi[0]), min(h, hi[1]))
    mask = alpha >= 128
    return _Placed(category, shape, warp, warp.landmarks(), faces, bands, band_px, alpha, mask,
                   int(np.count_nonzero(mask)), max(full, 1.0), bounds)


def _inside(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N,) bool: points within the image (pixel centres 0..W-1, 0..H-1)."""
    w, h = size
    return (points[:, 0] >= 0) & (points[:, 0] <= w - 1) & (points[:, 1] >= 0) & (points[:, 1] <= h - 1)


def _place_item(rng: np.random.Generator, category: Category, config: SynthConfig, n_items: int,
                placed: list[_Placed], covers: list[np.ndarray]) -> _Placed | None:
    """Try ``placement_tries`` random placements; the first that satisfies the constraints, or None.

    Hard constraints: enough in-image landmarks and area, and no earlier garment covered beyond
    ``max_covered`` in total. Soft ones, relaxed try by try (garments also shrink a little each try):
    a garment meant to overlap covers at least 3 % of some earlier one (first half of the tries);
    otherwise the most it newly covers of any earlier garment grows from 2 % to ``max_covered``."""
    w, h = config.image_size
    size = (w, h)
    shape = _shape(category)
    lo, hi = config.scale_range
    hi = max(lo, hi * min(1.0, config.crowd_shrink / np.sqrt(n_items)))
    want_overlap = bool(placed) and rng.random() < config.occlusion_prob
    tries = config.placement_tries
    for attempt in range(tries):
        strict = attempt < tries // 2
        limit = 0.02 + (config.max_covered - 0.02) * attempt / max(tries - 1, 1)
        warp = _random_warp(rng, shape, config, rng.uniform(lo, hi) * min(w, h) * 0.95**attempt)
        pts = warp.landmarks()
        pmin, pmax = pts.min(axis=0), pts.max(axis=0)
        margin = np.zeros(2)
        if rng.random() < config.truncation_prob:
            margin = 0.35 * (pmax - pmin)
        low, high = -pmin - margin, np.array([w - 1, h - 1]) - pmax + margin
        centre = rng.uniform(np.minimum(low, high), np.maximum(low, high))
        if want_overlap:
            other = placed[int(rng.integers(len(placed)))]
            lm = other.landmarks
            k = int(rng.integers(len(lm)))
            target = lm[k] + rng.uniform(0, 1) * (lm.mean(axis=0) - lm[k])
            centre = np.clip(target - (pmin + pmax) / 2 + rng.normal(0, 0.25, 2) * (pmax - pmin),
                             np.minimum(low, high), np.maximum(low, high))
        if _inside(pts + centre, size).sum() < min(config.min_labelled, len(pts)):
            continue
        cand = _instance(category, shape, warp, centre, size)
        if cand.area < 64 or cand.area < (1 - config.max_truncated) * cand.full_area:
            continue
        fractions = []
        for other, cover in zip(placed, covers, strict=True):
            other_area = max(other.area, 1)
            newly = int(np.count_nonzero(other.mask & cand.mask))
            total = int(np.count_nonzero(other.mask & (cover | cand.mask)))
            fractions.append((newly / other_area, total / other_area))
        if any(total > config.max_covered for _, total in fractions):
            continue
        most = max((f for f, _ in fractions), default=0.0)
        if want_overlap and strict and most < 0.03:
            continue
        if not want_overlap and most > limit:
            continue
        return cand
    return None
