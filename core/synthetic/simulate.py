"""Simulated detector outputs: random ground-truth scenes and the raw heads a perfect network would give.

Used by tests (round trips through encode → decode → evaluate), benchmarks (realistic head arrays
without a model) and the parameter search's own checks. Scenes place garments shaped by their
category's canonical template in separate cells of a grid, so no two garments collide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepmark.core.centernet.encode import Targets, encode_targets
from deepmark.core.domain.structures import OUTPUT_STRIDE, Affine, Item, RawHeads
from deepmark.core.domain.taxonomy import Grouping, Taxonomy


def random_scene(
    rng: np.random.Generator,
    taxonomy: Taxonomy,
    image_size: tuple[int, int] = (512, 512),
    num_items: int | None = None,
    category_ids: list[int] | None = None,
    hidden_fraction: float = 0.1,
) -> list[Item]:
    """1–5 items (or ``num_items``) in distinct grid cells of a ``(width, height)`` image.

    Each item's landmarks are its category template scaled into a random box inside its cell, jittered
    by up to 2 % of the box; visibility is 2 or 1, and 0 (stored as 0, 0, 0) for ``hidden_fraction``.
    """
    width, height = image_size
    n = int(rng.integers(1, 6)) if num_items is None else num_items
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    cell_w, cell_h = width / cols, height / rows
    cells = rng.permutation(rows * cols)[:n]
    items = []
    for i, cell in enumerate(cells):
        cid = category_ids[i % len(category_ids)] if category_ids else int(rng.choice(taxonomy.category_ids))
        cat = taxonomy.category(cid)
        r, c = divmod(int(cell), cols)
        bw = cell_w * rng.uniform(0.45, 0.85)
        bh = cell_h * rng.uniform(0.45, 0.85)
        x1 = c * cell_w + rng.uniform(0.05 * cell_w, cell_w - bw - 0.05 * cell_w)
        y1 = r * cell_h + rng.uniform(0.05 * cell_h, cell_h - bh - 0.05 * cell_h)
        jitter = rng.uniform(-0.02, 0.02, size=cat.template.shape)
        pts = np.clip(cat.template + jitter, 0, 1) * (bw, bh) + (x1, y1)
        vis = rng.choice([2, 1], size=len(pts), p=[0.8, 0.2]).astype(np.float64)
        hidden = rng.random(len(pts)) < hidden_fraction
        hidden[rng.integers(len(pts))] = False  # at least one labelled landmark
        landmarks = np.column_stack([pts, vis])
        landmarks[hidden] = 0.0
        box = np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])
        items.append(Item(cid, box, landmarks))
    return items


def stride_transform(image_size: tuple[int, int]) -> tuple[Affine, tuple[int, int]]:
    """Image → map affine and (H, W) map size for an image fed at its own size (multiple of 32 assumed)."""
    width, height = image_size
    return Affine.scale_translate(1.0 / OUTPUT_STRIDE), (height // OUTPUT_STRIDE, width // OUTPUT_STRIDE)


def heads_from_targets(targets: Targets, image_to_map: Affine, image_size: tuple[int, int]) -> RawHeads:
    """The heads a perfect network would output for these targets: the target heatmaps, and each
    regression written at the pixel where training supervises it."""
    num_classes, height, width = targets.hm.shape
    num_groups = targets.hm_hp.shape[0]
    reg = np.zeros((2, height * width), np.float32)
    wh = np.zeros((2, height * width), np.float32)
    hps = np.zeros((2 * num_groups, height * width), np.float32)
    hp_offset = np.zeros((2, height * width), np.float32)
    obj = np.flatnonzero(targets.reg_mask)
    reg[:, targets.ind[obj]] = targets.reg[obj].T
    wh[:, targets.ind[obj]] = targets.wh[obj].T
    for m in obj:
        labelled = np.flatnonzero(targets.hps_mask[m])
        hps[labelled, targets.ind[m]] = targets.hps[m, labelled]
    slots = np.flatnonzero(targets.hp_mask)
    hp_offset[:, targets.hp_ind[slots]] = targets.hp_offset[slots].T
    shape = (height, width)
    return RawHeads(
        hm=targets.hm.copy(),
        reg=reg.reshape(2, *shape),
        wh=wh.reshape(2, *shape),
        hps=hps.reshape(2 * num_groups, *shape),
        hm_hp=targets.hm_hp.copy(),
        hp_offset=hp_offset.reshape(2, *shape),
        image_to_map=image_to_map,
        image_size=image_size,
    )


def simulated_heads(
    items: list[Item],
    image_size: tuple[int, int],
    taxonomy: Taxonomy,
    grouping: Grouping,
    rng: np.random.Generator | None = None,
    noise: float = 0.0,
    regression_noise: float | None = None,
) -> RawHeads:
    """Perfect heads for ``items``, optionally degraded like a real network: heatmaps scaled to 0.9 with
    uniform background noise in [0, ``noise``) on every channel, and uniform ±``regression_noise`` map
    pixels (default ``noise``) on every regression head."""
    image_to_map, map_size = stride_transform(image_size)
    heads = heads_from_targets(encode_targets(items, image_to_map, map_size, taxonomy, grouping),
                               image_to_map, image_size)
    reg_noise = noise if regression_noise is None else regression_noise
    if noise <= 0 and reg_noise <= 0:
        return heads
    rng = rng or np.random.default_rng(0)

    def _heat(a):
        return np.clip(0.9 * a + rng.uniform(0, noise, a.shape).astype(np.float32), 0, 1)

    def _reg(a):
        return a + rng.uniform(-reg_noise, reg_noise, a.shape).astype(np.float32)

    return RawHeads(_heat(heads.hm), _reg(heads.reg), _reg(heads.wh), _reg(heads.hps), _heat(heads.hm_hp),
                    _reg(heads.hp_offset), heads.image_to_map, heads.image_size)


def write_simulated_dataset(
    folder: str | Path,
    count: int,
    taxonomy: Taxonomy,
    grouping: Grouping,
    seed: int = 0,
    image_size: tuple[int, int] = (256, 256),
    noise: float = 0.05,
    regression_noise: float = 1.5,
) -> tuple[dict[int, list[Item]], dict[int, RawHeads]]:
    """Write ``count`` labelled scenes as ``folder/annos/NNNNNN.json`` (DeepFashion2 format) and their
    simulated heads as ``folder/heads/NNNNNN.npz``; returns both, keyed by image id (1..count)."""
    from deepmark.core.formats.df2 import write_df2_annotation
    from deepmark.core.formats.heads_file import save_heads

    folder = Path(folder)
    (folder / "annos").mkdir(parents=True, exist_ok=True)
    (folder / "heads").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gt, heads = {}, {}
    for image_id in range(1, count + 1):
        items = random_scene(rng, taxonomy, image_size)
        h = simulated_heads(items, image_size, taxonomy, grouping, rng, noise, regression_noise)
        write_df2_annotation(folder / "annos" / f"{image_id:06d}.json", items, taxonomy, pair_id=image_id)
        save_heads(folder / "heads" / f"{image_id:06d}.npz", h, image_id, grouping.name)
        gt[image_id], heads[image_id] = items, h
    return gt, heads
