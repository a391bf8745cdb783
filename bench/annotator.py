"""The simulated annotator of issue 14 (a script, not a test): edits per garment with and without the assists,
how much of the work the uncertainty order finds early, and how well the likely-mistakes view finds injected
label errors — on a synthetic validation set with ground truth and the default model's cached heads.

    .venv/bin/python bench/annotator.py [--data DIR] [--heads DIR] [--images 300] [--hands 0 1 2]
        [--write-corrected OUT]

``--data``: a DeepFashion2-layout folder (``annos/``, ``image/``); when it has no annotations, ``--images``
synthetic images of seed 1 (the validation seed) are rendered into it. ``--heads``: the model's raw heads
(``deepmark predict --heads`` layout, ``NNNNNN.npz``); when it has none they are computed here with the bundled
``deepmark-default-fp32.onnx``. Predictions are decoded with the post-processing the heads' model recommends
(what the app decodes with), else all four techniques at the paper's values.

The edit model is ``deepmark.core.studio.annotator``'s. Review order and likely mistakes are reported on the
two halves of the set: the first half (ids 1..n/2) was used to choose the doubt scores' changes, the second
half is the held-out report. ``--write-corrected OUT`` writes what the annotator stores after correcting every
image with all assists (``simulate_correction``) as ``OUT/annos/NNNNNN.json`` with the images linked into
``OUT/image/``: a labelled set for the retrain loop.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.formats.df2 import read_df2_annotations, write_df2_annotation
from deepmark.core.formats.heads_file import load_heads
from deepmark.core.studio.annotator import (
    ALL_ASSISTS,
    DRAG_NOISE,
    ERROR_KINDS,
    MODES,
    PLAIN,
    SNAP_RADIUS,
    EditCount,
    correct_image,
    found_share,
    inject_errors,
    match_garments,
    order_gain,
    random_share,
    simulate_correction,
    tolerance_radius,
    top_n_precision,
    top_n_recall,
)
from deepmark.core.studio.doubt import image_uncertainty, label_mistakes

TAXONOMY = load_taxonomy()
GROUPING = load_grouping("semantic62", TAXONOMY)
VALIDATION_SEED = 1
ERROR_RATE = 0.1
MISTAKE_SEEDS = (1, 2, 3, 4, 5)
MISTAKES_THRESHOLD = 0.05  # the mistakes view compares labels with weak predictions too


def ensure_data(data: Path, count: int) -> None:
    """Render the synthetic validation set into ``data`` unless it holds annotations already."""
    if any((data / "annos").glob("*.json")):
        return
    from deepmark.core.synthetic.dataset import generate_dataset

    start = time.perf_counter()
    generate_dataset(data, count, seed=VALIDATION_SEED, workers=min(2, os.cpu_count() or 1))
    print(f"rendered {count} synthetic images (seed {VALIDATION_SEED}) into {data} in "
          f"{time.perf_counter() - start:.0f} s")


def ensure_heads(data: Path, heads: Path) -> None:
    """Compute the default fp32 model's heads of ``data``'s images into ``heads`` unless it holds some."""
    if any(heads.glob("*.npz")):
        return
    from deepmark.core.inference.detector import Detector
    from deepmark.core.inference.predict import predict_images
    from deepmark.core.store.presets import model_default_params
    from deepmark.core.util.resources import resource_path

    if heads.name != "heads":
        raise SystemExit(f"--heads must be a folder named heads to compute them (predict writes OUT/heads): {heads}")
    start = time.perf_counter()
    detector = Detector(resource_path("models", "deepmark-default-fp32.onnx"))
    images = sorted((data / "image").glob("*.jpg"))
    summary = predict_images(images, heads.parent, detector, model_default_params(detector.info), save_raw_heads=True)
    print(f"computed the heads of {len(summary.written)} images into {heads} in {time.perf_counter() - start:.0f} s")


def mirror_heads(data: Path, ids) -> dict:
    """{image id: the mirrored image's heads mapped back to the image} from the bundled fp32 model: what the
    app caches beside the flip test's average (``Detector.heads_and_mirror``), for the doubt's flip term."""
    from deepmark.core.imaging.read import read_image
    from deepmark.core.inference.detector import Detector, TestTimeAugmentation
    from deepmark.core.util.resources import resource_path

    start = time.perf_counter()
    detector = Detector(resource_path("models", "deepmark-default-fp32.onnx"))
    flip = TestTimeAugmentation(flip=True)
    out = {i: detector.heads_and_mirror(read_image(data / "image" / f"{i:06d}.jpg"), flip)[1] for i in ids}
    print(f"computed the mirrored heads of {len(out)} images in {time.perf_counter() - start:.0f} s")
    return out


def load_set(data: Path, heads_dir: Path, count: int):
    """{image id: (labels, heads, params)} for the first ``count`` labelled images with heads."""
    labels, skipped = read_df2_annotations(data / "annos", TAXONOMY)
    if skipped:
        raise SystemExit("\n".join(str(e) for e in skipped))
    out = {}
    for image_id in sorted(labels)[:count]:
        saved = load_heads(heads_dir / f"{image_id:06d}.npz")
        params = PostprocessParams.all_techniques()
        if saved.model_params:
            params = PostprocessParams.from_mapping(saved.model_params, params)
        out[image_id] = (labels[image_id], saved.heads, params)
    return out


def edits_by_mode(images, detections, hand: int, noise: float, modes=MODES) -> dict[str, EditCount]:
    out = {}
    for mode in modes:
        total = EditCount()
        for image_id, (labels, heads, params) in images.items():
            total = total + correct_image(labels, detections[image_id], TAXONOMY, mode, heads, params, GROUPING,
                                          hand, image_id, noise).edits
        out[mode.name] = total
    return out


def edits_section(images, detections, hands) -> list[EditCount]:
    """(a): edits per garment per mode, each hand seed; the kinds for the first; noise sensitivity."""
    start = time.perf_counter()
    runs = [edits_by_mode(images, detections, hand, DRAG_NOISE) for hand in hands]
    print(f"\n### (a) Edits per garment ({len(images)} images, {runs[0]['plain'].garments} garments; hand seeds "
          f"{', '.join(map(str, hands))}; drag noise {DRAG_NOISE * np.sqrt(2):.1f} px RMS, snap radius "
          f"{SNAP_RADIUS:g} px)\n")
    print("| mode | edits / garment | vs plain | drags | visibility keys | category keys | boxes | deletes |")
    print("|---|---|---|---|---|---|---|---|")
    plain = np.mean([r["plain"].total / r["plain"].garments for r in runs])
    for name in runs[0]:
        per = [r[name].total / r[name].garments for r in runs]
        first = runs[0][name]
        spread = f" ({min(per):.2f}–{max(per):.2f})" if len(per) > 1 else ""
        print(f"| {name} | {np.mean(per):.2f}{spread} | {100 * (np.mean(per) / plain - 1):+.1f} % | {first.drags} | "
              f"{first.visibility} | {first.category} | {first.boxes} | {first.deletes} |")
    print("\nDrag noise (hand seed 0): edits per garment, plain → all assists")
    for rms in (1.0, 3.0):
        r = edits_by_mode(images, detections, hands[0], rms / np.sqrt(2), (PLAIN, ALL_ASSISTS))
        a, b = (r[m.name].total / r[m.name].garments for m in (PLAIN, ALL_ASSISTS))
        print(f"- {rms:g} px RMS: {a:.2f} → {b:.2f} ({100 * (b / a - 1):+.1f} %)")
    print(f"\n(a) took {time.perf_counter() - start:.0f} s")
    return [r["plain"] for r in runs]


def why_section(images, detections, plain: EditCount) -> None:
    """What the assists can act on: tolerances, the model's error, where a snap would land, and the fewest
    edits any use of these assists could leave (``plain``: hand seed 0's plain count)."""
    from deepmark.core.centernet.assist import snap_to_peak

    radius, error, confident, snapped = [], [], [], []
    for image_id, (labels, heads, _) in images.items():
        dets = detections[image_id]
        for item, m in zip(labels, match_garments(labels, dets), strict=True):
            if m is None or dets[m].category_id != item.category_id:
                continue
            category = TAXONOMY.category(item.category_id)
            labelled = item.landmarks[:, 2] > 0
            r = tolerance_radius(item, category)
            radius += list(r[labelled])
            error += list(np.hypot(*(dets[m].landmarks[:, :2] - item.landmarks[:, :2]).T)[labelled])
            confident += list(np.asarray(dets[m].refined)[labelled])
            groups = GROUPING.category_groups[TAXONOMY.category_index(category.id)]
            for i in np.flatnonzero(labelled):
                s = snap_to_peak(heads, int(groups[i]), item.landmarks[i, :2], SNAP_RADIUS)
                snapped.append(s is not None and np.hypot(*(s[0] - item.landmarks[i, :2])) <= r[i])
    radius, error, confident = np.array(radius), np.array(error), np.array(confident, bool)
    out = error > radius
    print("\nWhat the assists can act on (labelled landmarks of garments detected with the right category):")
    print(f"- tolerance radius (KS 0.9) median {np.median(radius):.1f} px (10–90 %: {np.percentile(radius, 10):.1f}–"
          f"{np.percentile(radius, 90):.1f}); model's landmark error median {np.median(error):.1f} px")
    print(f"- out of tolerance: {100 * out.mean():.0f} % — {100 * out[confident].mean():.0f} % of the "
          f"{100 * confident.mean():.0f} % placed by a peak, {100 * out[~confident].mean():.0f} % of the rest")
    print(f"- a snap from the true position lands within tolerance for {100 * np.mean(snapped):.0f} %")
    # a landmark a peak placed out of tolerance needs its own drag whatever the assists (re-fit never moves
    # it, a snap only makes the drag land); deletes, keys and boxes no assist here changes
    floor = plain.total - plain.drags + int(out[confident].sum())
    print(f"- floor for these assists: the {int(out[confident].sum())} peak-placed landmarks out of tolerance "
          f"(one drag each) + {plain.total - plain.drags} deletes, keys and boxes = {floor / plain.garments:.2f} "
          f"edits / garment, {100 * (1 - floor / plain.total):.0f} % below plain at most")


def order_section(images, detections, hand: int, mirrors: dict | None = None) -> None:
    """(b): the share of all edits in the first 20 % of images, uncertainty vs random vs perfect; with
    ``mirrors`` (image id → mirrored heads) the score's flip term counts too."""
    start = time.perf_counter()
    ids = list(images)
    edits = np.array([correct_image(images[i][0], detections[i], TAXONOMY, PLAIN, seed=hand, image=i).edits.total
                      for i in ids], np.float64)
    score = np.array([image_uncertainty(images[i][1], images[i][2], TAXONOMY, GROUPING,
                                        flipped=None if mirrors is None else mirrors[i]).score for i in ids])
    half = len(ids) // 2
    flip = "with" if mirrors is not None else "without"
    print(f"\n### (b) Edits found in the first 20 % of images (plain edits per image; score {flip} the flip term)\n")
    print("| images | uncertainty | random (mean of 1000) | perfect | uncertainty / random | perfect / random "
          "| share of the perfect order's gain |")
    print("|---|---|---|---|---|---|---|")
    for name, part in ((f"1–{half} (tuning half)", slice(0, half)), (f"{half + 1}–{len(ids)} (held out)",
                                                                      slice(half, None)), ("all", slice(None))):
        e, s = edits[part], score[part]
        order = np.argsort(-s, kind="stable")
        u, r = found_share(e, order), random_share(e)
        p = found_share(e, np.argsort(-e, kind="stable"))
        print(f"| {name} | {u:.3f} | {r:.3f} | {p:.3f} | {u / r:.2f}× | {p / r:.2f}× | {order_gain(e, order):.2f} |")
    print(f"\n(b) took {time.perf_counter() - start:.0f} s")


def mistakes_section(images) -> None:
    """(c): injected label errors in the likely-mistakes view's top N = 2 × injected."""
    start = time.perf_counter()
    low = {i: decode_detections(h, replace(p, score_threshold=MISTAKES_THRESHOLD), TAXONOMY, GROUPING)
           for i, (_, h, p) in images.items()}
    ids = list(images)
    half = len(ids) // 2
    print(f"\n### (c) Likely mistakes: {100 * ERROR_RATE:.0f} % of the labels given one error, seeds "
          f"{', '.join(map(str, MISTAKE_SEEDS))}\n")
    print("| images | injected (mean) | in top 2N: per seed | mean | worst | precision in top N | found by kind |")
    print("|---|---|---|---|---|---|---|")
    for name, part in ((f"1–{half} (tuning half)", ids[:half]), (f"{half + 1}–{len(ids)} (held out)", ids[half:])):
        recall, precision, injected_counts = [], [], []
        found = dict.fromkeys(ERROR_KINDS, 0)
        total = dict.fromkeys(ERROR_KINDS, 0)
        for seed in MISTAKE_SEEDS:
            truth = {i: images[i][0] for i in part}
            altered, flags = inject_errors(truth, ERROR_RATE, np.random.default_rng(seed), TAXONOMY)
            scores, injected, kinds = [], [], []
            for i in part:
                scores += [d.score for d in label_mistakes(altered[i], low[i], TAXONOMY)]
                injected += list(flags[i])
                kinds += [_kind(a, b) if f else None for a, b, f in zip(altered[i], truth[i], flags[i], strict=True)]
            scores, injected = np.array(scores), np.array(injected, bool)
            recall.append(top_n_recall(scores, injected))
            precision.append(top_n_precision(scores, injected))
            injected_counts.append(int(injected.sum()))
            top = set(np.argsort(-scores, kind="stable")[: 2 * int(injected.sum())].tolist())
            for j, kind in enumerate(kinds):
                if kind is not None:
                    total[kind] += 1
                    found[kind] += j in top
        by_kind = ", ".join(f"{k} {found[k]}/{total[k]}" for k in ERROR_KINDS)
        print(f"| {name} | {np.mean(injected_counts):.0f} | {' '.join(f'{r:.2f}' for r in recall)} | "
              f"{np.mean(recall):.3f} | {min(recall):.3f} | {np.mean(precision):.3f} | {by_kind} |")
    print(f"\n(c) took {time.perf_counter() - start:.0f} s")


def _kind(altered, truth) -> str:
    if altered.category_id != truth.category_id:
        return "category"
    changed = np.hypot(*(altered.landmarks[:, :2] - truth.landmarks[:, :2]).T) > 1e-9
    return "moved" if changed.sum() == 1 else "swapped"


def write_corrected(images, detections, data: Path, out: Path) -> None:
    """What the annotator stores after correcting every image with all assists, as a DeepFashion2 folder."""
    stored = simulate_correction(detections, {i: v[0] for i, v in images.items()}, TAXONOMY, ALL_ASSISTS,
                                 {i: v[1] for i, v in images.items()}, images[next(iter(images))][2], GROUPING,
                                 image_sizes={i: tuple(v[1].image_size) for i, v in images.items()})
    (out / "image").mkdir(parents=True, exist_ok=True)
    for image_id, items in stored.items():
        write_df2_annotation(out / "annos" / f"{image_id:06d}.json", items, TAXONOMY, pair_id=image_id)
        source = data / "image" / f"{image_id:06d}.jpg"
        link = out / "image" / source.name
        if source.exists() and not link.exists():
            link.symlink_to(source.resolve())
    print(f"\nwrote the corrected labels of {len(stored)} images to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("runs/annotator/val300"))
    parser.add_argument("--heads", type=Path, default=Path("runs/annotator/val300-fp32/heads"))
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--hands", type=int, nargs="+", default=[0, 1, 2], help="seeds of the annotator's hand")
    parser.add_argument("--write-corrected", type=Path, metavar="OUT", help="the retrain loop's labelled set")
    parser.add_argument("--flip", action="store_true", help="(b) also with the doubt's flip term (mirrored heads)")
    parser.add_argument("--only-order", action="store_true", help="run (b) alone")
    args = parser.parse_args()
    start = time.perf_counter()
    ensure_data(args.data, args.images)
    ensure_heads(args.data, args.heads)
    images = load_set(args.data, args.heads, args.images)
    detections = {i: decode_detections(h, p, TAXONOMY, GROUPING) for i, (_, h, p) in images.items()}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}; {len(images)} images of {args.data}, heads {args.heads}")
    if args.write_corrected:
        write_corrected(images, detections, args.data, args.write_corrected)
        return
    if not args.only_order:
        plain = edits_section(images, detections, args.hands)
        why_section(images, detections, plain[0])
    order_section(images, detections, args.hands[0])
    if args.flip:
        order_section(images, detections, args.hands[0], mirror_heads(args.data, list(images)))
    if not args.only_order:
        mistakes_section(images)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
