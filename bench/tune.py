"""Benchmark of ``deepmark.core.evaluation.tune.grid_search`` (a script, not a test).

    .venv/bin/python bench/tune.py [--images 100] [--workers 1 2] [--real ANNOS HEADS]

A 21 × 21 grid of (σ_c, σ_k) with all four techniques on, and a 21-point sweep of γ, over ``--images``
labelled images, with two kinds of heads:
- *simulated*: 64×64 heads (256² input; 1–5 garments each, heatmap noise up to 0.05, regressions off by up
  to ±1.5 map px);
- *model* (``--real ANNOS HEADS``): a real model's heads saved by ``deepmark predict --heads`` on labelled
  images (e.g. the synthetic validation set, seed 1), with their annotations: more and weaker peaks than
  the simulation, so every grid point costs more.
Prints wall time per run and the best parameters found.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.evaluation.tune import grid_search
from deepmark.core.synthetic.simulate import random_scene, simulated_heads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--real", nargs=2, metavar=("ANNOS", "HEADS"), help="also time a real model's heads")
    args = parser.parse_args()
    taxonomy, grouping = load_taxonomy(), None
    grouping = load_grouping("semantic62", taxonomy)
    rng = np.random.default_rng(0)
    gt, heads = {}, {}
    for image_id in range(1, args.images + 1):
        items = random_scene(rng, taxonomy, (256, 256))
        gt[image_id] = items
        heads[image_id] = simulated_heads(items, (256, 256), taxonomy, grouping, rng, noise=0.05,
                                          regression_noise=1.5)
    kinds = [("simulated", gt, heads)]
    if args.real:
        kinds.append(("model", *real_heads(args.real[0], args.real[1], args.images, taxonomy)))
    base = PostprocessParams.all_techniques()
    print("| heads | grid | images | workers | wall s | best |")
    print("|---|---|---|---|---|---|")
    for kind, kind_gt, kind_heads in kinds:
        for names in (["gamma"], ["sigma_center", "sigma_keypoint"]):
            for workers in args.workers:
                start = time.perf_counter()
                result = grid_search(kind_heads, kind_gt, names, taxonomy, grouping, base=base, workers=workers)
                wall = time.perf_counter() - start
                best = ", ".join(f"{k} {v:g}" for k, v in result.best_values().items())
                grid = " × ".join(str(len(v)) for v in result.values)
                print(f"| {kind} | {grid} ({', '.join(names)}) | {len(kind_heads)} | {workers} | {wall:.1f} | "
                      f"{best}: mAP_pt {result.best_result.map_pt:.3f} |", flush=True)


def real_heads(annotations: str, heads_dir: str, count: int, taxonomy) -> tuple[dict, dict]:
    """The first ``count`` images that have both saved heads and an annotation: ({id: items}, {id: heads})."""
    from deepmark.core.formats.df2 import read_df2_annotations
    from deepmark.core.formats.heads_file import load_heads

    gt, _ = read_df2_annotations(annotations, taxonomy)
    heads = {}
    for path in sorted(Path(heads_dir).glob("*.npz")):
        saved = load_heads(path)
        image_id = saved.image_id if saved.image_id >= 0 else int(path.stem)
        if image_id in gt:
            heads[image_id] = saved.heads
        if len(heads) == count:
            break
    return {i: gt[i] for i in heads}, heads


if __name__ == "__main__":
    main()
