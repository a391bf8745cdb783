"""The refiner's accuracy gain (a script, not a test): mAP_pt / mAP_box with and without refinement.

    .venv/bin/python bench/refine_gain.py [--val data/synth-val] [--refiners R.onnx ...] [--cache runs/refine-gain]

The validation images are split as ``deepmark ablation`` splits them (``_split``: every 2nd image tunes, the
rest test); measured on the test half. The detector (default: the bundled one) decodes with its own stored
parameters (all four techniques + NMS), once without test-time augmentation and once with flip + the
paper's multi-scale (``TestTimeAugmentation(flip=True, scales=PAPER_SCALES)``); each refiner (default: the
bundled fp32 and int8) then refines those same detections. The detector's outputs are cached in ``--cache``
(keyed by the detector's sha256), so re-measuring a new refiner costs only the refinement.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from deepmark.core.cli.main import _split
from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator
from deepmark.core.formats.df2 import read_df2_annotations, read_predictions, write_results_json
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import PAPER_SCALES, Detector, TestTimeAugmentation, default_model_path
from deepmark.core.refinement.runner import Refiner
from deepmark.core.refinement.samples import collect_detections
from deepmark.core.store.predictions import file_sha256
from deepmark.core.store.presets import model_default_params
from deepmark.core.training.dataset import _image_index
from deepmark.core.util.resources import resource_path


def detections(detector: Detector, images: dict, tta: TestTimeAugmentation, cache: Path) -> dict:
    key = f"{file_sha256(detector.path)[:16]}-{tta.key()}-{len(images)}"
    path = cache / f"detections-{key}.json"
    if path.exists():
        found, _ = read_predictions(path)
        return {i: found.get(i, []) for i in images}
    found = collect_detections(detector, images, model_default_params(detector.info), tta, read_image)
    cache.mkdir(parents=True, exist_ok=True)
    write_results_json(path, found)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--val", default="data/synth-val")
    parser.add_argument("--detector", default=str(default_model_path()))
    parser.add_argument("--refiners", nargs="*", default=[str(resource_path("models", f"deepmark-refiner-{p}.onnx"))
                                                          for p in ("fp32", "int8")])
    parser.add_argument("--cache", default="runs/refine-gain")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--detect-only", action="store_true", help="only compute (and cache) the detections")
    args = parser.parse_args()
    gt, _ = read_df2_annotations(args.val)
    files = _image_index(Path(args.val) / "image")
    _, test_ids = _split(sorted(set(gt) & set(files)), 0.5)
    images = {i: files[i] for i in test_ids}
    evaluator = DeepFashion2Evaluator({i: gt[i] for i in test_ids})
    detector = Detector(args.detector, threads=args.threads)
    refiners = [] if args.detect_only else [Refiner(p, threads=args.threads) for p in args.refiners]
    pictures = {} if args.detect_only else {i: read_image(p) for i, p in images.items()}
    print(f"{len(test_ids)} test images of {args.val} (the half `deepmark ablation` does not tune on), "
          f"detector {Path(args.detector).name} with its stored parameters\n")
    print("| test-time augmentation | refiner | mAP_pt | mAP_box | gain mAP_pt | refine ms/image |")
    print("|---|---|---|---|---|---|")
    results = {}
    for name, tta in (("none", TestTimeAugmentation()), ("flip + multi-scale", TestTimeAugmentation(True,
                                                                                                     PAPER_SCALES))):
        dets = detections(detector, images, tta, Path(args.cache))
        if args.detect_only:
            continue
        base = evaluator.evaluate(dets)
        print(f"| {name} | — | {base.map_pt:.4f} | {base.map_box:.4f} | | |")
        for refiner in refiners:
            started = time.perf_counter()
            refined = {i: refiner.refine(pictures[i], d) for i, d in dets.items()}
            ms = (time.perf_counter() - started) * 1e3 / len(dets)
            result = evaluator.evaluate(refined)
            print(f"| {name} | {refiner.path.name} | {result.map_pt:.4f} | {result.map_box:.4f} | "
                  f"{result.map_pt - base.map_pt:+.4f} | {ms:.1f} |", flush=True)
            results[f"{name}/{refiner.path.name}"] = result.map_pt - base.map_pt
    if results:
        print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
