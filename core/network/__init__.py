"""CenterNet networks in torch for DeepFashion2 (DeepMark++): backbones, heads, the stacked hourglass,
export wrapper, registry,
and the training checkpoint file (``checkpoint``: read and written by training, run by inference).

Imports torch; only training and (lazily, for a .pt model) inference use it: the app and the inference of
.onnx models run without torch (an import-linter contract checks it).
"""

from deepmark.core.network.factory import ARCHITECTURES, build_model, count_parameters, input_multiple
from deepmark.core.network.heads import CenterNet, ExportWrapper
from deepmark.core.network.hourglass import HourglassNet

__all__ = ["ARCHITECTURES", "CenterNet", "ExportWrapper", "HourglassNet", "build_model", "count_parameters",
           "input_multiple"]
