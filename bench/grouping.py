"""Keypoint-grouping benchmark (a script, not a test), like DeepMark++ Figure 4 / Figure 12.

    .venv/bin/python bench/grouping.py [--arch mobilenetv2] [--batch 8] [--size 256] [--steps 10]

For the groupings `none` (294 channels, 901 outputs), `agg81` and `semantic62` (205 outputs), same
backbone and batch: median time of one training step (forward + losses + backward + Adam step) on the
CPU, the growth of peak resident memory during those steps (activations, gradients, optimizer state —
what a GPU's memory would hold), and onnxruntime inference time of the
exported model (batch 1). Each grouping runs in its own subprocess so peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(arch: str, grouping_name: str, batch: int, size: int, steps: int) -> dict:
    import numpy as np
    import torch

    from deepmark.core.centernet.encode import encode_targets
    from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
    from deepmark.core.formats.model_file import model_info
    from deepmark.core.inference.detector import Detector
    from deepmark.core.network import build_model
    from deepmark.core.synthetic.simulate import random_scene, stride_transform
    from deepmark.core.training.export import export_onnx
    from deepmark.core.training.losses import centernet_loss

    torch.manual_seed(0)
    taxonomy = load_taxonomy()
    grouping = load_grouping(grouping_name, taxonomy)
    model = build_model(arch, grouping)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    affine, map_size = stride_transform((size, size))
    targets = [encode_targets(random_scene(rng, taxonomy, (size, size)), affine, map_size, taxonomy, grouping).arrays()
               for _ in range(batch)]
    batch_t = {k: torch.from_numpy(np.stack([t[k] for t in targets])) for k in targets[0]}
    images = torch.randn(batch, 3, size, size)
    # Peak RSS before the steps covers imports, model and data; the steps' own peak is what grows past it.
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        loss, _ = centernet_loss(model(images), batch_t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export_onnx(model.eval(), model_info(arch, grouping, taxonomy, (size, size)), path)
        detector = Detector(path, threads=2)
        x = np.random.default_rng(1).normal(size=(1, 3, size, size)).astype(np.float32)
        infer = []
        for _ in range(12):
            start = time.perf_counter()
            detector._backend.run(x)
            infer.append(time.perf_counter() - start)
    return {"grouping": grouping_name, "outputs": grouping.total_channels(),
            "step_ms": statistics.median(times[2:]) * 1e3, "peak_mb": peak_mb,
            "infer_ms": statistics.median(infer[2:]) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="mobilenetv2")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one grouping, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.arch, args.one, args.batch, args.size, args.steps)))
        return
    rows = []
    for name in ("none", "agg81", "semantic62"):
        done = subprocess.run([sys.executable, __file__, "--one", name, "--arch", args.arch, "--batch",
                               str(args.batch), "--size", str(args.size), "--steps", str(args.steps)],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = rows[0]
    print(f"# {args.arch}, batch {args.batch}, {args.size}², CPU")
    print("| grouping | outputs | train step ms | vs none | training memory MB | vs none | inference ms | vs none |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['grouping']} | {r['outputs']} | {r['step_ms']:.0f} | {r['step_ms'] / base['step_ms'] - 1:+.0%} | "
              f"{r['peak_mb']:.0f} | {r['peak_mb'] / base['peak_mb'] - 1:+.0%} | {r['infer_ms']:.1f} | "
              f"{r['infer_ms'] / base['infer_ms'] - 1:+.0%} |")


if __name__ == "__main__":
    main()
