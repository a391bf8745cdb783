"""What a model file says about itself: the metadata stored in every exported ONNX model.

An exported model carries, under the ONNX metadata key ``deepmark`` (a JSON object), everything needed
to use it with no side file: categories, the keypoint grouping (its name and full landmark → group map),
input size, colour order and normalisation, output names and stride, architecture. ``read_model_info``
checks a file (every field's type and range: ``FIELDS``) and raises ModelFileError naming the file and
the first problem. The format and every check: docs/model-format.md.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from deepmark.core.domain.structures import (
    COLOR_ORDERS,
    HEAD_NAMES,
    NORMALIZE_MEAN,
    NORMALIZE_STD,
    OUTPUT_STRIDE,
)
from deepmark.core.domain.taxonomy import Grouping, Taxonomy, build_grouping
from deepmark.core.errors import DeepMarkError, path_of
from deepmark.core.util.atomic import write_atomically

METADATA_KEY = "deepmark"
METADATA_VERSION = 1
# What input H and W must be multiples of when the metadata does not say (every model exported before the
# field existed: their backbones reduce by 32 before climbing back to stride 4); an hourglass says 128.
INPUT_MULTIPLE = 32


class ModelFileError(DeepMarkError):
    """A model file is missing, not ONNX, lacks DeepMark metadata or has unexpected outputs."""


@dataclass(frozen=True)
class ModelInfo:
    """A model's self-description (see the module docstring)."""

    arch: str
    grouping_name: str
    landmark_to_group: tuple[int, ...]
    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    color_order: str = "RGB"
    output_names: tuple[str, ...] = HEAD_NAMES
    output_stride: int = OUTPUT_STRIDE
    precision: str = "fp32"
    training: dict | None = None
    # what images it learned from, in words (e.g. "synthetic garments"); "" when the file does not say
    training_data: str = ""
    # input H and W must be multiples of this (the network's skip connections line up only then)
    input_multiple: int = INPUT_MULTIPLE

    @property
    def synthetic_only(self) -> bool:
        """Trained on synthetic images only: its results on photographs are not meaningful."""
        return self.training_data.lower().startswith("synthetic")

    def to_json(self) -> str:
        data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}
        if self.input_multiple == INPUT_MULTIPLE:
            # the default is left out, so a 32-multiple model stays readable by versions without the field
            del data["input_multiple"]
        data["version"] = METADATA_VERSION
        return json.dumps(data)

    @staticmethod
    def from_json(text: str, source: str | Path) -> ModelInfo:
        """The ModelInfo in ``text``; ModelFileError naming ``source`` (a ``Path``: the model file, also the
        error's ``path``) and the first field at fault when it is not DeepMark metadata of this version
        (every field's type and range: ``FIELDS``)."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ModelFileError(f"{source}: DeepMark metadata is not JSON ({exc})", path=path_of(source)) from None
        try:
            return ModelInfo(**_checked_fields(data))
        except _BadField as exc:
            raise ModelFileError(f"{source}: DeepMark metadata {exc}", path=path_of(source)) from None

    def grouping(self, taxonomy: Taxonomy) -> Grouping:
        """The model's grouping, rebuilt (and validated) from the stored map."""
        return build_grouping(self.grouping_name, list(self.landmark_to_group), taxonomy,
                              source=f"model grouping '{self.grouping_name}'")


class _BadField(Exception):
    """A metadata field of the wrong type or out of range (the message names it)."""


_SHORT = reprlib.Repr()  # a field's value in a one-line message: a 294-entry list shows its first few
_SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 4, 4, 40, 40


