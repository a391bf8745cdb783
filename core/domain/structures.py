"""Small typed values shared by every part of ``core``: items, detections, raw heads, parameters."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Protocol, get_type_hints

import numpy as np

from deepmark.core.errors import DecodeError, path_of

HEAD_NAMES = ("hm", "reg", "wh", "hps", "hm_hp", "hp_offset")
HEATMAP_HEADS = ("hm", "hm_hp")  # the heads a model outputs after a sigmoid: values in [0, 1]
OUTPUT_STRIDE = 4
# DeepFashion2's landmark visibility v, the one table of its values and names
VISIBILITY_NAMES = {2: "visible", 1: "occluded", 0: "not present"}
VISIBILITIES = (0, 1, 2)
NORMALIZE_MEAN = (0.485, 0.456, 0.406)  # RGB, on [0, 1] pixel values (torchvision ImageNet): the models' default
NORMALIZE_STD = (0.229, 0.224, 0.225)
COLOR_ORDERS = ("RGB", "BGR")  # the channel orders a model may take its input in (the models' default: RGB)


@dataclass(frozen=True, eq=False)
class Item:
    """A ground-truth garment.

    ``box`` (4,) float64 xyxy in image pixels; ``landmarks`` (L, 3) float64 with x, y in image pixels
    and visibility v (2 visible, 1 occluded, 0 not labelled), L being the category's landmark count.
    """

    category_id: int
    box: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True, eq=False)
class Detection:
    """A decoded garment.

    ``box`` (4,) float64 xyxy in image pixels; ``score`` the final confidence in [0, 1] and
    ``box_score`` the center-heatmap score before center rescoring; ``landmarks`` (L, 3) float64 with
    x, y in image pixels and the landmark score in [0, 1] (0 when no heatmap peak was accepted);
    ``refined`` (L,) bool, True where a heatmap peak refined the regressed (coarse) position.
    """

    category_id: int
    score: float
    box_score: float
    box: np.ndarray
    landmarks: np.ndarray
    refined: np.ndarray


class LandmarkRefiner(Protocol):
    """A landmark refinement network as its users see it (``deepmark.core.refinement.runner.Refiner``):
    ``refine(image (H, W, 3) uint8 RGB, detections)`` → the same detections with refined landmark x, y."""

    def refine(self, image: np.ndarray, detections: Sequence[Detection]) -> list[Detection]: ...


@dataclass(frozen=True)
class Affine:
    """A 2×3 affine map of points, ``[x', y'] = M @ [x, y, 1]``. ``matrix`` (2, 3) float64."""

    matrix: np.ndarray

    @staticmethod
    def identity() -> Affine:
        return Affine(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))

    @staticmethod
    def scale_translate(scale: float, tx: float = 0.0, ty: float = 0.0) -> Affine:
        return Affine(np.array([[scale, 0.0, tx], [0.0, scale, ty]]))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) points → (..., 2) mapped points."""
        m = self.matrix
        x, y = points[..., 0], points[..., 1]
        return np.stack([m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]], axis=-1)

    def inverse(self) -> Affine:
        full = np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        return Affine(np.linalg.inv(full)[:2])

    def then(self, other: Affine) -> Affine:
        """The map that applies ``self`` first, then ``other``."""
        a = np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        b = np.vstack([other.matrix, [0.0, 0.0, 1.0]])
        return Affine((b @ a)[:2])


