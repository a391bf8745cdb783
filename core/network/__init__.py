"""CenterNet networks in torch for DeepFashion2 (DeepMark++): backbones, heads, export wrapper, registry,
and the training checkpoint file (``checkpoint``: read and written by training, run by inference).

Imports torch; only training and (lazily, for a .pt model) inference use it: the app and the inference of
.onnx models run without torch (an import-linter contract checks it).
"""

from deepmark.core.network.factory import ARCHITECTURES, build_model, count_parameters
from deepmark.core.network.heads import CenterNet, ExportWrapper

__all__ = ["ARCHITECTURES", "CenterNet", "ExportWrapper", "build_model", "count_parameters"]
