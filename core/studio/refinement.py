"""The landmark refinement network for interactive use (DeepMark++ §4.2.2 in the app).

Refinement costs a network run per garment, so the app runs it only when the user has switched it on, and
never while a slider moves: after an image's detections are decoded, and once a burst of parameter changes
has ended. Its result is cached per (detector, image, test-time augmentation, parameters), so going back
to an image or to a parameter set shows the refined landmarks at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import Detection, LandmarkRefiner, PostprocessParams
from deepmark.core.inference.detector import default_model_path
from deepmark.core.util.lru import LruDict

CACHE_SIZE = 64  # refined results kept (detector × image × TTA × parameter set)
# (the detector's content key, image id, TTA key, the parameters decoded with): another model's detections
# of the same image are other detections
RefinementKey = tuple[str, int, str, PostprocessParams]


def default_refiner_path() -> Path:
    """The bundled refinement network, trained behind the bundled default detector."""
    return default_model_path().parent / "deepmark-refiner-fp32.onnx"


class LiveRefiner:
    """A loaded refinement network and its results so far. ``refine`` is safe to call from a worker thread
    (it touches no shared state); ``cached`` and ``keep`` belong to the session's thread."""

    def __init__(self, refiner: LandmarkRefiner, path: Path) -> None:
        self.refiner = refiner
        self.path = path
        self.cache: LruDict[RefinementKey, list[Detection]] = LruDict(CACHE_SIZE)
        self.runs = 0  # refinement runs so far (the app's tests check a slider move never adds one)

    @staticmethod
    def load(path: str | Path | None = None) -> LiveRefiner:
        """Load a refinement model file (None: the bundled one); ModelFileError naming the file when it cannot
        be used."""
        from deepmark.core.refinement.runner import Refiner

        target = Path(path) if path is not None else default_refiner_path()
        return LiveRefiner(Refiner(target), target)

    def describe(self) -> str:
        return self.path.name

    def mismatch(self, detector_path: Path) -> str | None:
        """"trained behind X, not Y" when the refiner learned another detector file's errors; else None."""
        from deepmark.core.refinement.runner import other_detector

        info = getattr(self.refiner, "info", None)
        return other_detector(info, detector_path) if info is not None else None

    def refine(self, image: np.ndarray, detections: Sequence[Detection]) -> list[Detection]:
        """(H, W, 3) uint8 RGB image and its decoded detections → the same detections with refined landmarks."""
        return self.refiner.refine(image, detections)

    def cached(self, key: RefinementKey) -> list[Detection] | None:
        return self.cache.get(key)

    def keep(self, key: RefinementKey, refined: list[Detection]) -> None:
        self.runs += 1
        self.cache.put(key, refined)

    def forget(self) -> None:
        """Drop every result (another project: image ids name other images)."""
        self.cache.clear()
