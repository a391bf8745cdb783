"""The refiner's input heatmaps: one Gaussian per landmark of the garment's category, in group space.

Channel layout — one model for all 13 categories in the 62 ``semantic62`` groups, not 13 models (the
paper) and not 294 landmark channels. ``Grouping`` guarantees that a category's landmarks fall in distinct
groups (``build_grouping`` rejects two in one group), so a category's L landmarks are L distinct channels
and the map landmark → channel is invertible per category. Groups are semantic (the same neckline or
hem point across categories), so what one category teaches transfers to the others — with 3000 synthetic
training images, 13 separate models would each see a few hundred garments. It is also what the detector
itself predicts (62 group heatmaps), and one ONNX file with 62 output channels is ~5× less work than 294.
The channels of the other categories stay zero at the input, and only the category's channels are read
at the output (and enter the loss).

Gaussians are drawn at half the crop's resolution (``POSE_STRIDE``; the network adds them to its stride-2
stem), σ = ``input_sigma`` crop pixels, peak 1.
"""

from __future__ import annotations

import numpy as np

from deepmark.core.domain.taxonomy import Grouping, Taxonomy

INPUT_SIGMA_FRACTION = 1 / 32  # σ of the input Gaussians as a share of the crop height: 1 output-map pixel at 128
POSE_STRIDE = 2  # crop pixels per pixel of the rendered landmark maps


def input_sigma(crop_height: int) -> float:
    """σ in crop pixels of the rendered landmarks (8 px at a 256-pixel crop height). Wider than PoseFix's 2
    heatmap pixels' worth so the log-prior (``network``) is a smooth bump, not a spike between grid points."""
    return max(1.0, crop_height * INPUT_SIGMA_FRACTION)


def category_channels(grouping: Grouping, taxonomy: Taxonomy, category_id: int) -> np.ndarray:
    """(L,) int: the group channel of each landmark of ``category_id`` (distinct, see the module docstring)."""
    return grouping.category_groups[taxonomy.category_index(category_id)]


def render_landmarks(points: np.ndarray, channels: np.ndarray, num_channels: int, crop_size: tuple[int, int],
                     sigma: float) -> np.ndarray:
    """(L, 2) crop points (pixels) on ``channels`` (L,) → (C, H, W) float32 heatmaps, ``crop_size`` (W, H).

    Each landmark's Gaussian exp(−d²/2σ²) on its own channel (pixel centres at i + 0.5); the rest zero.
    Separable: an outer product of a (L, W) and an (L, H) profile, so the cost is L·H·W, not C·H·W·L."""
    width, height = crop_size
    out = np.zeros((num_channels, height, width), np.float32)
    if len(points) == 0:
        return out
    xs = np.arange(width, dtype=np.float32) + 0.5
    ys = np.arange(height, dtype=np.float32) + 0.5
    pts = np.asarray(points, np.float32)
    gx = np.exp(-((xs[None, :] - pts[:, :1]) ** 2) / np.float32(2 * sigma * sigma))
    gy = np.exp(-((ys[None, :] - pts[:, 1:2]) ** 2) / np.float32(2 * sigma * sigma))
    out[channels] = gy[:, :, None] * gx[:, None, :]
    return out


def pose_input(points: np.ndarray, channels: np.ndarray, num_channels: int, crop_size: tuple[int, int]) -> np.ndarray:
    """(L, 2) crop points on ``channels`` → the network's (C, H/2, W/2) float32 landmark input
    (``POSE_STRIDE``), ``crop_size`` (W, H) pixels."""
    size = (crop_size[0] // POSE_STRIDE, crop_size[1] // POSE_STRIDE)
    return render_landmarks(np.asarray(points) / POSE_STRIDE, channels, num_channels, size,
                            input_sigma(crop_size[1]) / POSE_STRIDE)
