"""End-to-end detector speed (a script, not a test): pre-processing + inference + decode, images/s.

    .venv/bin/python bench/inference.py [--models M.onnx ...] [--images 60] [--threads 2]

Each model (default: the bundled ``models/*.onnx`` of ``deepmark.resources``) runs on real-sized synthetic
images (320×320 garments, letterboxed to the input size) at 256×256 and 512×512, batch 1, one after another
as the app and `deepmark predict` do. Reported: median milliseconds per stage and images/s over the whole
loop.
"""

from __future__ import annotations

import argparse
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=sorted(str(p) for p in resource_path("models").glob("*.onnx")
                                                             if "refiner" not in p.name))  # detectors only
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = [render_scene(rng, config=SynthConfig(image_size=(320, 320)))[0] for _ in range(args.images)]
    print("| model | input | pre ms | network ms | decode ms | images/s |")
    print("|---|---|---|---|---|---|")
    for path in args.models:
        detector = Detector(path, threads=args.threads)
        for size in (256, 512):
            params = PostprocessParams.all_techniques()
            run(detector, images[:5], size, params)  # warm-up
            r = run(detector, images, size, params)
            print(f"| {Path(path).name} ({detector.info.precision}) | {size}² | {r['pre']:.1f} | {r['net']:.1f} | "
                  f"{r['decode']:.1f} | {r['images_per_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
