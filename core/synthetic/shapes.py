"""Garment shapes: a category's drawable structure from its landmark template and skeleton (filled faces,
bands, sleeves, dense outline samples) and a garment instance's random smooth deformation (``_Warp``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from deepmark.core.domain.taxonomy import Category
from deepmark.core.synthetic.config import SynthConfig

_DENSE_STEP = 0.025  # contour sample spacing, in garment heights


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
# Deformation


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
