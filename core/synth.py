"""Synthetic DeepFashion2-format datasets: rendered garments with boxes, landmarks and segmentation.

Each garment is its category's canonical landmark template (``Category.template``, x multiplied by
``template_aspect``) put through a random smooth non-rigid deformation (sleeve swing, anisotropic
scale and shear, a few low-frequency displacement waves), scaled, slightly rotated and placed in the
image. Its silhouette is built from the category's skeleton links, which trace the garment contour:
the bounded faces of that planar graph are filled (small faces, like the strip between the back neck
and the front neckline, are drawn darker as the garment's inside), and links that bound no face (sling
straps, the back collar of an open jacket) are drawn as bands. Every landmark is a vertex of that
outline, so landmark ``i`` always sits at the same semantic place of the drawn shape. The contour edges
are densified and bent by the same smooth deformation, so outlines are gently curved.

Garments are drawn back to front over a random textured background with non-garment clutter; each is
filled with a random pattern (solid, stripes, checks, dots, heather, gradient, camouflage, twill) and
shading, with a dark outline and seams and a soft drop shadow. Labels follow DeepFashion2: ``v = 2``
visible, ``v = 1`` covered by a garment drawn later (in front), ``v = 0`` outside the image (stored as
0, 0, 0). Boxes are the tight box of the garment's in-image region (occluded parts included); the
segmentation is the outer contour(s) of its visible (unoccluded, in-image) region. Placements that
would cover more than ``SynthConfig.max_covered`` of an earlier garment are rejected.

Coordinates are image pixels with pixel centres at integer values (OpenCV's drawing convention).
Everything is deterministic for a seed: image ``i`` of a dataset uses only ``default_rng([seed, i])``.
"""

from __future__ import annotations

import colorsys
import json
import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from core.atomic import write_atomically, write_text_atomically
from core.errors import DeepMarkError
from core.structures import Item
from core.taxonomy import Category, Taxonomy, load_taxonomy

_SHIFT = 4  # fractional bits for OpenCV drawing
_ONE = 1 << _SHIFT
_DENSE_STEP = 0.025  # contour sample spacing, in garment heights


class SynthError(DeepMarkError):
    """A synthetic-data configuration or request is invalid."""


@dataclass(frozen=True)
class SynthConfig:
    """How synthetic scenes look.

    ``image_size`` (width, height) in pixels. ``min_items``..``max_items`` garments per image (fewer
    when no valid placement is found). ``scale_range``: a garment's longer side as a fraction of
    min(width, height), before ``crowd_shrink`` scales the upper end by min(1, crowd_shrink / sqrt(n))
    for n garments. ``rotation_deg``: uniform in ±this. ``deformation``: strength of the non-rigid
    deformation (0 = exact template shape; 1 = default, plausible; above 2 starts to look odd).
    ``sleeve_swing_deg``: largest outward sleeve rotation at deformation 1. ``occlusion_prob``: chance
    that a garment is deliberately placed over an earlier one; ``max_covered``: no garment may have more
    than this fraction of its in-image area covered by later ones. ``truncation_prob``: chance that a
    garment may extend past the image border; ``max_truncated``: at most this fraction of its area may
    lie outside. ``min_labelled``: fewest in-image landmarks a garment must keep. ``clutter_prob``:
    chance of drawing 1..``max_clutter`` non-garment shapes on the background. ``category_ids``: the
    categories to draw (None = all), uniformly. ``image_noise``: strength of the final photometric
    degradation (0 = none). ``jpeg_quality`` for written images. ``placement_tries`` per garment.
    """

    image_size: tuple[int, int] = (320, 320)
    min_items: int = 1
    max_items: int = 5
    scale_range: tuple[float, float] = (0.35, 0.9)
    crowd_shrink: float = 1.7
    rotation_deg: float = 15.0
    deformation: float = 1.0
    sleeve_swing_deg: float = 25.0
    occlusion_prob: float = 0.35
    max_covered: float = 0.5
    truncation_prob: float = 0.15
    max_truncated: float = 0.4
    min_labelled: int = 3
    clutter_prob: float = 0.5
    max_clutter: int = 4
    category_ids: tuple[int, ...] | None = None
    image_noise: float = 1.0
    jpeg_quality: int = 90
    placement_tries: int = 12

    def __post_init__(self) -> None:
        w, h = self.image_size
        if not (isinstance(w, int) and isinstance(h, int) and w >= 32 and h >= 32):
            raise SynthError(f"image_size must be two integers >= 32, got {self.image_size!r}")
        if not 1 <= self.min_items <= self.max_items:
            raise SynthError(f"need 1 <= min_items <= max_items, got {self.min_items}, {self.max_items}")
        lo, hi = self.scale_range
        if not 0.02 <= lo <= hi <= 2.0:
            raise SynthError(f"scale_range must satisfy 0.02 <= lo <= hi <= 2, got {self.scale_range!r}")
        for name in ("occlusion_prob", "truncation_prob", "clutter_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SynthError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 < self.max_covered < 1.0:
            raise SynthError(f"max_covered must be in (0, 1), got {self.max_covered!r}")
        if not 0.0 <= self.max_truncated < 1.0:
            raise SynthError(f"max_truncated must be in [0, 1), got {self.max_truncated!r}")
        for name in ("rotation_deg", "deformation", "sleeve_swing_deg", "image_noise", "crowd_shrink"):
            if getattr(self, name) < 0:
                raise SynthError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise SynthError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality!r}")
        if self.min_labelled < 1 or self.placement_tries < 1 or self.max_clutter < 0:
            raise SynthError("min_labelled and placement_tries must be >= 1, max_clutter >= 0")
        if self.category_ids is not None and not self.category_ids:
            raise SynthError("category_ids must be None or a non-empty tuple")


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
# Garment shapes from the taxonomy


