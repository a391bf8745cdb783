"""Training augmentation: random scale/shift/mirror affine, label flipping, colour jitter.

Follows CenterNet's ``multi_pose`` sampling (notes §1.5) with continuous pixel coordinates (as
``deepmark.core.centernet.encode`` and ``deepmark.core.imaging.preprocess``): a random uniform scale of the letterbox
scale, a random shift
of the image point that lands on the input centre, a horizontal mirror x ↦ w − x with probability
``flip_probability`` folded into the same affine, and colour jitter (brightness, contrast and saturation
in a random order, then optional PCA lighting noise). The mirror changes which landmark is which: a
mirrored left sleeve is a right sleeve, so labels go through ``flip_items`` (landmarks permuted by the
category's flip pairs). Every random draw comes from the ``numpy.random.Generator`` passed in, always
the same number of draws in the same order, so a seeded generator gives the same augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deepmark.core.domain.structures import Affine, Item
from deepmark.core.domain.taxonomy import Taxonomy
from deepmark.core.imaging.preprocess import letterbox_affine

# AlexNet / fb.resnet.torch ImageNet RGB PCA (eigenvalues on [0, 1] pixels; columns are eigenvectors).
_EIGVAL = np.array([0.2175, 0.0188, 0.0045])
_EIGVEC = np.array([
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
])
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # RGB luma


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings.

    ``scale_range`` (min, max): factor on the letterbox scale (1 fits the whole image), drawn
    uniformly; ``shift``: the image point mapped to the input centre moves by up to this fraction of
    the image width/height from the image centre (uniform); ``flip_probability``: probability of a
    horizontal mirror; ``brightness``, ``contrast``, ``saturation``: each factor is 1 + U(−v, v) (0 disables);
    ``lighting_std``: σ of the PCA lighting noise (0 disables).
    """

    scale_range: tuple[float, float] = (0.6, 1.4)
    shift: float = 0.2
    flip_probability: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    lighting_std: float = 0.1

    def __post_init__(self) -> None:
        try:
            low, high = (float(v) for v in self.scale_range)
        except (TypeError, ValueError):
            raise ValueError(f"scale_range must be two numbers (min, max), got {self.scale_range!r}") from None
        if not 0 < low <= high < float("inf"):
            raise ValueError(f"scale_range needs 0 < min <= max, got {self.scale_range!r}")
        object.__setattr__(self, "scale_range", (low, high))
        if not 0 <= self.flip_probability <= 1:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        for name in ("shift", "brightness", "contrast", "saturation", "lighting_std"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value < float("inf")):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be at most 1 (factor 1 ± {name}), got {getattr(self, name)}")

    @staticmethod
    def none() -> AugmentConfig:
        """No augmentation at all (the letterbox with an identity jitter), for tests and ablations."""
        return AugmentConfig(scale_range=(1.0, 1.0), shift=0.0, flip_probability=0.0, brightness=0.0,
                             contrast=0.0, saturation=0.0, lighting_std=0.0)


def mirror_affine(image_width: float) -> Affine:
    """The horizontal mirror of an image of this width, x ↦ width − x (its own inverse)."""
    return Affine(np.array([[-1.0, 0.0, float(image_width)], [0.0, 1.0, 0.0]]))


def random_affine(
    rng: np.random.Generator, image_size: Sequence[int], input_size: Sequence[int], config: AugmentConfig
) -> tuple[Affine, bool]:
    """A random image → input affine and whether it mirrors.

    Scale s = letterbox scale × U(scale_range); the image point c = image centre + U(−shift, shift) ×
    (w, h) lands on the input centre; when mirrored (probability ``flip_probability``) the image is first
    mirrored x ↦ w − x. Items must then go through ``flip_items`` before being mapped by
    ``mirror_affine(w).then(affine)`` (the affine without its mirror).
    """
    w, h = (float(v) for v in image_size)
    in_w, in_h = (float(v) for v in input_size)
    base = letterbox_affine((w, h), (in_w, in_h)).matrix[0, 0]
    factor = rng.uniform(*config.scale_range)
    dx, dy = rng.uniform(-1.0, 1.0, size=2)
    flipped = bool(rng.random() < config.flip_probability)
    scale = base * factor
    cx, cy = w / 2 + dx * config.shift * w, h / 2 + dy * config.shift * h
    affine = Affine.scale_translate(scale, in_w / 2 - scale * cx, in_h / 2 - scale * cy)
    if flipped:
        affine = mirror_affine(w).then(affine)
    return affine, flipped


def flip_items(items: Sequence[Item], image_width: float, taxonomy: Taxonomy) -> list[Item]:
    """Items of the horizontally mirrored image (x ↦ width − x).

    The box's x-range is mirrored; landmark i of the result is the mirror of landmark
    ``flip_permutation[i]`` of the input. Landmarks with v = 0 (not labelled) are moved with the
    permutation but keep their stored coordinates (so (0, 0, 0) stays (0, 0, 0)); flipping twice gives
    the original items back.
    """
    out = []
    for item in items:
        perm = taxonomy.category(item.category_id).flip_permutation
        x1, y1, x2, y2 = np.asarray(item.box, np.float64)
        landmarks = np.asarray(item.landmarks, np.float64)[perm].copy()
        labelled = landmarks[:, 2] > 0
        landmarks[labelled, 0] = image_width - landmarks[labelled, 0]
        box = np.array([image_width - x2, y1, image_width - x1, y2])
        out.append(Item(item.category_id, box, landmarks))
    return out


def color_jitter(rng: np.random.Generator, image: np.ndarray, config: AugmentConfig) -> np.ndarray:
    """Brightness, contrast and saturation (random order, factors 1 + U(−v, v)), then PCA lighting noise.

    ``image`` (H, W, 3) uint8 RGB → a new (H, W, 3) uint8 array (clipped to 0..255).
    """
    order = rng.permutation(3)
    factors = 1.0 + rng.uniform(-1.0, 1.0, size=3) * (config.brightness, config.contrast, config.saturation)
    lighting = rng.normal(0.0, 1.0, size=3) * config.lighting_std
    img = np.asarray(image, np.float32).copy()
    for op in order:
        alpha = np.float32(factors[op])
        if alpha == 1:
            continue
        if op == 0:  # brightness
            img *= alpha
        elif op == 1:  # contrast: towards the mean gray level
            mean = float((img @ _GRAY_WEIGHTS).mean())
            img = img * alpha + np.float32((1 - alpha) * mean)
        else:  # saturation: towards each pixel's gray level
            gray = img @ _GRAY_WEIGHTS
            img = img * alpha + (1 - alpha) * gray[..., None]
    if config.lighting_std > 0:
        img += (255.0 * _EIGVEC @ (_EIGVAL * lighting)).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