@dataclass(frozen=True, eq=False)
class RawHeads:
    """The six CenterNet head outputs for one image, as the network gives them after the sigmoid.

    Shapes with G groups and an H×W output map: ``hm`` (13, H, W) center heatmaps in [0, 1];
    ``reg`` (2, H, W) center sub-pixel offset (x, y); ``wh`` (2, H, W) box width and height;
    ``hps`` (2G, H, W) landmark offsets from the integer center (x0, y0, x1, y1, ...);
    ``hm_hp`` (G, H, W) group heatmaps in [0, 1]; ``hp_offset`` (2, H, W) landmark sub-pixel offset.
    All lengths are in output-map pixels. ``image_to_map`` maps original image pixels to map pixels
    (the pre-processing transform divided by the output stride); ``image_size`` is (width, height).
    """

    hm: np.ndarray
    reg: np.ndarray
    wh: np.ndarray
    hps: np.ndarray
    hm_hp: np.ndarray
    hp_offset: np.ndarray
    image_to_map: Affine = field(default_factory=Affine.identity)
    image_size: tuple[int, int] = (0, 0)

    @property
    def map_size(self) -> tuple[int, int]:
        """(H, W) of the output map."""
        return self.hm.shape[1], self.hm.shape[2]

    @property
    def num_groups(self) -> int:
        return self.hm_hp.shape[0]

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in HEAD_NAMES}

    @staticmethod
    def split_batch(
        batch: dict[str, np.ndarray], transforms: list[Affine], image_sizes: list[tuple[int, int]]
    ) -> list[RawHeads]:
        """Split batched head arrays ``{name: (B, C, H, W)}`` into one RawHeads per image."""
        missing = [n for n in HEAD_NAMES if n not in batch]
        if missing:
            raise DecodeError(f"batch lacks head arrays {missing}")
        sizes = {batch[n].shape[0] if batch[n].ndim == 4 else -1 for n in HEAD_NAMES}
        if len(sizes) != 1 or -1 in sizes:
            raise DecodeError("batched head arrays must all be (B, C, H, W) with one B")
        (b,) = sizes
        if len(transforms) != b or len(image_sizes) != b:
            raise DecodeError(f"batch of {b} images but {len(transforms)} transforms, {len(image_sizes)} sizes")
        return [
            RawHeads(**{n: batch[n][i] for n in HEAD_NAMES}, image_to_map=transforms[i], image_size=image_sizes[i])
            for i in range(b)
        ]