@dataclass(frozen=True, eq=False)
class _Shape:
    """A category's drawable structure. ``points`` (L, 2): template in garment units (height 1),
    centred; ``faces``: landmark-index cycles to fill; ``inner``: faces drawn darker; ``bands`` (B, 2):
    links drawn as thick bands; ``sleeves``: (landmark indices, pivot a, pivot b) per sleeve.
    ``samples`` (a, b, t): the dense outline points of all faces then all bands, each the point
    ``(1 - t) * a + t * b`` between landmarks ``a`` and ``b``; ``splits``: where each polyline ends."""

    points: np.ndarray
    faces: tuple[np.ndarray, ...]
    inner: tuple[bool, ...]
    bands: np.ndarray
    sleeves: tuple[tuple[np.ndarray, int, int], ...]
    samples: tuple[np.ndarray, np.ndarray, np.ndarray]
    splits: np.ndarray


def _edge_samples(cycle: np.ndarray, pts: np.ndarray, closed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Landmark pairs and weights of points every ``_DENSE_STEP`` along a closed cycle or an open path.

    A link's sample count depends only on its (undirected) template length, so a link shared by two
    faces is sampled at the same points in both."""
    a = cycle if closed else cycle[:-1]
    b = np.roll(cycle, -1) if closed else cycle[1:]
    counts = np.maximum(1, np.ceil(np.linalg.norm(pts[b] - pts[a], axis=1) / _DENSE_STEP)).astype(int)
    seg = np.repeat(np.arange(len(a)), counts)
    t = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) / np.repeat(counts, counts)
    sa, sb = a[seg], b[seg]
    if not closed:
        sa, sb, t = np.append(sa, cycle[-1]), np.append(sb, cycle[-1]), np.append(t, 0.0)
    return sa, sb, t


def _segments_cross(p1, p2, q1, q2) -> bool:
    """True when segments p1p2 and q1q2 properly intersect (touching at an end does not count)."""

    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def _bounded_faces(points: np.ndarray, edges: list[tuple[int, int]]) -> list[list[int]] | None:
    """The bounded faces of the straight-line graph (``points`` (L, 2) y down), or None if not planar."""
    for i, (a, b) in enumerate(edges):
        for c, d in edges[i + 1 :]:
            if len({a, b, c, d}) == 4 and _segments_cross(points[a], points[b], points[c], points[d]):
                return None
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    order = {}
    for v, nb in neighbours.items():
        angles = [np.arctan2(points[u, 1] - points[v, 1], points[u, 0] - points[v, 0]) for u in nb]
        order[v] = [nb[k] for k in np.argsort(angles, kind="stable")]
    used: set[tuple[int, int]] = set()
    faces = []
    for a in sorted(neighbours):
        for b in order[a]:
            if (a, b) in used:
                continue
            face, (u, v) = [], (a, b)
            while (u, v) not in used:
                used.add((u, v))
                face.append(u)
                nb = order[v]
                u, v = v, nb[(nb.index(u) - 1) % len(nb)]
            pts = points[face]
            area = 0.5 * np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
            if area > 1e-9 and len(set(face)) >= 3:
                faces.append(face)
    return faces


def _sleeves(category: Category) -> tuple[tuple[np.ndarray, int, int], ...]:
    """Sleeve landmarks (names with 'sleeve' or 'cuff') and their shoulder / armpit pivot, per side."""
    names = category.landmark_names
    out = []
    for side in ("L", "R"):
        idx = [i for i, n in enumerate(names) if n.endswith(f" {side}") and ("sleeve" in n or "cuff" in n)]
        pivots = [names.index(f"{p} {side}") for p in ("shoulder", "armpit") if f"{p} {side}" in names]
        if idx and len(pivots) == 2:
            out.append((np.array(idx), pivots[0], pivots[1]))
    return tuple(out)


@lru_cache(maxsize=64)
def _shape(category: Category) -> _Shape:
    """The drawable structure of ``category`` (cached per Category object): faces from its skeleton's
    contour rings, bands from links bounding no face, or the template's convex hull as a fallback."""
    pts = category.template * np.array([category.template_aspect, 1.0])
    pts = pts - (pts.min(axis=0) + pts.max(axis=0)) / 2
    n = len(pts)
    edges = sorted({(min(a, b), max(a, b)) for a, b in category.skeleton.tolist() if a != b})
    faces = _bounded_faces(pts, edges) if edges else None
    covered = set()
    face_edges: set[tuple[int, int]] = set()
    for f in faces or []:
        covered.update(f)
        face_edges.update((min(a, b), max(a, b)) for a, b in zip(f, f[1:] + f[:1], strict=True))
    bands = [e for e in edges if e not in face_edges]
    covered.update(v for e in bands for v in e)
    stray = [m for m in range(n) if m not in covered and not any(
        cv2.pointPolygonTest(pts[f].astype(np.float32), (float(pts[m, 0]), float(pts[m, 1])), False) >= 0
        for f in faces or [])]
    if not faces or stray:
        # no contour rings, or landmarks off the drawn shape: fill the template's convex hull instead
        hull = cv2.convexHull(pts.astype(np.float32), returnPoints=False).ravel()
        faces, bands = [list(hull)], []
    areas = []
    for f in faces:
        p = pts[f]
        areas.append(abs(0.5 * np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1])))
    big = max(areas)
    face_arrays = tuple(np.array(f, dtype=np.int64) for f in faces)
    band_array = np.array(bands, dtype=np.int64).reshape(-1, 2)
    parts = [_edge_samples(f, pts, True) for f in face_arrays] + [_edge_samples(b, pts, False) for b in band_array]
    samples = tuple(np.concatenate([p[k] for p in parts]) for k in range(3))
    return _Shape(
        points=pts,
        faces=face_arrays,
        inner=tuple(a < 0.3 * big for a in areas),
        bands=band_array,
        sleeves=_sleeves(category),
        samples=samples,
        splits=np.cumsum([len(p[2]) for p in parts])[:-1],
    )


