"""End-to-end detector speed (a script, not a test): pre-processing + inference + decode, images/s.

    .venv/bin/python bench/inference.py [--models M.onnx ...] [--images 60] [--threads 2]
    .venv/bin/python bench/inference.py --arch hourglass104 --models M.onnx --sizes 512 --images 4 --warmup 1

Each model (default: the bundled ``models/*.onnx`` of ``deepmark.resources``) runs on real-sized synthetic
images (320×320 garments, letterboxed to the input size) at 256×256 and 512×512 (``--sizes``), batch 1, one
after another as the app and `deepmark predict` do. Reported: median milliseconds per stage and images/s
over the whole loop. ``--arch`` exports an architecture with random weights (``semantic62``, fp32) to a
temporary ONNX file and times that too (the speed of a network does not depend on its weights); with
``--arch``, only the ``--models`` named are timed beside it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import PostprocessParams, RawHeads
from deepmark.core.imaging.preprocess import image_to_map, letterbox_affine, to_network_input, warp_image
from deepmark.core.inference.detector import Detector
from deepmark.core.synthetic import SynthConfig, render_scene
from deepmark.core.util.resources import resource_path


def run(detector: Detector, images: list[np.ndarray], size: int, params: PostprocessParams) -> dict[str, float]:
    stages: dict[str, list[float]] = {"pre": [], "net": [], "decode": []}
    input_size = (size, size)
    start_all = time.perf_counter()
    for image in images:
        t0 = time.perf_counter()
        affine = letterbox_affine((image.shape[1], image.shape[0]), input_size)
        batch = to_network_input([warp_image(image, affine, input_size)])
        t1 = time.perf_counter()
        outputs = detector._backend.run(batch)
        t2 = time.perf_counter()
        heads = RawHeads(*(o[0] for o in outputs), image_to_map=image_to_map(affine),
                         image_size=(image.shape[1], image.shape[0]))
        decode_detections(heads, params, detector.taxonomy, detector.grouping)
        t3 = time.perf_counter()
        stages["pre"].append(t1 - t0)
        stages["net"].append(t2 - t1)
        stages["decode"].append(t3 - t2)
    total = time.perf_counter() - start_all
    out = {k: statistics.median(v) * 1e3 for k, v in stages.items()}
    out["images_per_s"] = len(images) / total
    return out


def export_random(arch: str, folder: Path) -> Path:
    """An fp32 ONNX file of ``arch`` with random weights (seed 0) and the ``semantic62`` heads."""
    import torch

    from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
    from deepmark.core.formats.model_file import model_info
    from deepmark.core.network import build_model
    from deepmark.core.training.export import export_onnx

    taxonomy = load_taxonomy()
    grouping = load_grouping("semantic62", taxonomy)
    torch.manual_seed(0)
    model = build_model(arch, grouping, taxonomy.num_classes).eval()
    size = (model.input_multiple, model.input_multiple)
    return export_onnx(model, model_info(arch, grouping, taxonomy, size), folder / f"{arch}-random.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help="ONNX models (default: the bundled detectors, unless --arch "
                                                     "is given)")
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="square input sides")
    parser.add_argument("--warmup", type=int, default=5, help="images run before timing, per size")
    parser.add_argument("--arch", nargs="+", default=[], help="also time these architectures (random weights)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = [render_scene(rng, config=SynthConfig(image_size=(320, 320)))[0] for _ in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        bundled = [] if args.arch else sorted(str(p) for p in resource_path("models").glob("*.onnx")
                                              if "refiner" not in p.name)  # detectors only
        models = (args.models or bundled) + [export_random(arch, Path(tmp)) for arch in args.arch]
        print("| model | input | pre ms | network ms | decode ms | images/s |")
        print("|---|---|---|---|---|---|")
        for path in models:
            report(Detector(path, threads=args.threads), Path(path).name, images, args.sizes, args.warmup)


def report(detector: Detector, name: str, images: list[np.ndarray], sizes: list[int], warmup: int) -> None:
    """One table row per input size."""
    for size in sizes:
        params = PostprocessParams.all_techniques()
        run(detector, images[:warmup], size, params)
        r = run(detector, images, size, params)
        print(f"| {name} ({detector.info.precision}) | {size}² | {r['pre']:.1f} | {r['net']:.1f} | "
              f"{r['decode']:.1f} | {r['images_per_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
