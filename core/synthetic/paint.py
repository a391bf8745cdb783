"""Painting a scene: random colours, garment textures (solid, stripes, checks, dots, heather, gradient,
camouflage, twill) with shading, textured backgrounds, non-garment clutter, garment compositing (shadow,
fill, inside, outline, bands) and the final photometric degradation."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from deepmark.core.synthetic.placement import _SHIFT, _fixed, _Placed

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