# ---------------------------------------------------------------------------------------------
# Deformation and placement geometry


@dataclass(frozen=True, eq=False)
class _Warp:
    """A garment instance's map from template units to pixels (see ``_random_warp``)."""

    base: np.ndarray  # (L, 2) landmarks after sleeve swing and linear part, garment units
    waves: np.ndarray  # (K, 5): fx, fy, phase, ax, ay
    rotation: np.ndarray  # (2, 2)
    scale: float
    centre: np.ndarray  # (2,) pixels

    def field(self, p: np.ndarray) -> np.ndarray:
        """(N, 2) → (N, 2) smooth displacement (garment units)."""
        if not len(self.waves):
            return np.zeros_like(p)
        s = np.sin(2 * np.pi * (p @ self.waves[:, :2].T) + self.waves[:, 2])  # (N, K)
        return s @ self.waves[:, 3:5]

    def to_pixels(self, p: np.ndarray) -> np.ndarray:
        """Interpolated base-space points (N, 2) → pixels (N, 2), bent by the smooth field."""
        q = (p + self.field(p)) * self.scale
        return q @ self.rotation.T + self.centre

    def landmarks(self) -> np.ndarray:
        return self.to_pixels(self.base)

    def outlines(self, shape: _Shape) -> list[np.ndarray]:
        """Dense pixel polylines of ``shape``'s faces, then its bands (links curved by the field)."""
        a, b, t = shape.samples
        p = self.base[a] * (1 - t[:, None]) + self.base[b] * t[:, None]
        return np.split(self.to_pixels(p), shape.splits)


