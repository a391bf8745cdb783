"""Inference with an exported refiner: ``Refiner(path).refine(image, detections)`` (onnxruntime, no torch).

A refiner file is ONNX with two inputs, ``image`` (B, 3, H, W) float32 normalised crops and ``pose``
(B, G, H/2, W/2) float32 rendered landmarks, and two outputs, ``coords`` (B, G, 2) crop pixels and
``confidence`` (B, G). It describes itself under the ONNX metadata key ``deepmark-refiner`` (JSON, see
``RefinerInfo``): categories, grouping, crop size, normalisation, the detector it was trained behind
(file name and sha256), the detector's measured error statistics and the training recipe. Any file that is
not such a model — not ONNX, a detector, metadata missing or wrong, other inputs or outputs, a failing dry
run — is a ``RefinerFileError`` (a ``ModelFileError``) with one line naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import COLOR_ORDERS, Detection
from deepmark.core.domain.taxonomy import Grouping, Taxonomy, build_grouping, load_taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.formats.model_file import METADATA_KEY as DETECTOR_METADATA_KEY
from deepmark.core.formats.model_file import ModelFileError, read_onnx_graph
from deepmark.core.refinement.inputs import GarmentBatch, Normalisation, garment_batch, refined_detections
from deepmark.core.refinement.render import POSE_STRIDE

REFINER_METADATA_KEY = "deepmark-refiner"
REFINER_METADATA_VERSION = 1
INPUT_NAMES = ("image", "pose")
OUTPUT_NAMES = ("coords", "confidence")


class RefinerFileError(ModelFileError):
    """A refiner file is missing, not ONNX, not a refiner, or its metadata, inputs or outputs are wrong."""


@dataclass(frozen=True)
class RefinerInfo:
    """A refiner's self-description. ``crop_size`` (W, H) pixels; ``detector``: {"name", "sha256", "flip",
    "scales", "params"} of the detector run it learned the errors of; ``error_stats``: those errors
    (``errors.measure``); ``recipe``: its training configuration and result; ``use_confidence``: whether
    ``refine`` writes the network's confidence into the landmark score column; ``blend``: landmarks are
    blend · refined + (1 − blend) · detected (tuned on the validation images during training)."""

    grouping_name: str
    landmark_to_group: tuple[int, ...]
    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]
    crop_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    color_order: str = "RGB"
    pose_stride: int = POSE_STRIDE
    use_confidence: bool = False
    blend: float = 1.0
    precision: str = "fp32"
    detector: dict = field(default_factory=dict)
    error_stats: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)

    def to_json(self) -> str:
        data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        data["version"] = REFINER_METADATA_VERSION
        return json.dumps(data)

    def grouping(self, taxonomy: Taxonomy) -> Grouping:
        return build_grouping(self.grouping_name, list(self.landmark_to_group), taxonomy,
                              source=f"refiner grouping '{self.grouping_name}'")

    @property
    def normalisation(self) -> Normalisation:
        return Normalisation(self.mean, self.std, self.color_order)


def _numbers(value, count: int, low: float, high: float) -> bool:
    return (isinstance(value, list) and len(value) == count
            and all(isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high for v in value))


# every field: (check, required)
_CHECKS = {
    "grouping_name": (lambda v: isinstance(v, str) and bool(v), "non-empty text", True),
    "landmark_to_group": (lambda v: isinstance(v, list) and all(isinstance(x, int) for x in v), "a list of integers",
                          True),
    "category_ids": (lambda v: isinstance(v, list) and all(isinstance(x, int) for x in v), "a list of integers", True),
    "category_names": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of texts", True),
    "crop_size": (lambda v: _numbers(v, 2, 32, 4096) and all(isinstance(x, int) and x % 32 == 0 for x in v),
                  "two multiples of 32 (width, height)", True),
    "mean": (lambda v: _numbers(v, 3, 0.0, 1.0), "3 numbers in [0, 1]", True),
    "std": (lambda v: _numbers(v, 3, 1e-6, 1.0), "3 numbers in (0, 1]", True),
    "color_order": (lambda v: v in COLOR_ORDERS, f"one of {list(COLOR_ORDERS)}", False),
    "pose_stride": (lambda v: v == POSE_STRIDE, f"{POSE_STRIDE} (the only stride this version renders)", False),
    "use_confidence": (lambda v: isinstance(v, bool), "true or false", False),
    "blend": (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0.0 <= v <= 1.0,
              "a number in [0, 1]", False),
    "precision": (lambda v: isinstance(v, str), "text", False),
    "detector": (lambda v: isinstance(v, dict), "a JSON object", False),
    "error_stats": (lambda v: isinstance(v, dict), "a JSON object", False),
    "recipe": (lambda v: isinstance(v, dict), "a JSON object", False),
}


def parse_refiner_info(text: str, path: Path) -> RefinerInfo:
    """The RefinerInfo in metadata ``text``; RefinerFileError naming ``path`` and the first bad field."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RefinerFileError(f"{path}: refiner metadata is not JSON ({exc})", path=path) from None
    if not isinstance(data, dict) or data.get("version") != REFINER_METADATA_VERSION:
        raise RefinerFileError(f"{path}: refiner metadata is not version {REFINER_METADATA_VERSION}", path=path)
    unknown = sorted(set(data) - set(_CHECKS) - {"version"})
    if unknown:
        raise RefinerFileError(f"{path}: refiner metadata has unknown field '{unknown[0]}'", path=path)
    values = {}
    for name, (check, what, required) in _CHECKS.items():
        if name not in data:
            if required:
                raise RefinerFileError(f"{path}: refiner metadata lacks the field '{name}'", path=path)
            continue
        if not check(data[name]):
            raise RefinerFileError(f"{path}: refiner metadata field '{name}' must be {what}", path=path)
        values[name] = tuple(data[name]) if isinstance(data[name], list) else data[name]
    return RefinerInfo(**values)


