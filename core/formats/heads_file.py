"""The one on-disk format for raw heads: a compressed ``.npz`` per image.

Layout (format version 1), written by ``save_heads`` and read by ``load_heads``:

| key | dtype, shape | meaning |
|---|---|---|
| ``format`` | int64 () | 1 |
| ``hm``, ``reg``, ``wh``, ``hps``, ``hm_hp``, ``hp_offset`` | float16, (C, H, W) | the six heads (see ``RawHeads``) |
| ``image_to_map`` | float64 (2, 3) | original image pixels → output-map pixels |
| ``image_size`` | int64 (2,) | original (width, height) |
| ``image_id`` | int64 () | DeepFashion2 image id (-1 when unknown) |
| ``grouping`` | str () | name of the keypoint grouping the model predicts |
| ``model`` | str () | optional: file name of the model that computed them |
| ``model_params`` | str () | optional: JSON of that model's recommended post-processing (``decode`` uses it) |

float16 halves the size; decoding converts back to float32 (heatmap values change by < 5e-4).
Files are written atomically (temporary file in the same folder, then rename) so a killed job never
leaves a half-written cache entry.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import HEAD_NAMES, Affine, RawHeads
from deepmark.core.errors import HeadsFileError
from deepmark.core.util.atomic import write_atomically

FORMAT_VERSION = 1
SUFFIX = ".npz"


@dataclass(frozen=True, eq=False)
class SavedHeads:
    """Raw heads read from disk with the metadata stored beside them."""

    heads: RawHeads
    image_id: int
    grouping: str
    model: str | None = None
    model_params: dict | None = None  # the model's recommended post-processing fields, when it names them


def save_heads(path: str | Path, heads: RawHeads, image_id: int = -1, grouping: str = "semantic62",
               model: str | None = None, model_params: Mapping | None = None) -> Path:
    """Write ``heads`` to ``path`` (``.npz`` appended when missing); returns the final path. ``model`` and
    ``model_params``: the model that computed them and its recommended post-processing, when known."""
    path = Path(path)
    extra = {}
    if model is not None:
        extra["model"] = np.str_(model)
    if model_params is not None:
        extra["model_params"] = np.str_(json.dumps(dict(model_params)))
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    arrays = {name: np.asarray(arr, np.float32).astype(np.float16) for name, arr in heads.arrays().items()}
    write_atomically(
        path,
        lambda handle: np.savez_compressed(
            handle,
            format=np.int64(FORMAT_VERSION),
            image_to_map=heads.image_to_map.matrix.astype(np.float64),
            image_size=np.asarray(heads.image_size, np.int64),
            image_id=np.int64(image_id),
            grouping=np.str_(grouping),
            **extra,
            **arrays,
        ),
        binary=True,
    )
    return path


def load_heads(path: str | Path) -> SavedHeads:
    """Read a file written by ``save_heads``; HeadsFileError names the file and the problem."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            missing = {"format", "image_to_map", "image_size", *HEAD_NAMES} - keys
            if missing:
                raise HeadsFileError(f"{path}: not a raw-heads file (missing {sorted(missing)})", path=path)
            version = int(data["format"])
            if version != FORMAT_VERSION:
                raise HeadsFileError(f"{path}: raw-heads format {version}, this version reads {FORMAT_VERSION}",
                                     path=path)
            arrays = {name: data[name].astype(np.float32) for name in HEAD_NAMES}
            matrix = data["image_to_map"].astype(np.float64)
            size = tuple(int(v) for v in data["image_size"])
            image_id = int(data["image_id"]) if "image_id" in keys else -1
            grouping = str(data["grouping"]) if "grouping" in keys else "semantic62"
            model = str(data["model"]) if "model" in keys else None
            model_params = json.loads(str(data["model_params"])) if "model_params" in keys else None
    except HeadsFileError:
        raise
    except FileNotFoundError:
        raise HeadsFileError(f"{path}: file not found", path=path) from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:  # ValueError: bad JSON too
        raise HeadsFileError(f"{path}: cannot read raw heads ({exc})", path=path) from None
    if matrix.shape != (2, 3) or len(size) != 2:
        raise HeadsFileError(f"{path}: image_to_map must be (2, 3) and image_size (2,)", path=path)
    if model_params is not None and not isinstance(model_params, dict):
        raise HeadsFileError(f"{path}: model_params must be a JSON object", path=path)
    return SavedHeads(RawHeads(**arrays, image_to_map=Affine(matrix), image_size=size), image_id, grouping, model,
                      model_params)
