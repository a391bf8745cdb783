"""The post-processing ablation in the layout of DeepMark++ Table 1: mAP_pt, mAP_box and decode time for
the baseline, NMS, each technique alone and all combined, with parameters tuned on a separate split.

Every row is timed the same way: the heads check (shapes, finite values, heatmap range; once per image
whatever the setting) runs before any row is timed and is reported on its own, so no row pays it, and the
settings take turns on each image in a rotating order, so no row pays for coming first."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from deepmark.core.centernet.decode import decode_detections, validate_heads
from deepmark.core.domain.structures import Item, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.evaluation.evaluate import EvaluationResult, evaluate_detections
from deepmark.core.evaluation.tune import grid_search


@dataclass(frozen=True)
class AblationRow:
    """One row: the setting's name, its parameters, its metrics, its median decode time (ms/image, without the
    heads check) and the median heads check (ms/image, the same for every row)."""

    name: str
    params: PostprocessParams
    result: EvaluationResult
    decode_ms: float
    check_ms: float = 0.0


def tune_all_techniques(
    heads: Mapping[int, RawHeads],
    ground_truth: Mapping[int, Sequence[Item]],
    taxonomy: Taxonomy,
    grouping: Grouping,
    values: Sequence[float] | None = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> PostprocessParams:
    """All four techniques + NMS, tuned for mAP_pt as the paper's §4.1: a (σ_c, σ_k) grid, then α,
    then γ, each search starting from the best found so far."""
    params = PostprocessParams.all_techniques()
    for names in (("sigma_center", "sigma_keypoint"), ("alpha",), ("gamma",)):
        if progress:
            progress(f"tuning {', '.join(names)}")
        grid = None if values is None else [values] * len(names)
        params = grid_search(heads, ground_truth, names, taxonomy, grouping, base=params, values=grid,
                             workers=workers).best
    return params


def technique_settings(tuned: PostprocessParams) -> dict[str, PostprocessParams]:
    """The Table 1 rows, each technique alone at its tuned value."""
    base = PostprocessParams()
    return {
        "Baseline": base,
        "NMS": replace(base, nms=True, nms_iou=tuned.nms_iou),
        "Technique (1) center rescoring": replace(base, center_rescoring=True, alpha=tuned.alpha),
        "Technique (2) heatmap rescoring": replace(
            base, heatmap_rescoring=True, sigma_center=tuned.sigma_center, sigma_keypoint=tuned.sigma_keypoint
        ),
        "Technique (3) location refinement": replace(base, location_refinement=True, gamma=tuned.gamma),
        "Technique (4) keypoint rescoring": replace(base, keypoint_rescoring=True),
        "Combined": tuned,
    }


def ablation_table(
    heads: Mapping[int, RawHeads],
    ground_truth: Mapping[int, Sequence[Item]],
    settings: Mapping[str, PostprocessParams],
    taxonomy: Taxonomy,
    grouping: Grouping,
) -> list[AblationRow]:
    """Evaluate each setting on the images that have both heads and ground truth."""
    ids = sorted(set(heads) & set(ground_truth))
    checks = []
    for image_id in ids:  # checked once per heads object; timed here so that no row below pays it
        start = time.perf_counter()
        validate_heads(heads[image_id], taxonomy, grouping)
        checks.append((time.perf_counter() - start) * 1e3)
    check_ms = statistics.median(checks) if checks else 0.0
    # the settings take turns on each image, in a rotating order, so that whatever the first decode of an
    # image costs (its arrays brought into the CPU caches) falls on every setting alike
    names = list(settings)
    times: dict[str, list[float]] = {name: [] for name in names}
    detections: dict[str, dict[int, list]] = {name: {} for name in names}
    for k, image_id in enumerate(ids):
        for name in names[k % len(names):] + names[: k % len(names)]:
            start = time.perf_counter()
            detections[name][image_id] = decode_detections(heads[image_id], settings[name], taxonomy, grouping)
            times[name].append((time.perf_counter() - start) * 1e3)
    truth = {i: ground_truth[i] for i in ids}
    return [AblationRow(name, settings[name], evaluate_detections(truth, detections[name], taxonomy),
                        statistics.median(times[name]) if times[name] else 0.0, check_ms) for name in names]


def format_ablation(rows: Sequence[AblationRow]) -> str:
    """A Markdown table: setting, mAP_pt, mAP_box, decode ms/image; then the heads check's time."""
    lines = ["| Post-processing | mAP_pt | mAP_box | decode ms/image |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.name} | {row.result.map_pt:.3f} | {row.result.map_box:.3f} | {row.decode_ms:.2f} |")
    if rows:
        lines.append(f"\nDecode times leave out the heads check (shapes, finite values, heatmap range), "
                     f"{rows[0].check_ms:.2f} ms/image, paid once per image whatever the setting.")
    return "\n".join(lines)


def describe_params(params: PostprocessParams) -> str:
    return (f"α = {params.alpha:g}, σ_c = {params.sigma_center:g}, σ_k = {params.sigma_keypoint:g}, "
            f"γ = {params.gamma:g}, NMS IoU {params.nms_iou:g}")
