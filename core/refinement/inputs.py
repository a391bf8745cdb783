"""Detections ↔ the refiner's arrays: crops and rendered landmarks in, refined detections out.

Shared by inference (``runner.Refiner``) and by validation during training, so both see exactly the
same inputs. Pure numpy/OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from deepmark.core.domain.structures import Detection
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.imaging.preprocess import border_colour, to_network_input
from deepmark.core.refinement.crop import crop_affine, cut_crop, to_crop, to_image
from deepmark.core.refinement.render import category_channels, pose_input


@dataclass(frozen=True)
class Normalisation:
    """How crops become network input: per-channel ``mean`` and ``std`` on [0, 1], ``color_order``."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    color_order: str = "RGB"


@dataclass(frozen=True, eq=False)
class GarmentBatch:
    """The refiner's input for N garments: ``image`` (N, 3, H, W) float32, ``pose`` (N, G, H/2, W/2)
    float32, ``matrices`` (N, 2, 3) image → crop, ``channels`` the group channel of each landmark."""

    image: np.ndarray
    pose: np.ndarray
    matrices: np.ndarray
    channels: list[np.ndarray]


def garment_batch(image: np.ndarray, detections: Sequence[Detection], grouping: Grouping, taxonomy: Taxonomy,
                  crop_size: tuple[int, int], norm: Normalisation) -> GarmentBatch:
    """Crop each detection's box from the (H, W, 3) uint8 RGB ``image`` and render its landmarks."""
    border = border_colour(norm.mean, norm.color_order)
    affines = [crop_affine(d.box, crop_size) for d in detections]
    crops = [cut_crop(image, a, crop_size, border) for a in affines]
    channels = [category_channels(grouping, taxonomy, d.category_id) for d in detections]
    matrices = np.stack([a.matrix for a in affines])
    poses = np.stack([pose_input(to_crop(d.landmarks[None, :, :2], m[None])[0], ch, grouping.num_groups, crop_size)
                      for d, m, ch in zip(detections, matrices, channels, strict=True)])
    return GarmentBatch(to_network_input(crops, norm.mean, norm.std, norm.color_order), poses, matrices, channels)


def refined_detections(detections: Sequence[Detection], batch: GarmentBatch, coords: np.ndarray,
                       confidence: np.ndarray, use_confidence: bool, blend: float = 1.0) -> list[Detection]:
    """New detections: each landmark at the network's ``coords`` (N, G, 2) crop pixels of its channel, back
    in image pixels, as blend · refined + (1 − blend) · the detection's own (the refiner's counterpart of the
    γ of location refinement, tuned on validation images); category, score, box and ``refined`` unchanged;
    the landmark score column the network's ``confidence`` (N, G) when ``use_confidence``, else the
    detection's own."""
    out = []
    for k, det in enumerate(detections):
        ch = batch.channels[k]
        xy = to_image(coords[k, ch][None].astype(np.float64), batch.matrices[k : k + 1])[0]
        xy = blend * xy + (1.0 - blend) * det.landmarks[:, :2]
        score = confidence[k, ch].astype(np.float64) if use_confidence else det.landmarks[:, 2]
        out.append(replace(det, landmarks=np.concatenate([xy, score[:, None]], axis=1), box=det.box.copy()))
    return out


def blended(detections: Sequence[Detection], refined: Sequence[Detection], blend: float) -> list[Detection]:
    """``refined`` (blend 1) moved back towards ``detections`` (the same garments): blend · refined +
    (1 − blend) · original landmark positions."""
    out = []
    for det, ref in zip(detections, refined, strict=True):
        xy = blend * ref.landmarks[:, :2] + (1.0 - blend) * det.landmarks[:, :2]
        out.append(replace(ref, landmarks=np.concatenate([xy, ref.landmarks[:, 2:]], axis=1)))
    return out
