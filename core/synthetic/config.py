"""How synthetic scenes look (``SynthConfig``) and the error raised for invalid settings or requests."""

from __future__ import annotations

from dataclasses import dataclass

from deepmark.core.errors import DeepMarkError


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
