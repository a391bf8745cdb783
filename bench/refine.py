"""Refiner speed (a script, not a test): milliseconds per garment, onnxruntime fp32 and int8.

    .venv/bin/python bench/refine.py [--refiner R.onnx] [--threads 2] [--batches 1 6] [--repeats 30]

Times (1) the given refiner (default: the bundled fp32 one) at its own crop size, and (2) the same
architecture exported at PoseFix's 256 × 192 (h × w; untrained weights: the time does not depend on them),
each in fp32 and static int8 (calibrated on the demo images' garments), at batch 1 and at a typical image's
batch (one run per image, all its garments together). Reported: median ms per run and per garment of the
network alone, and of the input preparation (crop + landmark rendering) per garment. Needs the training
extras (torch) for the 256 × 192 export.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import Detection
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.formats.df2 import read_df2_annotations
from deepmark.core.imaging.read import read_image
from deepmark.core.refinement.inputs import garment_batch
from deepmark.core.refinement.runner import Refiner
from deepmark.core.util.resources import resource_path

DEMO = resource_path("demo")


def demo_garments() -> list[tuple[np.ndarray, list[Detection]]]:
    """The demo images with their labelled garments as detections."""
    gt, _ = read_df2_annotations(DEMO)
    out = []
    for image_id, items in sorted(gt.items()):
        image = read_image(next(p for p in (DEMO / "image").iterdir() if p.stem == f"{image_id:06d}"))
        dets = [Detection(g.category_id, 1.0, 1.0, np.asarray(g.box, float),
                          np.concatenate([g.landmarks[:, :2], np.ones((len(g.landmarks), 1))], 1),
                          np.ones(len(g.landmarks), bool)) for g in items]
        out.append((image, dets))
    return out


def export_at(refiner_path: Path, crop_size: tuple[int, int], folder: Path) -> tuple[Path, Path]:
    """The refiner's architecture (untrained) exported at ``crop_size`` (W, H), fp32 and int8."""
    import torch

    from deepmark.core.network.checkpoint import save_checkpoint
    from deepmark.core.refinement.config import parse_refiner_config
    from deepmark.core.refinement.export import calibration_batches, export_refiner, quantize_refiner
    from deepmark.core.refinement.network import RefinerNet
    from deepmark.core.refinement.train import DetectorRun, RefinerState, checkpoint_payload

    info = Refiner(refiner_path).info
    net = (info.recipe.get("config") or {}).get("model", {"width_mult": 0.5, "up_channels": [96, 64, 48, 48],
                                                          "head_conv": 48})
    grouping = load_grouping(info.grouping_name, load_taxonomy())
    model = RefinerNet(grouping.num_groups, net["width_mult"], net["up_channels"], net["head_conv"])
    config = parse_refiner_config({"data": {"train": "x", "detector": "d.onnx", "crop_size": list(crop_size)}})
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    payload = checkpoint_payload(model, optimizer, scheduler, RefinerState(), config, grouping, {},
                                 DetectorRun("-", "-", False, (1.0,), {}))
    save_checkpoint(folder / "arch.pt", payload)
    fp32 = export_refiner(folder / "arch.pt", folder / "arch-fp32.onnx")
    int8 = quantize_refiner(fp32, folder / "arch-int8.onnx", calibration_batches(fp32, DEMO, 8))
    return fp32, int8


def time_refiner(path: Path, threads: int, batches: list[int], repeats: int, garments) -> list[str]:
    refiner = Refiner(path, threads=threads)
    rows = []
    image, dets = max(garments, key=lambda g: len(g[1]))
    pool = [d for _, ds in garments for d in ds]
    prep = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        garment_batch(image, dets, refiner.grouping, refiner.taxonomy, refiner.crop_size, refiner.info.normalisation)
        prep.append((time.perf_counter() - t0) * 1e3 / len(dets))
    for size in batches:
        chosen = (pool * size)[:size]
        batch = garment_batch(image, chosen, refiner.grouping, refiner.taxonomy, refiner.crop_size,
                              refiner.info.normalisation)
        refiner.run(batch)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            refiner.run(batch)
            times.append((time.perf_counter() - t0) * 1e3)
        run_ms = statistics.median(times)
        w, h = refiner.crop_size
        rows.append(f"| {path.name} | {refiner.info.precision} | {h}×{w} | {size} | {run_ms:.2f} | "
                    f"{run_ms / size:.2f} | {statistics.median(prep):.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refiner", default=str(resource_path("models", "deepmark-refiner-fp32.onnx")))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 6],
                        help="garments per run: 1 and a typical image's detections (6 by default)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    refiner = Path(args.refiner)
    garments = demo_garments()
    models = [refiner, refiner.with_name(refiner.name.replace("fp32", "int8"))]
    print(f"threads {args.threads}; batches {args.batches}; {args.repeats} runs each (median)\n")
    print("| model | precision | crop h×w | garments per run | ms per run | ms per garment | prep ms per garment |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        models += list(export_at(refiner, (192, 256), Path(tmp)))
        for path in models:
            if path.exists():
                for row in time_refiner(path, args.threads, args.batches, args.repeats, garments):
                    print(row, flush=True)


if __name__ == "__main__":
    main()