def _random_warp(rng: np.random.Generator, shape: _Shape, config: SynthConfig, size_px: float) -> _Warp:
    """Random deformation, scale (longer side ``size_px``) and rotation, centred at the origin."""
    strength = config.deformation
    pts = shape.points.copy()
    for idx, pa, pb in shape.sleeves:
        pivot = (pts[pa] + pts[pb]) / 2
        rel = pts[idx] - pivot
        raise_sign = -np.sign(rel[:, 0].mean()) or 1.0
        angle = np.deg2rad(rng.uniform(-0.1, 1.0) * config.sleeve_swing_deg * min(strength, 1.5)) * raise_sign
        c, s = np.cos(angle), np.sin(angle)
        pts[idx] = rel @ np.array([[c, -s], [s, c]]).T + pivot
    sx, sy = np.exp(rng.normal(0.0, 0.08 * strength, 2))
    shear = rng.normal(0.0, 0.05 * strength, 2)
    linear = np.array([[sx, shear[0]], [shear[1], sy]])
    base = pts @ linear.T
    k = 3 if strength > 0 else 0
    freq = rng.uniform(0.4, 1.0, k)
    theta = rng.uniform(0, 2 * np.pi, k)
    amp = strength * rng.uniform(0.2, 1.0, k) * 0.085 / (2 * np.pi * freq)
    amp_dir = rng.uniform(0, 2 * np.pi, k)
    waves = np.column_stack([freq * np.cos(theta), freq * np.sin(theta), rng.uniform(0, 2 * np.pi, k),
                             amp * np.cos(amp_dir), amp * np.sin(amp_dir)])
    warp = _Warp(base, waves, np.eye(2), 1.0, np.zeros(2))
    extent = np.ptp(warp.landmarks(), axis=0)
    angle = np.deg2rad(rng.uniform(-config.rotation_deg, config.rotation_deg))
    c, s = np.cos(angle), np.sin(angle)
    return _Warp(base, waves, np.array([[c, -s], [s, c]]), size_px / max(extent.max(), 1e-6), np.zeros(2))


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


# ---------------------------------------------------------------------------------------------
# Colours and textures


def _colour(rng: np.random.Generator, kind: str = "garment") -> np.ndarray:
    """(3,) float32 RGB in 0..255."""
    hue = rng.random()
    if kind == "garment":
        r = rng.random()
        if r < 0.25:  # neutrals: black, white, greys
            sat, val = rng.uniform(0, 0.12), rng.choice([rng.uniform(0.08, 0.25), rng.uniform(0.75, 0.97),
                                                        rng.uniform(0.3, 0.7)])
        else:
            sat, val = rng.uniform(0.3, 0.95), rng.uniform(0.25, 0.95)
    else:  # backgrounds: mostly muted
        sat, val = rng.uniform(0, 0.45), rng.uniform(0.3, 0.95)
    return np.array(colorsys.hsv_to_rgb(hue, sat, val), np.float32) * 255