@dataclass(frozen=True)
class PostprocessParams:
    """Everything that turns raw heads into detections; the app's sliders edit these.

    The four DeepMark++ techniques (§3.2), each switchable:
    1. ``center_rescoring``: score = α·score_box + (1 − α)·mean landmark score;
    2. ``heatmap_rescoring``: 3×3 Gaussian smoothing, σ_c on center heatmaps, σ_k on group heatmaps;
    3. ``location_refinement``: landmark = γ·refined + (1 − γ)·coarse;
    4. ``keypoint_rescoring``: group-heatmap peaks weighted by a Gaussian (σ = min(w, h)/9) around the
       coarse landmark; the heaviest weighted peak is the refined one.
    ``top_k`` center candidates; ``peak_threshold`` the landmark-peak score floor (CenterNet's 0.1);
    ``score_threshold`` drops detections below it (0 keeps all ``top_k`` candidates, as CenterNet);
    ``candidate_floor``: with center rescoring, candidates whose box score is below
    min(``candidate_floor``, ``score_threshold``) are not examined (0 examines all ``top_k``, exactly);
    ``max_detections`` caps the output; optional box NMS at ``nms_iou``, per class or across classes.
    """

    center_rescoring: bool = False
    alpha: float = 0.8
    heatmap_rescoring: bool = False
    sigma_center: float = 0.45
    sigma_keypoint: float = 0.9
    location_refinement: bool = False
    gamma: float = 0.75
    keypoint_rescoring: bool = False
    nms: bool = False
    nms_iou: float = 0.5
    nms_per_class: bool = True
    score_threshold: float = 0.1
    candidate_floor: float = 0.05
    peak_threshold: float = 0.1
    top_k: int = 100
    max_detections: int = 100

    def __post_init__(self) -> None:
        unit = ("alpha", "gamma", "nms_iou", "score_threshold", "candidate_floor", "peak_threshold")
        for name in unit:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise DecodeError(f"{name} must be a number in [0, 1], got {value!r}")
        for name in ("sigma_center", "sigma_keypoint"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 100.0):
                raise DecodeError(f"{name} must be a number in [0, 100], got {value!r}")
        for name in ("top_k", "max_detections"):
            value = getattr(self, name)
            if not (isinstance(value, (int, np.integer)) and value >= 1):
                raise DecodeError(f"{name} must be a positive integer, got {value!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Every parameter's name, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], base: PostprocessParams | None = None,
                     source: str | Path = "parameters") -> PostprocessParams:
        """``base`` (default ``PostprocessParams()``) with the fields named in ``values`` replaced, each value
        converted strictly to its field's type (``_convert``), then validated.

        The one way mappings from files, settings, presets and the command line become parameters. ``source``
        is named in every error message; a ``Path`` is a file, also given as the error's ``path``. Raises
        DecodeError for a non-mapping, an unknown name, a value of the wrong type or out of range."""
        if not isinstance(values, Mapping):
            raise DecodeError(f"{source}: expected an object of parameter names and values, "
                              f"got {type(values).__name__}", path=path_of(source))
        names = cls.field_names()
        unknown = sorted(str(k) for k in values if k not in names)
        if unknown:
            raise DecodeError(f"{source}: unknown post-processing parameter(s) {unknown}; valid names: "
                              f"{', '.join(names)}", path=path_of(source))
        types = get_type_hints(cls)
        try:
            converted = {name: _convert(value, types[name], name) for name, value in values.items()}
            return replace(base or cls(), **converted)
        except DecodeError as exc:
            raise DecodeError(f"{source}: {exc}", path=path_of(source)) from None

    @classmethod
    def from_assignments(cls, assignments: Iterable[str], base: PostprocessParams | None = None,
                         source: str = "--set") -> PostprocessParams:
        """``from_mapping`` of ``name=value`` strings (later ones win), e.g. ``["alpha=0.7", "nms=yes"]``."""
        values: dict[str, str] = {}
        for item in assignments:
            name, equals, raw = item.partition("=")
            if not equals or not name.strip():
                raise DecodeError(f"{source} {item!r}: expected name=value with name one of "
                                  f"{', '.join(cls.field_names())}")
            values[name.strip()] = raw
        return cls.from_mapping(values, base, source)

    @staticmethod
    def all_techniques(**overrides) -> PostprocessParams:
        """All four techniques and NMS on, at the paper's DeepFashion2 values (§4.2)."""
        base = dict(center_rescoring=True, heatmap_rescoring=True, location_refinement=True,
                    keypoint_rescoring=True, nms=True)
        base.update(overrides)
        return PostprocessParams(**base)

    @staticmethod
    def centernet(**overrides) -> PostprocessParams:
        """CenterNet's own multi-pose decode: no technique, no NMS, all K candidates kept."""
        base = dict(score_threshold=0.0, candidate_floor=0.0)
        base.update(overrides)
        return PostprocessParams(**base)


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _convert(value: object, kind: type, name: str) -> object:
    """``value`` as a ``kind`` (bool, int or float) field value, never rounded or guessed: bools from real
    bools, 0/1 and true/false/yes/no/1/0 strings (any case); ints from whole numbers or their strings;
    floats from finite numbers or numeric strings. DecodeError naming ``name`` otherwise."""
    text = value.strip().lower() if isinstance(value, str) else None
    if kind is bool:
        if isinstance(value, bool | np.bool_) or (isinstance(value, int | np.integer) and value in (0, 1)):
            return bool(value)
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise DecodeError(f"{name}={value!r}: expected true or false (or yes/no, 1/0)")
    number = _number(value, text)
    if number is None:
        raise DecodeError(f"{name}={value!r}: expected a number")
    if isinstance(number, float) and not math.isfinite(number):
        raise DecodeError(f"{name}={value!r}: expected a finite number, not NaN or infinity")
    if kind is int:
        if isinstance(number, float) and not number.is_integer():
            raise DecodeError(f"{name}={value!r}: expected a whole number, not rounded")
        return int(number)
    try:
        return float(number)
    except OverflowError:  # an int beyond float range
        raise DecodeError(f"{name}={value!r}: expected a finite number") from None


def _number(value: object, text: str | None) -> int | float | None:
    """A JSON/NumPy number or a numeric string as int or float (ints kept exact); None for anything else."""
    if isinstance(value, bool | np.bool_):
        return None  # True is an int in Python, never a number here
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if text is not None:
        for parse in (int, float):
            try:
                return parse(text)
            except ValueError:
                continue
    return None
