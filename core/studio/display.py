"""Qt-free helpers behind the desktop app (``app/``): opening work into a project and turning heatmaps into
displayable arrays. Kept here so the app holds only Qt wiring and
everything it shows can be tested without a display.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepmark.core.centernet.decode import nms_keep
from deepmark.core.centernet.peaks import smooth_heatmap
from deepmark.core.domain.structures import Affine, Detection, RawHeads
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import Project
from deepmark.core.store.engine import PROJECT_SUFFIX
from deepmark.core.store.interchange import ImportReport, import_df2, import_images
from deepmark.core.util.resources import resource_path

DEMO_DIR = ("demo",)


def demo_folder() -> Path:
    """The bundled demo images (DeepFashion2 layout: ``image/`` + ``annos/``)."""
    return resource_path(*DEMO_DIR)


def is_df2_folder(path: str | Path) -> bool:
    """True for a DeepFashion2 folder (``annos/`` + ``image/``), which is imported with its labels."""
    path = Path(path)
    if not path.is_dir():
        return False
    # also a folder of splits (train/, validation/...), as the project's own export writes
    return (path / "annos").is_dir() or any((p / "annos").is_dir() for p in path.iterdir() if p.is_dir())


def _merge(report: ImportReport, part: ImportReport) -> None:
    report.add({k: v for k, v in part.__dict__.items() if isinstance(v, int) and k != "model_run_id"})
    report.errors.extend(part.errors)
    report.model_run_id = part.model_run_id or report.model_run_id


def open_inputs(project: Project, inputs: list[str | Path],
                progress: Callable[[int, int], object] | None = None) -> ImportReport:
    """Add folders / image files to ``project``: DeepFashion2 folders with their labels, the rest as
    plain images. Re-opening the same inputs is idempotent (the importers skip known images), so an
    import stopped half-way (``progress`` raising) is finished by opening the same inputs again.
    ``progress(done, total)`` is called after each committed batch of each importer."""
    report = ImportReport()
    plain: list[str | Path] = []
    for entry in inputs:
        if is_df2_folder(entry):
            _merge(report, import_df2(project, entry, progress=progress))
        else:
            plain.append(entry)
    if plain:
        _merge(report, import_images(project, plain, progress=progress))
    return report


def open_demo_project(folder: str | Path | None = None) -> tuple[Project, ImportReport]:
    """A project holding the demo images with their labels. The project file lives in a fresh temporary
    folder (``folder`` when given) so the demo never touches a user's own projects; its root is the
    demo folder, so image paths are stored relative to it."""
    where = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="deepmark-demo-"))
    project = Project.open(where / f"demo{PROJECT_SUFFIX}", root=demo_folder(), create=True)
    try:
        return project, open_inputs(project, [demo_folder()])
    except BaseException:
        project.close()
        raise


@dataclass(frozen=True, eq=False)
class HeatmapView:
    """A heatmap to overlay: ``values`` (H, W) float32 in [0, 1] on the output map, and ``map_to_image``
    mapping map coordinates (x along columns, y along rows) to image pixels; map pixel (j, i) covers
    [j, j+1) × [i, i+1), as decoded positions are the integer pixel plus an offset in [0, 1)."""

    values: np.ndarray
    map_to_image: Affine


def heatmap_view(heads: RawHeads, source: str = "center", index: int | None = None, sigma: float = 0.0) -> HeatmapView:
    """The center heatmap (``source`` 'center': class ``index``, or the max over classes when None) or
    group heatmap ``index`` (``source`` 'group'), smoothed with σ as heatmap rescoring does (0: raw)."""
    if source == "center":
        heat = heads.hm if index is None else heads.hm[index : index + 1]
    elif source == "group":
        if index is None or not 0 <= index < heads.num_groups:
            raise DeepMarkError(f"group heatmap index must be in [0, {heads.num_groups}), got {index!r}")
        heat = heads.hm_hp[index : index + 1]
    else:
        raise DeepMarkError(f"heatmap source must be 'center' or 'group', got {source!r}")
    heat = smooth_heatmap(np.asarray(heat, np.float32), sigma)
    values = np.clip(heat.max(axis=0), 0.0, 1.0).astype(np.float32)
    return HeatmapView(values, heads.image_to_map.inverse())


def heat_lut() -> np.ndarray:
    """(256, 4) uint8 RGBA colour table: transparent dark blue at 0 through red to opaque yellow at 1, so
    low-scoring background does not hide the image."""
    anchors = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    colors = np.array([[0, 0, 80, 0], [40, 0, 160, 110], [200, 30, 90, 170], [250, 120, 0, 210],
                       [255, 240, 60, 235]], np.float64)
    t = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(t, anchors, colors[:, c]) for c in range(4)], axis=1).round().astype(np.uint8)


def colorize(values: np.ndarray, lut: np.ndarray | None = None) -> np.ndarray:
    """(H, W) values in [0, 1] → (H, W, 4) uint8 RGBA through a (256, 4) colour table (one lookup)."""
    lut = heat_lut() if lut is None else lut
    index = np.clip(np.nan_to_num(values) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(lut[index])


SAME_LOCATION_IOU = 0.7  # boxes overlapping this much are one garment seen as several classes


def best_per_location(detections: Sequence[Detection], iou: float = SAME_LOCATION_IOU) -> list[int]:
    """Indices of the detections to show when one location shows one class: at each place (boxes with IoU
    ≥ ``iou``, whatever their class) only the best-scoring one, best first."""
    if not detections:
        return []
    boxes = np.array([d.box for d in detections], np.float64)
    scores = np.array([d.score for d in detections], np.float64)
    return [int(i) for i in nms_keep(boxes, scores, np.zeros(len(detections), int), iou, per_class=False)]


def group_labels(taxonomy: Taxonomy, grouping: Grouping) -> list[str]:
    """A name per group heatmap: its first landmark's name and how many landmarks share the channel."""
    l2g = np.asarray(grouping.landmark_to_group)
    names = [n for c in taxonomy.categories for n in c.landmark_names]
    labels = []
    for g in range(grouping.num_groups):
        members = np.flatnonzero(l2g == g)
        first = names[members[0]] if len(members) else "empty"
        labels.append(f"{g}: {first}" + (f" (×{len(members)})" if len(members) > 1 else ""))
    return labels
