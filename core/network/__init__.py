"""CenterNet models for DeepFashion2 (DeepMark++): backbones, heads, export wrapper, registry.

Imports torch; the Qt app must import this package lazily (it must start without torch).
"""

from deepmark.core.network.factory import ARCHITECTURES, build_model, count_parameters
from deepmark.core.network.heads import CenterNet, ExportWrapper

__all__ = ["ARCHITECTURES", "CenterNet", "ExportWrapper", "build_model", "count_parameters"]
