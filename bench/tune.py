"""Benchmark of ``deepmark.core.evaluation.tune.grid_search`` (a script, not a test).

    .venv/bin/python bench/tune.py [--images 100] [--workers 1 2]

A 21 × 21 grid of (σ_c, σ_k) with all four techniques on, and a 21-point sweep of γ, over ``--images``
labelled images with simulated 64×64 heads (256² input; 1–5 garments each, heatmap noise up to 0.05,
regressions off by up to ±1.5 map px). Prints wall time per run and the best parameters found.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.evaluation.tune import grid_search
from deepmark.core.synthetic.simulate import random_scene, simulated_heads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
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
    base = PostprocessParams.all_techniques()
    print("| grid | images | workers | wall s | best |")
    print("|---|---|---|---|---|")
    for names in (["gamma"], ["sigma_center", "sigma_keypoint"]):
        for workers in args.workers:
            start = time.perf_counter()
            result = grid_search(heads, gt, names, taxonomy, grouping, base=base, workers=workers)
            wall = time.perf_counter() - start
            best = ", ".join(f"{k} {v:g}" for k, v in result.best_values().items())
            grid = " × ".join(str(len(v)) for v in result.values)
            print(f"| {grid} ({', '.join(names)}) | {args.images} | {workers} | {wall:.1f} | {best}: "
                  f"mAP_pt {result.best_result.map_pt:.3f} |", flush=True)


if __name__ == "__main__":
    main()
