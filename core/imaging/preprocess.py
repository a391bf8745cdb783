"""Pre-processing shared by training and inference: letterbox affine, warp, normalisation, map transform.

Pixel coordinates are continuous, as in ``deepmark.core.centernet.encode``: pixel (i, j) covers [i, i + 1) × [j, j +
1), so
its centre is (i + 0.5, j + 0.5), and every ``Affine`` here maps such points directly (image pixels →
network-input pixels). ``warp_image`` converts to OpenCV's convention (pixel centres at integers) so the
warped picture agrees with the affine exactly.

Border: the area outside the image is filled with the model's mean colour (``border_colour``; for the
default ImageNet normalisation ``BORDER_VALUE``, RGB 124, 116, 104), which normalises to ~0 — the same as
the convolutions' own zero padding — rather than black, which would normalise to about −2 and look like a
strong dark edge.

Normalisation: a model's metadata names its colour order (``COLOR_ORDERS``) and its per-channel mean and
std on [0, 1] pixel values, both listed in the order of the network's input channels (for a BGR model,
blue first); ``to_network_input`` applies them, the defaults being ImageNet's in RGB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from deepmark.core.domain.structures import COLOR_ORDERS, NORMALIZE_MEAN, NORMALIZE_STD, OUTPUT_STRIDE, Affine


def border_colour(mean: Sequence[float] = NORMALIZE_MEAN, color_order: str = "RGB") -> tuple[int, int, int]:
    """The RGB uint8 colour that a model with per-input-channel ``mean`` (in ``color_order``, on [0, 1])
    sees as ~0 after normalisation: the letterbox fill."""
    rgb = tuple(mean) if _checked_order(color_order) == "RGB" else tuple(mean)[::-1]
    return tuple(int(round(255 * m)) for m in rgb)


def _checked_order(color_order: str) -> str:
    if color_order not in COLOR_ORDERS:
        raise ValueError(f"color_order must be one of {COLOR_ORDERS}, got {color_order!r}")
    return color_order


BORDER_VALUE = border_colour()  # (124, 116, 104)


def _checked_size(size: Sequence[float], what: str, cast=int) -> tuple:
    w, h = (cast(v) for v in size)
    if not (0 < w < float("inf") and 0 < h < float("inf")):
        raise ValueError(f"{what} must be positive (width, height), got {tuple(size)}")
    return w, h


def letterbox_affine(image_size: Sequence[int], input_size: Sequence[int]) -> Affine:
    """Image pixels → input pixels: one uniform scale fitting the whole image, centred; the rest is padding.

    ``image_size`` (w, h), ``input_size`` (W, H); scale s = min(W / w, H / h), offset ((W − s·w) / 2,
    (H − s·h) / 2) — not rounded, so the image centre maps to the input centre exactly.
    """
    w, h = _checked_size(image_size, "image_size", float)
    in_w, in_h = _checked_size(input_size, "input_size", float)
    scale = min(in_w / w, in_h / h)
    return Affine.scale_translate(scale, (in_w - scale * w) / 2, (in_h - scale * h) / 2)


def input_size_for(
    image_size: Sequence[int], max_side: int, multiple: int = 32, upscale: bool = True
) -> tuple[int, int]:
    """(W, H) for dynamic-size inference: both multiples of ``multiple``, longest side ≤ ``max_side``.

    The image is scaled so its longest side becomes the largest multiple ≤ ``max_side`` (or stays at
    its own length when ``upscale`` is False and it is smaller), then each side is rounded up to a
    multiple, so ``letterbox_affine`` adds at most a padding strip under ``multiple`` pixels.
    """
    w, h = _checked_size(image_size, "image_size")
    if multiple <= 0 or max_side < multiple:
        raise ValueError(f"max_side ({max_side}) must be at least multiple ({multiple}) > 0")
    longest = max(w, h)
    cap = (max_side // multiple) * multiple
    target = cap if upscale else min(cap, longest)
    scale = target / longest

    def side(length: int) -> int:
        return min(cap, max(multiple, math.ceil(length * scale / multiple - 1e-9) * multiple))

    return side(w), side(h)


def opencv_matrix(affine: Affine) -> np.ndarray:
    """The (2, 3) matrix for ``cv2.warpAffine`` (pixel centres at integers) of a continuous-coordinate
    affine: x_cv' = M x_cv + M·(½, ½) + t − (½, ½)."""
    m = np.asarray(affine.matrix, np.float64)
    out = m.copy()
    out[:, 2] = m[:, 2] + m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return out


def warp_image(
    image: np.ndarray, affine: Affine, input_size: Sequence[int], border_value: Sequence[int] = BORDER_VALUE
) -> np.ndarray:
    """Warp an (H, W, 3) uint8 image by ``affine`` (image → input pixels) into an input-size picture.

    Bilinear interpolation; outside the image the constant ``border_value`` (the mean colour by default).
    Returns (H_in, W_in, 3) uint8 with ``input_size`` = (W_in, H_in).
    """
    in_w, in_h = _checked_size(input_size, "input_size")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        opencv_matrix(affine),
        (in_w, in_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=tuple(float(v) for v in border_value),
    )


def to_network_input(images: Sequence[np.ndarray], mean: Sequence[float] = NORMALIZE_MEAN,
                     std: Sequence[float] = NORMALIZE_STD, color_order: str = "RGB") -> np.ndarray:
    """A list of same-size (H, W, 3) uint8 RGB images → (B, 3, H, W) float32: channels in ``color_order``,
    then (x / 255 − mean) / std per channel (``mean``, ``std``: 3 values on [0, 1], in that same order)."""
    if len(images) == 0:
        raise ValueError("to_network_input needs at least one image")
    shapes = {np.shape(im) for im in images}
    if len(shapes) != 1:
        raise ValueError(f"images must all have one size, got {sorted(shapes)}")
    batch = np.stack([np.asarray(im) for im in images])
    if batch.ndim != 4 or batch.shape[3] != 3:
        raise ValueError(f"expected (H, W, 3) images, got {batch.shape[1:]}")
    if _checked_order(color_order) == "BGR":
        batch = batch[..., ::-1]
    x = batch.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255)
    x -= np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    x /= np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray(x)


def image_to_map(affine_image_to_input: Affine) -> Affine:
    """Image pixels → output-map pixels: the input affine followed by division by ``OUTPUT_STRIDE``."""
    return affine_image_to_input.then(Affine.scale_translate(1.0 / OUTPUT_STRIDE))


def preprocess(image: np.ndarray, input_size: Sequence[int]) -> tuple[np.ndarray, Affine]:
    """Letterbox one (H, W, 3) uint8 RGB image: (input-size uint8 picture, image → input Affine)."""
    affine = letterbox_affine((image.shape[1], image.shape[0]), input_size)
    return warp_image(image, affine, input_size), affine