def _short(value: object) -> str:
    return _SHORT.repr(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a count


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _BadField("non-empty text")
    return value


def _any_text(value: object) -> str:
    if not isinstance(value, str):
        raise _BadField("text")
    return value


def _list(value: object, item: Callable[[object], bool], what: str, length: int | None = None) -> tuple:
    if not isinstance(value, list) or not all(item(v) for v in value) or (length is not None and len(value) != length):
        raise _BadField(f"a list of {what}" if length is None else f"a list of {length} {what}")
    return tuple(value)


def _int_list(value: object) -> tuple[int, ...]:
    return _list(value, _is_int, "integers")


def _text_list(value: object) -> tuple[str, ...]:
    return _list(value, lambda v: isinstance(v, str) and bool(v), "non-empty texts")


def _input_size(value: object) -> tuple[int, int]:
    # that they are multiples of the model's input_multiple is checked across fields (_checked_fields)
    size = _list(value, lambda v: _is_int(v) and v > 0, "positive integers (width, height)", 2)
    return int(size[0]), int(size[1])


def _input_multiple(value: object) -> int:
    if not _is_int(value) or value <= 0 or value % OUTPUT_STRIDE:
        raise _BadField(f"a positive multiple of the output stride {OUTPUT_STRIDE}")
    return value


def _mean(value: object) -> tuple[float, float, float]:
    mean = _list(value, lambda v: _is_number(v) and 0.0 <= v <= 1.0,
                 "numbers in [0, 1] (per input channel, on [0, 1] pixel values)", 3)
    return tuple(float(v) for v in mean)


def _std(value: object) -> tuple[float, float, float]:
    std = _list(value, lambda v: _is_number(v) and 0.0 < v <= 1.0,
                "numbers in (0, 1] (per input channel, on [0, 1] pixel values)", 3)
    return tuple(float(v) for v in std)


def _color_order(value: object) -> str:
    if value not in COLOR_ORDERS:
        raise _BadField(" or ".join(f'"{c}"' for c in COLOR_ORDERS))
    return value


def _output_stride(value: object) -> int:
    if not _is_int(value) or value != OUTPUT_STRIDE:
        raise _BadField(f"{OUTPUT_STRIDE} (the only output stride this version decodes)")
    return value


def _training(value: object) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise _BadField("a JSON object or null")
    if isinstance(value, dict) and not isinstance(value.get(RECOMMENDED_PARAMS_KEY, {}), dict):
        raise _BadField(f'a JSON object whose "{RECOMMENDED_PARAMS_KEY}" is a JSON object')
    return value


# Every metadata field: (its check → the value ModelInfo keeps, required). A check raises _BadField with
# what the field must be; optional fields take ModelInfo's defaults (files of earlier exports lack them).
FIELDS: dict[str, tuple[Callable[[object], object], bool]] = {
    "arch": (_text, True),
    "grouping_name": (_text, True),
    "landmark_to_group": (_int_list, True),
    "category_ids": (_int_list, True),
    "category_names": (_text_list, True),
    "input_size": (_input_size, True),
    "mean": (_mean, True),
    "std": (_std, True),
    "color_order": (_color_order, False),
    "output_names": (_text_list, False),
    "output_stride": (_output_stride, False),
    "precision": (_text, False),
    "training": (_training, False),
    "training_data": (_any_text, False),
    "input_multiple": (_input_multiple, False),
}


def _checked_fields(data: object) -> dict:
    """ModelInfo's keyword arguments from parsed metadata; _BadField naming the first field at fault."""
    if not isinstance(data, dict):
        raise _BadField(f"must be a JSON object, got {_short(data)}")
    if data.get("version") != METADATA_VERSION:
        raise _BadField(f"version is {_short(data.get('version'))}, expected {METADATA_VERSION}")
    unknown = sorted(set(data) - set(FIELDS) - {"version"})
    if unknown:
        raise _BadField(f"has unknown field '{unknown[0]}' (written by a newer version?)")
    checked = {}
    for name, (check, required) in FIELDS.items():
        if name not in data:
            if required:
                raise _BadField(f"lacks the field '{name}'")
            continue
        try:
            checked[name] = check(data[name])
        except _BadField as exc:
            raise _BadField(f"field '{name}' must be {exc}, got {_short(data[name])}") from None
    names, ids = checked["category_names"], checked["category_ids"]
    if len(names) != len(ids):
        raise _BadField(f"field 'category_names' must be one name per category id, got {len(names)} for {len(ids)}")
    multiple = checked.get("input_multiple", INPUT_MULTIPLE)
    if any(v % multiple for v in checked["input_size"]):
        raise _BadField(f"field 'input_size' must be multiples of {multiple} (the model's input_multiple), "
                        f"got {list(checked['input_size'])}")
    return checked


def model_info(arch: str, grouping: Grouping, taxonomy: Taxonomy, input_size: Sequence[int],
               training: dict | None = None, input_multiple: int = INPUT_MULTIPLE) -> ModelInfo:
    """The metadata of a model of ``arch`` with ``grouping``, ``input_size`` (W, H) pixels and the default
    (ImageNet, RGB) normalisation; ``training``: a summary of how it was trained; ``input_multiple``: what
    the network's input H and W must be multiples of."""
    return ModelInfo(
        arch=arch,
        grouping_name=grouping.name,
        landmark_to_group=tuple(int(g) for g in grouping.landmark_to_group),
        category_ids=taxonomy.category_ids,
        category_names=tuple(c.name for c in taxonomy.categories),
        input_size=(int(input_size[0]), int(input_size[1])),
        mean=tuple(NORMALIZE_MEAN),
        std=tuple(NORMALIZE_STD),
        training=training,
        input_multiple=int(input_multiple),
    )


# ``ModelInfo.training[RECOMMENDED_PARAMS_KEY]``: PostprocessParams fields the model recommends (tuned on
# its validation set), which the app's "Reset to model defaults" and first start apply.
RECOMMENDED_PARAMS_KEY = "postprocess"


def set_recommended_params(path: str | Path, params: Mapping[str, object] | None = None,
                           training_data: str | None = None) -> ModelInfo:
    """Store post-processing parameters (``PostprocessParams`` fields) and/or what the model was trained on in
    an ONNX model's metadata, replacing earlier ones; the weights are untouched and the file is rewritten
    atomically."""
    import onnx

    info = read_model_info(path)
    training = dict(info.training or {})
    if params is not None:
        training[RECOMMENDED_PARAMS_KEY] = dict(params)
    updated = replace(info, training=training,
                      training_data=info.training_data if training_data is None else training_data)
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = updated.to_json()
    write_atomically(path, lambda handle: handle.write(model.SerializeToString()), binary=True)
    return updated


def read_onnx_graph(path: Path, error: type[ModelFileError] = ModelFileError, what: str = "model"):
    """The ONNX graph and metadata of a file (weights not loaded); ``error`` naming the file when it is missing
    or not ONNX."""
    import onnx

    if not path.is_file():
        raise error(f"{path}: {what} file not found", path=path)
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for non-ONNX bytes
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise error(f"{path}: not an ONNX model ({type(exc).__name__}{': ' + detail if detail else ''})",
                    path=path) from None


def read_model_info(path: str | Path) -> ModelInfo:
    """Read and check an ONNX model's metadata and outputs (does not load the weights into a session)."""
    path = Path(path)
    model = read_onnx_graph(path)
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ModelFileError(f"{path}: no DeepMark metadata (export it with `deepmark export-onnx`)", path=path)
    info = ModelInfo.from_json(props[METADATA_KEY], path)
    outputs = tuple(o.name for o in model.graph.output)
    if outputs != tuple(info.output_names) or set(outputs) != set(HEAD_NAMES):
        missing = [name for name in HEAD_NAMES if name not in outputs]
        what = f"has no output '{missing[0]}'" if missing else "has other outputs than its metadata names"
        raise ModelFileError(f"{path}: the model {what} (outputs {list(outputs)}, expected {list(HEAD_NAMES)})",
                             path=path)
    return info
