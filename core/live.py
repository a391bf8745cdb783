"""A detector for interactive use (the app): raw heads cached per image so that post-processing changes
only re-decode, and each image's predictions stored once per model run beside the annotations."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from core.decode import decode_detections
from core.inference import Detector, TestTimeAugmentation
from core.store import Project
from core.structures import Detection, PostprocessParams, RawHeads
from core.studio import HeadsCache


class LiveModel:
    """``heads(image_id, rgb)`` runs the network once per image (and TTA setting), ``decode`` is cheap."""

    def __init__(self, detector: Detector, cache_size: int = 16) -> None:
        self.detector = detector
        self.cache = HeadsCache(cache_size)
        self.tta = TestTimeAugmentation()
        self.runs = 0  # network runs so far (the app's tests check sliders never add one)
        self._run_ids: dict[str, int] = {}
        self._stored: set[tuple[str, int]] = set()

    @staticmethod
    def load(path: str | Path | None = None, threads: int | None = None) -> LiveModel:
        """Load a model file (ModelFileError naming the file when it cannot be used)."""
        return LiveModel(Detector(path, threads=threads))

    @property
    def path(self) -> Path:
        return self.detector.path

    def describe(self) -> str:
        info = self.detector.info
        return (f"{self.path.name}: {info.arch}, {info.input_size[0]}×{info.input_size[1]}, "
                f"{info.grouping_name}, {info.precision}")

    def cached(self, image_id: int) -> RawHeads | None:
        return self.cache.get(image_id, self.tta.key())

    def heads(self, image_id: int, rgb: np.ndarray) -> RawHeads:
        found = self.cached(image_id)
        if found is None:
            found = self.detector.heads(rgb, self.tta)
            self.runs += 1
            self.cache.put(image_id, found, self.tta.key())
        return found

    def decode(self, heads: RawHeads, params: PostprocessParams) -> list[Detection]:
        return decode_detections(heads, params, self.detector.taxonomy, self.detector.grouping)

    def store_predictions(self, project: Project, image_id: int, detections: list[Detection],
                          params: PostprocessParams) -> bool:
        """Store the image's detections under this model's run in ``project`` (created on first use), once
        per image; False when already stored this session. Predictions never touch the annotations."""
        key = (project.where, image_id)
        if key in self._stored:
            return False
        run_id = self._run_ids.get(project.where)
        if run_id is None:
            run = project.model_runs.add(f"studio: {self.path.name}", model_path=self.path,
                                         model_meta=json.loads(self.detector.info.to_json()), params=asdict(params))
            run_id = self._run_ids[project.where] = run.id
        if not project.predictions.for_image(image_id, run_id):
            project.predictions.add(image_id, run_id, detections)
        self._stored.add(key)
        return True
