"""The crop around one garment: a box → an affine from image pixels to a fixed-size crop (PoseFix's).

The box is grown to the crop's aspect ratio around its centre (the short side lengthened, never the long
one shortened, so nothing of the garment is cut), then enlarged by ``CROP_MARGIN`` (PoseFix: 1.25) so the
landmarks on the outline and a little context are inside. One uniform scale maps that region onto the
crop, so distances in crop pixels are image distances times ``Affine.matrix[0, 0]``. Coordinates are
continuous as in ``deepmark.core.imaging.preprocess`` (pixel (i, j) covers [i, i + 1) × [j, j + 1)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepmark.core.domain.structures import Affine
from deepmark.core.imaging.preprocess import BORDER_VALUE, warp_image

CROP_MARGIN = 1.25  # PoseFix enlarges the detection box by 25 % before cropping
DEFAULT_CROP_SIZE = (192, 256)  # (width, height), PoseFix's 256 × 192 (h × w)
MIN_BOX_SIDE = 1.0  # image pixels: a degenerate (zero-size) box still gets a crop around its centre


def crop_affine(box: np.ndarray, crop_size: Sequence[int] = DEFAULT_CROP_SIZE, margin: float = CROP_MARGIN) -> Affine:
    """Image pixels → crop pixels for an xyxy ``box`` (4,) image pixels; ``crop_size`` (W, H) pixels.

    The box's centre maps to the crop's centre; its region, grown to the crop's aspect and × ``margin``,
    fills the crop."""
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = max(x1 - x0, MIN_BOX_SIDE), max(y1 - y0, MIN_BOX_SIDE)
    crop_w, crop_h = float(crop_size[0]), float(crop_size[1])
    aspect = crop_w / crop_h
    if width > aspect * height:
        height = width / aspect
    else:
        width = height * aspect
    scale = crop_w / (width * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return Affine.scale_translate(scale, crop_w / 2 - scale * cx, crop_h / 2 - scale * cy)


def crop_affines(boxes: np.ndarray, crop_size: Sequence[int] = DEFAULT_CROP_SIZE,
                 margin: float = CROP_MARGIN) -> np.ndarray:
    """(N, 4) xyxy boxes → (N, 2, 3) image → crop matrices (``crop_affine`` of each)."""
    return np.stack([crop_affine(b, crop_size, margin).matrix for b in np.reshape(boxes, (-1, 4))]) \
        if len(boxes) else np.zeros((0, 2, 3))


def cut_crop(image: np.ndarray, affine: Affine, crop_size: Sequence[int] = DEFAULT_CROP_SIZE,
             border_value: Sequence[int] = BORDER_VALUE) -> np.ndarray:
    """The (H, W, 3) uint8 crop of an (h, w, 3) uint8 RGB image under ``affine`` (image → crop); outside the
    image the model's mean colour (``border_value``), as the detector's letterbox."""
    return warp_image(image, affine, crop_size, border_value)


def to_crop(points: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """(N, L, 2) image points → crop points with (N, 2, 3) per-garment matrices."""
    return np.einsum("nij,nlj->nli", matrices[:, :, :2], points) + matrices[:, None, :, 2]


def to_image(points: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """(N, L, 2) crop points → image points with the (N, 2, 3) image → crop matrices (their inverse)."""
    inverse = np.linalg.inv(matrices[:, :, :2])
    return np.einsum("nij,nlj->nli", inverse, points - matrices[:, None, :, 2])