def _lowfreq(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """(h, w) float32 smooth noise of unit-ish amplitude, about ``cells`` blobs along the longer side."""
    gh = max(2, int(round(cells * h / max(h, w))) + 2)
    gw = max(2, int(round(cells * w / max(h, w))) + 2)
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _stripes(coord: np.ndarray, period: float, duty: float, phase: float) -> np.ndarray:
    """(h, w) float32 in [0, 1]: soft-edged stripes across ``coord`` (pixels)."""
    f = (coord * np.float32(1 / period) + np.float32(phase)) % 1.0
    edge = np.float32(1 / min(0.5, 0.7 / period))
    return np.clip((duty - f) * edge + 0.5, 0, 1) * np.clip(f * edge + 0.5, 0, 1)


def _plane(t: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(t, shape), dtype=np.float32)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32: colours ``a`` → ``b`` (3,) by the (h, w) weight ``t``."""
    return cv2.merge([t * np.float32(b[c] - a[c]) + np.float32(a[c]) for c in range(3)])


def _grey3(t: np.ndarray) -> np.ndarray:
    """(h, w) → (h, w, 3) float32, the same plane thrice."""
    t = np.ascontiguousarray(t, dtype=np.float32)
    return cv2.merge([t, t, t])


_PATTERNS = ("solid", "stripes", "checks", "dots", "heather", "gradient", "camo", "twill")
_PATTERN_P = np.array([0.28, 0.18, 0.1, 0.08, 0.1, 0.08, 0.08, 0.1])


def _garment_texture(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, size_px: float) -> np.ndarray:
    """(h, w, 3) float32 RGB fill, shaded; ``u``, ``v`` (h, w) garment-frame coordinates in pixels."""
    h, w = u.shape
    base, other = _colour(rng), _colour(rng)
    kind = _PATTERNS[int(rng.choice(len(_PATTERNS), p=_PATTERN_P))]
    shade = np.ones((h, w), np.float32)  # multiplicative, also carries grain
    if kind == "solid":
        tex = _lerp(base, base, shade)
    elif kind == "stripes":
        angle = np.deg2rad(rng.choice([0.0, 90.0, 45.0, -45.0], p=[0.45, 0.35, 0.1, 0.1]))
        coord = u * np.float32(np.cos(angle)) + v * np.float32(np.sin(angle))
        period = max(3.0, rng.uniform(0.03, 0.15) * size_px)
        tex = _lerp(base, other, _stripes(coord, period, rng.uniform(0.2, 0.6), rng.random()))
    elif kind == "checks":
        period = max(4.0, rng.uniform(0.05, 0.18) * size_px)
        s1 = _stripes(u, period, rng.uniform(0.3, 0.6), rng.random())
        s2 = _stripes(v, period, rng.uniform(0.3, 0.6), rng.random())
        tex = _lerp(base, other, 0.5 * s1 + 0.5 * s2)
    elif kind == "dots":
        period = max(5.0, rng.uniform(0.04, 0.12) * size_px)
        fu = (u * np.float32(1 / period) + np.float32(rng.random())) % 1.0 - 0.5
        fv = (v * np.float32(1 / period) + np.float32(rng.random())) % 1.0 - 0.5
        r = np.float32(rng.uniform(0.15, 0.35))
        tex = _lerp(base, other, np.clip((r - np.sqrt(fu * fu + fv * fv)) * np.float32(period) + 0.5, 0, 1))
    elif kind == "heather":
        tex = _lerp(base, base, shade)
        shade += rng.standard_normal((h, w), dtype=np.float32) * np.float32(rng.uniform(0.04, 0.12))
    elif kind == "gradient":
        t = np.clip(v * np.float32(1 / max(size_px, 1.0)) + 0.5, 0, 1)
        tex = _lerp(base, other, t if rng.random() < 0.5 else 1 - t)
    elif kind == "camo":
        third = _colour(rng)
        cells = max(3.0, 8 * max(h, w) / max(size_px, 1.0))
        n1, n2 = _lowfreq(rng, h, w, cells), _lowfreq(rng, h, w, cells)
        tex = _lerp(base, other, (n1 > 0.3).astype(np.float32))
        tex[(n1 <= 0.3) & (n2 > 0.2)] = third
    else:  # twill / denim: fine diagonal ribs and grain
        tex = _lerp(base, base, shade)
        shade += 0.16 * _stripes(u + v, rng.uniform(2.5, 4.0), 0.5, rng.random()) - 0.08
        shade += rng.standard_normal((h, w), dtype=np.float32) * np.float32(0.03)
    # shading: soft light variation and vertical folds
    shade += 0.08 * _lowfreq(rng, h, w, max(2.0, 3 * max(h, w) / max(size_px, 1.0)))
    for _ in range(int(rng.integers(0, 4))):
        k = np.float32(2 * np.pi / (rng.uniform(0.12, 0.4) * size_px))
        shade += np.float32(rng.uniform(0.02, 0.06)) * np.sin(k * u + np.float32(0.1) * k * v
                                                              + np.float32(rng.uniform(0, 6.3)))
    return cv2.multiply(tex, _grey3(shade))


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8 RGB background: gradient, blotches, planks, tiles or plain, with grain."""
    a, b = _colour(rng, "background"), _colour(rng, "background")
    kind = int(rng.integers(5))
    xx = np.arange(w, dtype=np.float32)[None, :]
    yy = np.arange(h, dtype=np.float32)[:, None]
    if kind == 0:
        angle = rng.uniform(0, 2 * np.pi)
        t = (xx * np.float32(np.cos(angle)) + yy * np.float32(np.sin(angle))) / np.float32(max(h, w))
        img = _lerp(a, b, np.clip(t - t.min(), 0, 1))
    elif kind == 1:
        img = _lerp(a, b, np.clip(0.5 + 0.35 * _lowfreq(rng, h, w, rng.uniform(2, 8)), 0, 1))
    elif kind == 2:  # planks (floor / wood)
        width = np.float32(rng.uniform(0.08, 0.25) * max(h, w))
        coord, other = (xx, yy) if rng.random() < 0.5 else (yy, xx)
        shade = np.sin(np.floor(coord / width) * np.float32(12.9898) + np.float32(rng.random() * 100)) * 0.5 + 0.5
        grain = np.float32(0.06) * np.sin(np.float32(2 * np.pi / rng.uniform(20, 60)) * other
                                          + 3 * _lowfreq(rng, h, w, 4))
        seam = np.where((coord % width) < 1.2, np.float32(0.7), np.float32(1.0))
        img = cv2.multiply(_lerp(a, b, _plane(0.4 * shade, (h, w))), _grey3((1 + grain) * seam))
    elif kind == 3:  # tiles
        size = np.float32(rng.uniform(0.06, 0.2) * max(h, w))
        tile = (np.floor(xx / size) + np.floor(yy / size)) % 2
        grout = ((xx % size) < 1.0) | ((yy % size) < 1.0)
        img = cv2.multiply(_lerp(a, b, 0.25 * tile), _grey3(np.where(grout, np.float32(0.8), np.float32(1))))
    else:
        img = _lerp(a, a, np.zeros((h, w), np.float32))
    noise = rng.standard_normal((h, w), dtype=np.float32) * np.float32(rng.uniform(1, 6))
    return cv2.add(img, _grey3(noise), dtype=cv2.CV_8U)


def _clutter(rng: np.random.Generator, image: np.ndarray) -> None:
    """Draw 1 non-garment shape (ellipse, box, disc or convex blob) on ``image`` (uint8, in place)."""
    h, w = image.shape[:2]
    colour = tuple(float(c) for c in _colour(rng, "garment" if rng.random() < 0.5 else "background"))
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = rng.uniform(0.04, 0.25) * min(w, h)
    kind = int(rng.integers(4))
    if kind == 0:
        axes = (int(r), int(r * rng.uniform(0.3, 1.0)))
        cv2.ellipse(image, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, colour, -1, cv2.LINE_AA)
    elif kind == 1:
        box = cv2.boxPoints(((cx, cy), (2 * r, 2 * r * rng.uniform(0.2, 1.0)), rng.uniform(0, 180)))
        cv2.fillPoly(image, [_fixed(box)], colour, cv2.LINE_AA, _SHIFT)
    elif kind == 2:
        cv2.circle(image, (int(cx), int(cy)), int(r), colour, -1, cv2.LINE_AA)
        cv2.circle(image, (int(cx), int(cy)), int(r * 0.6), tuple(c * 0.8 for c in colour), 2, cv2.LINE_AA)
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
        radii = r * rng.uniform(0.6, 1.0, len(angles))
        poly = np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)])
        cv2.fillPoly(image, [_fixed(poly)], colour, cv2.LINE_AA, _SHIFT)
    if rng.random() < 0.5:  # a line or two (cables, edges of furniture)
        p1 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        p2 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        cv2.line(image, p1, p2, colour, int(rng.integers(1, 4)), cv2.LINE_AA)


