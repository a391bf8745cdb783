"""Model export: a trained CenterNet → a self-describing ONNX file, and its static int8 (QDQ) version.

The ONNX graph takes ``image`` (B, 3, H, W) float32 (normalised RGB, H and W multiples of the model's
``input_multiple`` — 32, 128 for an hourglass — batch and size dynamic) and returns the six heads named
as ``HEAD_NAMES`` with the sigmoid applied to ``hm`` and ``hm_hp``. The int8 model is calibrated on real
training images through ``onnxruntime.quantization`` (``quant_pre_process``, then ``quantize_static``
with QDQ, per-channel weights).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import HEAD_NAMES
from deepmark.core.formats.model_file import METADATA_KEY, ModelFileError, ModelInfo
from deepmark.core.util.atomic import write_atomically

OPSET = 17


def _set_metadata(onnx_model, info: ModelInfo) -> None:
    del onnx_model.metadata_props[:]
    entry = onnx_model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, info.to_json()


def export_onnx(model, info: ModelInfo, path: str | Path) -> Path:
    """Write ``model`` (a ``deepmark.core.network.CenterNet`` or ``HourglassNet``) as ONNX with ``info`` in its
    metadata, atomically. The metadata's ``input_multiple`` is the model's own; ModelFileError when
    ``info.input_size`` is not a multiple of it."""
    import onnx
    import torch

    from deepmark.core.network import ExportWrapper

    # The network knows which sizes it takes; the caller's info (built from a checkpoint) may not say.
    info = replace(info, input_multiple=int(getattr(model, "input_multiple", info.input_multiple)))
    if any(v % info.input_multiple for v in info.input_size):
        raise ModelFileError(f"{path}: cannot export {info.arch} at {info.input_size[0]}×{info.input_size[1]}: width "
                             f"and height must be multiples of {info.input_multiple}", path=Path(path))
    wrapper = ExportWrapper(model).eval()
    width, height = info.input_size
    dummy = torch.zeros(1, 3, height, width)
    dynamic = {"image": {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({name: {0: "batch", 2: "map_height", 3: "map_width"} for name in HEAD_NAMES})
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(wrapper, (dummy,), str(raw), input_names=["image"], output_names=list(HEAD_NAMES),
                              dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
        onnx_model = onnx.load(str(raw))
    onnx.checker.check_model(onnx_model)
    _set_metadata(onnx_model, info)
    return write_atomically(path, lambda handle: handle.write(onnx_model.SerializeToString()), binary=True)


class _Calibration:
    """onnxruntime CalibrationDataReader over pre-processed (3, H, W) float32 arrays."""

    def __init__(self, inputs: Iterable[np.ndarray]) -> None:
        self._iter = iter(inputs)

    def get_next(self):
        item = next(self._iter, None)
        return None if item is None else {"image": item[None].astype(np.float32)}


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration: Iterable[np.ndarray]) -> Path:
    """Static int8 (QDQ, per-channel) copy of an exported model, calibrated on ``calibration`` inputs
    ((3, H, W) float32 normalised images from the training set). The metadata is carried over with
    ``precision = "int8"``."""
    from deepmark.core.formats.model_file import read_model_info

    info = read_model_info(fp32_path)
    onnx_model = quantize_static_qdq(fp32_path, _Calibration(calibration))
    _set_metadata(onnx_model, replace(info, precision="int8"))
    return write_atomically(out_path, lambda handle: handle.write(onnx_model.SerializeToString()), binary=True)


def quantize_static_qdq(fp32_path: str | Path, reader, op_types: Sequence[str] | None = None):
    """The static int8 (QDQ, per-channel weights, uint8 activations, MinMax) ``onnx.ModelProto`` of an ONNX
    file, calibrated by ``reader`` (an onnxruntime CalibrationDataReader); ``op_types``: quantise only these
    operator types (None: every one onnxruntime can). Its metadata is the caller's to set."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantized = Path(tmp) / "int8.onnx"
        quantize_static(
            str(prepared), str(quantized), reader,
            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=list(op_types) if op_types is not None else None,
        )
        return onnx.load(str(quantized))


def training_summary(checkpoint: dict) -> dict:
    """The part of a checkpoint worth keeping in the model's metadata."""
    state = checkpoint.get("state", {})
    return {"epochs": state.get("epoch"), "steps": state.get("global_step"),
            "best_val_map_pt": state.get("best_map_pt"), "config": json.loads(json.dumps(checkpoint.get("config")))}
