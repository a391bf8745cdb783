"""The refiner's training set: detector samples and ground truth with synthesised errors, as crops.

One epoch holds every detector sample (``samples.match_samples``) plus, when ``Recipe.synthetic_share``
> 0, as many ground-truth garments with synthesised errors (``errors.synthesise``) as makes that share.
Each sample's crop box is jittered (``Recipe.box_jitter``: shift and scale, a share of the box's size),
mirrored with ``Recipe.flip`` (landmarks swap with their flip partners, so every channel keeps its meaning)
and colour-jittered. Torch-free, like ``deepmark.core.training.dataset``: ``__getitem__`` returns numpy.

Determinism: sample ``i`` of epoch ``e`` uses ``numpy.random.default_rng([seed, e, i])``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import NORMALIZE_MEAN, NORMALIZE_STD, Affine
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.imaging.preprocess import to_network_input
from deepmark.core.imaging.read import read_image
from deepmark.core.refinement.config import Recipe
from deepmark.core.refinement.crop import crop_affine, cut_crop, to_crop
from deepmark.core.refinement.errors import synthesise
from deepmark.core.refinement.render import pose_input
from deepmark.core.refinement.samples import Samples
from deepmark.core.training.augment import AugmentConfig, color_jitter


class RefinerDataset:
    """Training samples → dicts of numpy arrays (see ``__getitem__``)."""

    def __init__(self, detected: Samples, truth: Samples, stats: dict, images: Mapping[int, Path],
                 grouping: Grouping, taxonomy: Taxonomy, crop_size: tuple[int, int], recipe: Recipe,
                 seed: int = 0) -> None:
        self.detected, self.truth, self.stats = detected, truth, stats
        self.images, self.grouping, self.taxonomy = images, grouping, taxonomy
        self.crop_size, self.recipe, self.seed = tuple(crop_size), recipe, seed
        share = recipe.synthetic_share if len(truth) else 0.0
        self.num_synthetic = 0 if share == 0 else (
            len(truth) if share == 1 or not len(detected) else int(round(len(detected) * share / (1 - share))))
        self.epoch = 0
        self._color = AugmentConfig(brightness=recipe.color, contrast=recipe.color, saturation=recipe.color,
                                    lighting_std=0.1 * recipe.color)
        lmax = detected.coarse.shape[1] if len(detected) else truth.coarse.shape[1]
        self._channels = np.full((taxonomy.num_classes, lmax), -1)
        self._partner = np.tile(np.arange(lmax), (taxonomy.num_classes, 1))
        self._sigmas = np.zeros((taxonomy.num_classes, lmax))
        for k, cat in enumerate(taxonomy.categories):
            self._channels[k, : cat.num_landmarks] = grouping.category_groups[k]
            self._partner[k, : cat.num_landmarks] = cat.flip_permutation
            self._sigmas[k, : cat.num_landmarks] = cat.oks_sigmas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.detected) + self.num_synthetic

    def _sample(self, index: int, rng: np.random.Generator) -> Samples:
        if index < len(self.detected):
            return self.detected.take(np.array([index]))
        row = self.truth.take(np.array([rng.integers(len(self.truth))]))
        return synthesise(row, self.stats, self.taxonomy, rng, self.recipe.error_scale)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """``image`` (3, H, W) float32; ``pose`` (G, H/2, W/2) float32; ``target`` (G, 2) crop pixels;
        ``weight`` (G,) 1 where the channel is a labelled landmark of the category; ``mask`` (G,) 1 on the
        category's channels; ``oks_scale`` (G,) the OKS length scale of each landmark (crop pixels)."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        s = self._sample(index, rng)
        k, n = int(s.category_id[0]) - 1, int(s.count[0])
        box = _jittered(s.box[0], rng, self.recipe.box_jitter)
        matrix = crop_affine(box, self.crop_size).matrix
        coarse, target = s.coarse[0, :n], s.target[0, :n]
        flip = rng.random() < self.recipe.flip
        if flip:  # mirror in the crop: x ↦ W − x, and each landmark takes its partner's place
            mirror = Affine(np.array([[-1.0, 0.0, self.crop_size[0]], [0.0, 1.0, 0.0]]))
            matrix = Affine(matrix).then(mirror).matrix
            perm = self._partner[k, :n]
            coarse, target = coarse[perm], target[perm]
        picture = cut_crop(read_image(self.images[int(s.image_id[0])]), Affine(matrix), self.crop_size)
        picture = color_jitter(rng, picture, self._color) if self.recipe.color > 0 else picture
        g = self.grouping.num_groups
        channels = self._channels[k, :n]
        crop_coarse = to_crop(coarse[None], matrix[None])[0]
        crop_target = to_crop(target[None, :, :2], matrix[None])[0]
        out_target = np.zeros((g, 2), np.float32)
        out_target[channels] = crop_target
        weight = np.zeros(g, np.float32)
        weight[channels] = target[:, 2] > 0
        mask = np.zeros(g, np.float32)
        mask[channels] = 1
        gt = s.gt_box[0]
        area = max((gt[2] - gt[0]) * (gt[3] - gt[1]), 1.0) * abs(np.linalg.det(matrix[:, :2]))
        oks_scale = np.zeros(g, np.float32)
        oks_scale[channels] = np.sqrt(area) * 2 * self._sigmas[k, :n]  # COCO: s·k with k = 2σ
        return {"image": to_network_input([picture], NORMALIZE_MEAN, NORMALIZE_STD)[0],
                "pose": pose_input(crop_coarse, channels, g, self.crop_size), "target": out_target,
                "weight": weight, "mask": mask, "oks_scale": oks_scale}


def _jittered(box: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """``box`` (4,) xyxy shifted by U(±amount)·size and scaled by 1 + U(±amount)."""
    if amount <= 0:
        return box
    size = box[2:] - box[:2]
    centre = (box[:2] + box[2:]) / 2 + rng.uniform(-amount, amount, 2) * size
    half = size * (1 + rng.uniform(-amount, amount)) / 2
    return np.concatenate([centre - half, centre + half])


def collate(samples: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.stack([s[key] for s in samples]) for key in samples[0]}