def read_refiner_info(path: str | Path) -> RefinerInfo:
    """Read and check a refiner file's metadata and its graph's inputs and outputs (no session)."""
    path = Path(path)
    model = read_onnx_graph(path, RefinerFileError, "refiner")
    props = {p.key: p.value for p in model.metadata_props}
    if REFINER_METADATA_KEY not in props:
        if DETECTOR_METADATA_KEY in props:
            raise RefinerFileError(f"{path}: this is a detector model, not a landmark refiner (export one with "
                                   "`deepmark export-refiner`)", path=path)
        raise RefinerFileError(f"{path}: no refiner metadata (export it with `deepmark export-refiner`)", path=path)
    info = parse_refiner_info(props[REFINER_METADATA_KEY], path)
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(i.name for i in model.graph.input if i.name not in initializers)
    outputs = tuple(o.name for o in model.graph.output)
    if inputs != INPUT_NAMES or outputs != OUTPUT_NAMES:
        raise RefinerFileError(f"{path}: the graph's inputs {list(inputs)} and outputs {list(outputs)} are not a "
                               f"refiner's ({list(INPUT_NAMES)} → {list(OUTPUT_NAMES)})", path=path)
    return info


def other_detector(info: RefinerInfo, detector_path: str | Path) -> str | None:
    """Why the refiner may not fit a detector: "trained behind X, not Y" when it learned another detector file's
    errors (it still runs: the user chose both); None when it was trained behind this very file (or says not)."""
    from deepmark.core.store.predictions import file_sha256

    behind = info.detector
    if behind.get("sha256") and behind["sha256"] != file_sha256(detector_path):
        return (f"trained behind {behind.get('name')}, not {Path(detector_path).name}; its corrections may not fit "
                "this detector's errors")
    return None


class Refiner:
    """A loaded and checked refiner (see the module docstring). ``threads``: onnxruntime's intra-op threads
    (None: one per CPU). ``refine`` is a pure function of its inputs."""

    def __init__(self, path: str | Path, threads: int | None = None, taxonomy: Taxonomy | None = None) -> None:
        import onnxruntime as ort

        from deepmark.core.inference.detector import _one_line

        self.path = Path(path)
        self.info = read_refiner_info(self.path)
        self.taxonomy = taxonomy or load_taxonomy()
        if tuple(self.info.category_ids) != self.taxonomy.category_ids:
            raise RefinerFileError(f"{self.path}: refiner categories {list(self.info.category_ids)} do not match "
                                   f"the taxonomy's {list(self.taxonomy.category_ids)}", path=self.path)
        try:
            self.grouping = self.info.grouping(self.taxonomy)
        except DeepMarkError as exc:
            raise RefinerFileError(f"{self.path}: {exc}", path=self.path) from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the detector: leave the CPU
        options.log_severity_level = 4
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own Fail/InvalidGraph types
            raise RefinerFileError(f"{self.path}: onnxruntime cannot load the refiner ({_one_line(exc)})",
                                   path=self.path) from None
        self._dry_run()

    @property
    def crop_size(self) -> tuple[int, int]:
        return tuple(self.info.crop_size)

    def _dry_run(self) -> None:
        """Run two made-up garments; RefinerFileError naming the file when shapes or values are wrong."""
        w, h = self.crop_size
        g = self.grouping.num_groups
        image = np.zeros((2, 3, h, w), np.float32)
        pose = np.zeros((2, g, h // POSE_STRIDE, w // POSE_STRIDE), np.float32)
        try:
            coords, conf = self._session.run(list(OUTPUT_NAMES), {"image": image, "pose": pose})
        except Exception as exc:
            from deepmark.core.inference.detector import _one_line

            raise RefinerFileError(f"{self.path}: the refiner fails on a test input of 2 garments at {w}×{h} "
                                   f"({_one_line(exc)})", path=self.path) from None
        if np.shape(coords) != (2, g, 2) or np.shape(conf) != (2, g):
            raise RefinerFileError(f"{self.path}: the refiner's outputs have shapes {np.shape(coords)} and "
                                   f"{np.shape(conf)}, expected (2, {g}, 2) and (2, {g})", path=self.path)
        if not (np.isfinite(coords).all() and np.isfinite(conf).all()):
            raise RefinerFileError(f"{self.path}: the refiner gives NaN or infinite values on a test input",
                                   path=self.path)

    def run(self, batch: GarmentBatch) -> tuple[np.ndarray, np.ndarray]:
        """The network on a prepared batch: (coords (N, G, 2) crop pixels, confidence (N, G))."""
        coords, conf = self._session.run(list(OUTPUT_NAMES), {"image": batch.image, "pose": batch.pose})
        return coords, conf

    def refine(self, image: np.ndarray, detections: Sequence[Detection]) -> list[Detection]:
        """New detections with refined landmark x, y (image pixels); category, score, box_score, box and
        ``refined`` as given; landmark scores per ``info.use_confidence``. ``image`` (H, W, 3) uint8 RGB: the
        image the detections were decoded from. All detections of the image run as one batch."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DeepMarkError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        if not detections:
            return []
        batch = garment_batch(image, detections, self.grouping, self.taxonomy, self.crop_size,
                              self.info.normalisation)
        coords, conf = self.run(batch)
        if not (np.isfinite(coords).all() and np.isfinite(conf).all()):
            from deepmark.core.inference.detector import ModelOutputError

            raise ModelOutputError(f"the refiner {self.path.name} gives NaN or infinite values on this image")
        return refined_detections(detections, batch, coords, conf, self.info.use_confidence, self.info.blend)
