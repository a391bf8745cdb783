"""Refiner export: a ``train-refiner`` checkpoint → a self-describing ONNX file, and its static int8 copy.

The graph takes ``image`` (B, 3, H, W) and ``pose`` (B, G, H/2, W/2) with a dynamic batch B (all the
garments of one image run together) at the fixed crop size of training, and returns ``coords`` and
``confidence`` (``runner``). Its metadata (``runner.RefinerInfo``) names the detector it was trained behind
(file name and sha256), the error statistics measured on that detector, and the training recipe. The int8
copy quantises the convolutions only (``training.export.quantize_static_qdq``): the soft-argmax tail stays
float, since 8-bit coordinates would cost ~0.4 crop pixels of resolution for nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import Detection
from deepmark.core.domain.taxonomy import load_taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.refinement.inputs import garment_batch
from deepmark.core.refinement.network import INPUT_NAMES, OUTPUT_NAMES
from deepmark.core.refinement.runner import REFINER_METADATA_KEY, RefinerInfo, read_refiner_info
from deepmark.core.refinement.train import DEFAULT_NORMALISATION, load_refiner_checkpoint, refiner_from_checkpoint
from deepmark.core.training.export import OPSET, quantize_static_qdq
from deepmark.core.util.atomic import write_atomically

CALIBRATION_OPS = ("Conv",)


def refiner_info(payload: dict, use_confidence: bool = False) -> RefinerInfo:
    """The metadata of a checkpoint's refiner (fp32); ``use_confidence``: ``refine`` writes the network's
    confidence into the landmark score column instead of keeping the detector's."""
    from deepmark.core.domain.taxonomy import load_grouping

    taxonomy = load_taxonomy()
    grouping = load_grouping(payload["grouping"], taxonomy)
    state = payload.get("state", {})
    recipe = {"config": payload.get("config"), "epochs": state.get("epoch"), "steps": state.get("global_step"),
              "val_base_map_pt": state.get("base_map_pt"), "val_best_gain": state.get("best_gain"),
              "val_best_blend": state.get("best_blend", 1.0)}
    norm = DEFAULT_NORMALISATION
    return RefinerInfo(grouping_name=grouping.name, landmark_to_group=tuple(int(g) for g in grouping.landmark_to_group),
                       category_ids=taxonomy.category_ids, category_names=tuple(c.name for c in taxonomy.categories),
                       crop_size=tuple(int(v) for v in payload["crop_size"]), mean=norm.mean, std=norm.std,
                       color_order=norm.color_order, use_confidence=use_confidence,
                       blend=float(state.get("best_blend", 1.0)),
                       detector=dict(payload.get("detector") or {}),
                       error_stats=dict(payload.get("error_stats") or {}), recipe=recipe)


def _write(onnx_model, info: RefinerInfo, path: str | Path) -> Path:
    del onnx_model.metadata_props[:]
    entry = onnx_model.metadata_props.add()
    entry.key, entry.value = REFINER_METADATA_KEY, info.to_json()
    return write_atomically(path, lambda handle: handle.write(onnx_model.SerializeToString()), binary=True)


def export_refiner(checkpoint: str | Path, path: str | Path, use_confidence: bool = False) -> Path:
    """Write the refiner of a ``train-refiner`` checkpoint as ONNX with its metadata (``refiner_info``),
    atomically."""
    import onnx
    import torch

    payload = load_refiner_checkpoint(checkpoint)
    model = refiner_from_checkpoint(payload)
    info = refiner_info(payload, use_confidence)
    width, height = info.crop_size
    groups = model.config["num_groups"]
    dummy = (torch.zeros(1, 3, height, width), torch.zeros(1, groups, height // 2, width // 2))
    dynamic = {name: {0: "batch"} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "refiner.onnx"
        with torch.no_grad():
            torch.onnx.export(model, dummy, str(raw), input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                              dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
        onnx_model = onnx.load(str(raw))
    onnx.checker.check_model(onnx_model)
    return _write(onnx_model, info, path)


class _Batches:
    """onnxruntime CalibrationDataReader over {"image", "pose"} batches."""

    def __init__(self, batches: Iterable[dict[str, np.ndarray]]) -> None:
        self._iter = iter(batches)

    def get_next(self):
        return next(self._iter, None)


def calibration_batches(refiner_path: str | Path, folder: str | Path, count: int) -> Iterator[dict[str, np.ndarray]]:
    """The labelled garments of the first ``count`` readable images of a DF2 folder, cropped and rendered as the
    refiner at ``refiner_path`` takes them (one batch per image)."""
    from deepmark.core.formats.df2 import read_df2_annotations
    from deepmark.core.imaging.read import read_image
    from deepmark.core.training.dataset import _image_index

    info = read_refiner_info(refiner_path)
    taxonomy = load_taxonomy()
    grouping = info.grouping(taxonomy)
    gt, _ = read_df2_annotations(folder, taxonomy)
    images = _image_index(Path(folder) / "image")
    done = 0
    for image_id in sorted(set(gt) & set(images)):
        if done >= count:
            return
        try:
            picture = read_image(images[image_id])
        except DeepMarkError:
            continue
        dets = [Detection(g.category_id, 1.0, 1.0, np.asarray(g.box, float),
                          np.concatenate([g.landmarks[:, :2], np.ones((len(g.landmarks), 1))], 1),
                          np.ones(len(g.landmarks), bool)) for g in gt[image_id]]
        if not dets:
            continue
        batch = garment_batch(picture, dets, grouping, taxonomy, info.crop_size, info.normalisation)
        done += 1
        yield {"image": batch.image, "pose": batch.pose}


def quantize_refiner(fp32_path: str | Path, out_path: str | Path, batches: Iterable[dict[str, np.ndarray]]) -> Path:
    """Static int8 (QDQ) copy of an exported refiner, its convolutions calibrated on ``batches``; the metadata
    carried over with ``precision = "int8"``."""
    info = read_refiner_info(fp32_path)
    onnx_model = quantize_static_qdq(fp32_path, _Batches(batches), CALIBRATION_OPS)
    return _write(onnx_model, replace(info, precision="int8"), out_path)
