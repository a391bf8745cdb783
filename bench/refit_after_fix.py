"""Does "re-fit after a fix" save edits? A measurement (a script, not a test) behind the app's default.

    .venv/bin/python bench/refit_after_fix.py [--scenes 40] [--seed 3]

A simulated annotator corrects garments to within tolerance (every labelled landmark at KS ≥ 0.9 against the
label, ``keypoint_similarity`` of ``deepmark.core.studio.doubt``), one edit at a time: it drags the landmark
that is farthest off onto its label. With re-fit on, each drag is followed by the app's re-fit
(``deepmark.core.studio.assisted``: the landmarks neither moved by the annotator nor on a confident peak of
their group heatmap are re-placed on the category template fitted to those that are), as in the app.
Counted: the drags needed per garment, without and with re-fit.

Garments, with the bundled default model's heads (the app's parameters, ``model_default_params``):
- *demo*: the eight demo images (``resources/demo``, labels from its ``annos``);
- *scenes*: rendered synthetic scenes (``render_scene``, 256², seed ``--seed``: neither the model's training
  set, seed 0, nor its validation set, seed 1).
Two starts per labelled garment: (a) *prediction*: the model's detection of that category overlapping the
label most (IoU ≥ 0.5) taken as it is (landmarks the model only regressed are occluded, as accepting does);
(b) *box*: the garment's box drawn by hand and its category chosen (``prompted_item``: heatmap peaks, template
elsewhere). Landmarks the label leaves unlabelled (v 0) are neither counted nor moved by the annotator.
"""

from __future__ import annotations

import argparse

import numpy as np

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.taxonomy import load_taxonomy
from deepmark.core.studio.assisted import peak_backed, prompted_item, refit_others
from deepmark.core.studio.doubt import keypoint_similarity
from deepmark.core.studio.templates import box_ious, prediction_landmarks

TAXONOMY = load_taxonomy()
KS_TOLERANCE = 0.9


def demo_set(detector):
    """[(labels, heads)] of the demo images."""
    from deepmark.core.formats.df2 import read_df2_annotations
    from deepmark.core.imaging.read import read_image
    from deepmark.core.studio.display import demo_folder

    folder = demo_folder()
    labels, _ = read_df2_annotations(folder / "annos", TAXONOMY)
    out = []
    for path in sorted((folder / "image").glob("*.jpg")):
        out.append((labels.get(int(path.stem), []), detector.heads(read_image(path))))
    return out


def scene_set(detector, count: int, seed: int):
    """[(labels, heads)] of rendered synthetic scenes."""
    from deepmark.core.synthetic.config import SynthConfig
    from deepmark.core.synthetic.scene import render_scene

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        image, items = render_scene(rng, TAXONOMY, SynthConfig(image_size=(256, 256)))
        out.append(([s.item for s in items], detector.heads(image)))
    return out


def drags_needed(label, landmarks: np.ndarray, heads, grouping, params, refit: bool) -> int:
    """Drags until every labelled landmark is within tolerance (at most one per landmark: a dragged landmark is
    on its label and stays there)."""
    category = TAXONOMY.category(label.category_id)
    labelled = label.landmarks[:, 2] > 0
    area = float(np.prod(label.box[2:] - label.box[:2]))
    points = landmarks.copy()
    backed = peak_backed(heads, grouping, TAXONOMY, label.category_id, points, label.box, params)
    moved = np.zeros(len(points), bool)
    for drags in range(int(labelled.sum()) + 1):
        ks = keypoint_similarity(label.landmarks[:, :2], points[:, :2], category.oks_sigmas, area)
        off = labelled & (ks < KS_TOLERANCE) & ~moved
        if not off.any():
            return drags
        worst = int(np.argmin(np.where(off, ks, np.inf)))
        points[worst, :2] = label.landmarks[worst, :2]
        points[worst, 2] = max(points[worst, 2], 1)
        moved[worst] = True
        if refit:
            points, _ = refit_others(category, points, moved | backed)
    return int(labelled.sum())


def run(images, detector, params) -> dict[str, list[tuple[int, int]]]:
    grouping = detector.grouping
    out: dict[str, list[tuple[int, int]]] = {"prediction": [], "box": []}
    for labels, heads in images:
        detections = decode_detections(heads, params, TAXONOMY, grouping)
        for label in labels:
            category = TAXONOMY.category(label.category_id)
            same = [d for d in detections if d.category_id == label.category_id]
            if same:
                ious = box_ious(label.box, np.stack([d.box for d in same]))
                if ious.max() >= 0.5:
                    start = prediction_landmarks(same[int(np.argmax(ious))])
                    out["prediction"].append(tuple(drags_needed(label, start, heads, grouping, params, refit)
                                                   for refit in (False, True)))
            drawn = prompted_item(heads, label.box, category, params, TAXONOMY, grouping)
            out["box"].append(tuple(drags_needed(label, drawn.landmarks, heads, grouping, params, refit)
                                    for refit in (False, True)))
    return out


def report(name: str, results: dict[str, list[tuple[int, int]]]) -> None:
    for start, pairs in results.items():
        if not pairs:
            continue
        plain, refit = np.array(pairs, float).T
        better, worse = int((refit < plain).sum()), int((refit > plain).sum())
        change = 100.0 * (refit.sum() - plain.sum()) / max(plain.sum(), 1.0)
        print(f"| {name} | {start} | {len(pairs)} | {plain.mean():.2f} | {refit.mean():.2f} | {change:+.0f} % | "
              f"{better} / {worse} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    from deepmark.core.inference.detector import Detector
    from deepmark.core.store.presets import model_default_params

    detector = Detector(threads=1)
    params = model_default_params(detector.info)
    print("| images | start | garments | drags per garment, plain | with re-fit | change | garments better / worse |")
    print("|---|---|---|---|---|---|---|")
    report("demo (8)", run(demo_set(detector), detector, params))
    if args.scenes:
        report(f"scenes ({args.scenes})", run(scene_set(detector, args.scenes, args.seed), detector, params))


if __name__ == "__main__":
    main()