# ---------------------------------------------------------------------------------------------
# Drawing garments


def _draw_garment(rng: np.random.Generator, image: np.ndarray, placed: _Placed) -> None:
    """Composite one garment onto ``image`` ((H, W, 3) uint8, in place): shadow, fill, inside, outline."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = placed.bounds
    x0, y0, x1, y1 = max(0, x0 - 4), max(0, y0 - 4), min(w, x1 + 4), min(h, y1 + 4)
    if x1 <= x0 or y1 <= y0:
        return
    alpha = placed.alpha[y0:y1, x0:x1].astype(np.float32) * np.float32(1 / 255)
    crop = image[y0:y1, x0:x1]
    # drop shadow: blurred coverage shifted down-right
    dx, dy = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    shadow = np.zeros_like(alpha)
    shadow[dy:, dx:] = alpha[: alpha.shape[0] - dy, : alpha.shape[1] - dx]
    shadow = cv2.GaussianBlur(shadow, (0, 0), 2.0) * np.float32(rng.uniform(0.15, 0.4))
    crop = cv2.blendLinear(crop, np.zeros_like(crop), 1 - shadow, shadow)
    # texture in the garment's frame
    rot = placed.warp.rotation.astype(np.float32)
    rx = (np.arange(x0, x1, dtype=np.float32) - np.float32(placed.warp.centre[0]))[None, :]
    ry = (np.arange(y0, y1, dtype=np.float32) - np.float32(placed.warp.centre[1]))[:, None]
    u = rot[0, 0] * rx + rot[1, 0] * ry
    v = rot[0, 1] * rx + rot[1, 1] * ry
    tex = _garment_texture(rng, u, v, placed.warp.scale)
    inner_faces = [f for f, inner in zip(placed.faces, placed.shape.inner, strict=True) if inner]
    if inner_faces:  # the garment's inside (back neck strip): darker
        inner = np.zeros((y1 - y0, x1 - x0), np.uint8)
        offset = np.array([x0, y0], float)
        for poly in inner_faces:
            cv2.fillPoly(inner, [_fixed(poly - offset)], 255, cv2.LINE_AA, _SHIFT)
        dim = np.float32(rng.uniform(0.35, 0.6) / 255)
        tex = cv2.multiply(tex, _grey3(1 - inner.astype(np.float32) * dim))
    tex_u8 = np.clip(tex + 0.5, 0, 255).astype(np.uint8)
    image[y0:y1, x0:x1] = cv2.blendLinear(crop, tex_u8, 1 - alpha, alpha)
    # outline and seams (every face boundary), bands with a dark rim
    solid = alpha > 0.5
    mean = tex[solid].mean(axis=0) if solid.any() else tex.reshape(-1, 3).mean(axis=0)
    dark = tuple(float(c) for c in mean * rng.uniform(0.3, 0.6))
    thick = 1 if placed.warp.scale < 140 or rng.random() < 0.5 else 2
    cv2.polylines(image, [_fixed(f) for f in placed.faces], True, dark, thick, cv2.LINE_AA, _SHIFT)
    if placed.bands:
        rim = [_fixed(b) for b in placed.bands]
        cv2.polylines(image, rim, False, dark, placed.band_px + 2, cv2.LINE_AA, _SHIFT)
        cv2.polylines(image, rim, False, tuple(float(c) for c in mean), placed.band_px, cv2.LINE_AA, _SHIFT)


def _finish(rng: np.random.Generator, image: np.ndarray, strength: float) -> np.ndarray:
    """Photometric degradation: slight blur, contrast / brightness / colour cast, sensor noise."""
    if strength <= 0:
        return image
    if rng.random() < 0.4:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 0.9) * strength)
    gain = 1 + rng.normal(0, 0.08 * strength) + rng.normal(0, 0.03 * strength, 3)
    offset = 128 * (1 - gain) + rng.normal(0, 8 * strength)
    image = cv2.transform(image, np.column_stack([np.diag(gain), offset]).astype(np.float32))
    noise = rng.standard_normal(image.shape[:2], dtype=np.float32) * np.float32(rng.uniform(0, 4 * strength))
    return cv2.add(image, _grey3(noise), dtype=cv2.CV_8U)


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
# Public API


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


def scene_rng(seed: int, image_id: int) -> np.random.Generator:
    """The generator of image ``image_id`` of the dataset with ``seed``."""
    return np.random.default_rng([int(seed), int(image_id)])


def annotation_dict(items: Sequence[SynthItem], taxonomy: Taxonomy | None = None, source: str = "user",
                    pair_id: int = 0) -> dict:
    """The per-image DeepFashion2 annotation (``source``, ``pair_id``, ``item1``..``itemN``)."""
    taxonomy = taxonomy or load_taxonomy()
    doc: dict = {"source": source, "pair_id": int(pair_id)}
    for k, s in enumerate(items, start=1):
        cat = taxonomy.category(s.item.category_id)
        flat: list[float | int] = []
        for x, y, v in s.item.landmarks:
            flat += [float(x), float(y), int(v)] if v > 0 else [0, 0, 0]
        doc[f"item{k}"] = {
            "category_id": cat.id,
            "category_name": cat.name,
            "bounding_box": [float(b) for b in s.item.box],
            "landmarks": flat,
            "segmentation": [list(map(float, poly)) for poly in s.segmentation],
            "style": int(s.style),
            "scale": int(s.scale),
            "occlusion": int(s.occlusion),
            "zoom_in": int(s.zoom_in),
            "viewpoint": int(s.viewpoint),
        }
    return doc


def write_example(out_dir: str | Path, image_id: int, seed: int = 0, config: SynthConfig | None = None,
                  taxonomy: Taxonomy | None = None) -> list[SynthItem]:
    """Render image ``image_id`` of the dataset with ``seed`` and write ``image/NNNNNN.jpg`` and
    ``annos/NNNNNN.json`` under ``out_dir`` (folders must exist); returns the items."""
    taxonomy = taxonomy or load_taxonomy()
    config = config or SynthConfig()
    out = Path(out_dir)
    image, items = render_scene(scene_rng(seed, image_id), taxonomy, config)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(config.jpeg_quality)])
    if not ok:
        raise SynthError(f"JPEG encoding failed for image {image_id}")
    name = f"{image_id:06d}"
    write_atomically(out / "image" / f"{name}.jpg", lambda handle: handle.write(jpg.tobytes()), binary=True)
    doc = annotation_dict(items, taxonomy, source="user", pair_id=image_id)
    write_text_atomically(out / "annos" / f"{name}.json", json.dumps(doc))
    return items


def _write_chunk(out_dir: str, ids: list[int], seed: int, config: SynthConfig, taxonomy: Taxonomy) -> int:
    for image_id in ids:
        write_example(out_dir, image_id, seed, config, taxonomy)
    return len(ids)


def generate_dataset(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    config: SynthConfig | None = None,
    taxonomy: Taxonomy | None = None,
    progress: Callable[[int, int], object] | None = None,
    start: int = 1,
    workers: int = 1,
) -> list[int]:
    """Write ``n`` synthetic images and annotations in the DeepFashion2 layout; returns the image ids.

    Files: ``out_dir/image/NNNNNN.jpg`` and ``out_dir/annos/NNNNNN.json`` for ids ``start`` ..
    ``start + n - 1``. Image ``i`` depends only on (``seed``, ``i``), so a dataset can be written in
    chunks or extended later (``start``) with the same result; existing files of those ids are
    replaced. ``workers`` > 1 renders in that many forked processes (serially where the platform
    cannot fork); the files are the same either way. ``progress(done, n)`` is called as images are
    written.
    """
    if n < 0 or start < 0 or workers < 1:
        raise SynthError(f"need n >= 0, start >= 0 and workers >= 1, got {n}, {start}, {workers}")
    taxonomy = taxonomy or load_taxonomy()
    config = config or SynthConfig()
    out = Path(out_dir)
    (out / "image").mkdir(parents=True, exist_ok=True)
    (out / "annos").mkdir(parents=True, exist_ok=True)
    ids = list(range(start, start + n))
    if workers == 1 or n < 8 or "fork" not in mp.get_all_start_methods():
        for done, image_id in enumerate(ids, start=1):
            write_example(out, image_id, seed, config, taxonomy)
            if progress:
                progress(done, n)
        return ids
    chunk = max(1, min(50, n // (4 * workers)))
    done = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
        futures = [pool.submit(_write_chunk, str(out), ids[k : k + chunk], seed, config, taxonomy)
                   for k in range(0, n, chunk)]
        for fut in futures:
            done += fut.result()
            if progress:
                progress(done, n)
    return ids
