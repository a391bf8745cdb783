"""What a model file says about itself: the metadata stored in every exported ONNX model.

An exported model carries, under the ONNX metadata key ``deepmark`` (a JSON object), everything needed
to use it with no side file: categories, the keypoint grouping (its name and full landmark → group map),
input size, colour order and normalisation, output names and stride, architecture. ``read_model_info``
checks a file and raises ModelFileError naming the file and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from deepmark.core.domain.structures import HEAD_NAMES, NORMALIZE_MEAN, NORMALIZE_STD, OUTPUT_STRIDE
from deepmark.core.domain.taxonomy import Grouping, Taxonomy, build_grouping
from deepmark.core.errors import DeepMarkError, path_of
from deepmark.core.util.atomic import write_atomically

METADATA_KEY = "deepmark"
METADATA_VERSION = 1


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

    @property
    def synthetic_only(self) -> bool:
        """Trained on synthetic images only: its results on photographs are not meaningful."""
        return self.training_data.lower().startswith("synthetic")

    def to_json(self) -> str:
        data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}
        data["version"] = METADATA_VERSION
        return json.dumps(data)

    @staticmethod
    def from_json(text: str, source: str | Path) -> ModelInfo:
        """The ModelInfo in ``text``; ModelFileError naming ``source`` (a ``Path``: the model file, also the
        error's ``path``) when it is not DeepMark metadata of this version."""
        try:
            data = json.loads(text)
            if data.pop("version", None) != METADATA_VERSION:
                raise ModelFileError(f"{source}: DeepMark metadata version is not {METADATA_VERSION}",
                                     path=path_of(source))
            tuples = ("landmark_to_group", "category_ids", "category_names", "input_size", "mean", "std",
                      "output_names")
            for key in tuples:
                data[key] = tuple(data[key])
            if not isinstance(data.get("training_data", ""), str):
                raise TypeError(f"training_data must be text, got {data['training_data']!r}")
            return ModelInfo(**data)
        except ModelFileError:
            raise
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ModelFileError(f"{source}: malformed DeepMark metadata ({exc})", path=path_of(source)) from None

    def grouping(self, taxonomy: Taxonomy) -> Grouping:
        """The model's grouping, rebuilt (and validated) from the stored map."""
        return build_grouping(self.grouping_name, list(self.landmark_to_group), taxonomy,
                              source=f"model grouping '{self.grouping_name}'")


def model_info(arch: str, grouping: Grouping, taxonomy: Taxonomy, input_size: Sequence[int],
               training: dict | None = None) -> ModelInfo:
    """The metadata of a model of ``arch`` with ``grouping``, ``input_size`` (W, H) pixels and the default
    (ImageNet, RGB) normalisation; ``training``: a summary of how it was trained."""
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


def read_model_info(path: str | Path) -> ModelInfo:
    """Read and check an ONNX model's metadata and outputs (does not load the weights into a session)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found", path=path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for non-ONNX bytes
        raise ModelFileError(f"{path}: not an ONNX model ({type(exc).__name__}: {exc})", path=path) from None
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ModelFileError(f"{path}: no DeepMark metadata (export it with `deepmark export-onnx`)", path=path)
    info = ModelInfo.from_json(props[METADATA_KEY], path)
    outputs = tuple(o.name for o in model.graph.output)
    if outputs != tuple(info.output_names) or set(outputs) != set(HEAD_NAMES):
        raise ModelFileError(f"{path}: outputs {list(outputs)}, expected {list(HEAD_NAMES)}", path=path)
    return info
