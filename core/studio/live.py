"""A detector for interactive use (the app): raw heads cached per image so that post-processing changes
only re-decode, and each image's predictions stored once per model run beside the annotations.

Heads are looked up in memory, then (with ``heads_dir``) in the disk heads cache that batch jobs
(``deepmark.core.studio.batch``) fill, and only then computed by the network (and saved there)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import Detection, PostprocessParams, RawHeads
from deepmark.core.errors import DeepMarkError
from deepmark.core.inference.detector import Detector, TestTimeAugmentation
from deepmark.core.store import Project
from deepmark.core.studio.batch import new_model_run
from deepmark.core.studio.heads_cache import HeadsCache, HeadsDiskCache, ModelHeadsCache, model_key
from deepmark.core.studio.uncertainty import mirror_key


class LiveModel:
    """``heads(image_id, rgb)`` runs the network once per image (and TTA setting), ``decode`` is cheap."""

    def __init__(self, detector: Detector, cache_size: int = 16, heads_dir: str | Path | None = None) -> None:
        self.detector = detector
        disk = HeadsDiskCache(heads_dir) if heads_dir is not None else None
        self.cache = HeadsCache(lambda: self.model_key, disk, cache_size, detector.info.grouping_name)
        self._model_key: str | None = None
        self.tta = TestTimeAugmentation()
        self.runs = 0  # network runs so far (the app's tests check sliders never add one)
        self.network_seconds: list[float] = []  # how long each network run took (for estimates)
        self._run_ids: dict[str, int] = {}
        self._stored: set[tuple[str, int]] = set()
        # the flip test's mirror heads made or read by a worker thread, until ``keep`` puts them in memory
        self._mirrors: dict[tuple[int, str], RawHeads] = {}

    @staticmethod
    def load(path: str | Path | None = None, threads: int | None = None,
             heads_dir: str | Path | None = None) -> LiveModel:
        """Load a model file (ModelFileError naming the file when it cannot be used); ``heads_dir``: the
        disk heads cache to use (None: memory only)."""
        return LiveModel(Detector(path, threads=threads), heads_dir=heads_dir)

    @property
    def model_key(self) -> str:
        """The model file's content key in the disk heads cache (hashed once)."""
        if self._model_key is None:
            self._model_key = model_key(self.path)
        return self._model_key

    def disk_view(self) -> ModelHeadsCache | None:
        """The disk heads cache for this model and the current TTA setting (for work in another thread)."""
        return self.cache.view(self.tta.key())

    @property
    def path(self) -> Path:
        return self.detector.path

    def describe(self) -> str:
        info = self.detector.info
        return (f"{self.path.name}: {info.arch}, {info.input_size[0]}×{info.input_size[1]}, "
                f"{info.grouping_name}, {info.precision}")

    def cached(self, image_id: int) -> RawHeads | None:
        return self.cache.get(image_id, self.tta.key())

    def heads(self, image_id: int, rgb: np.ndarray, image_key: str | None = None) -> RawHeads:
        """The image's heads: from memory, else the disk cache (when ``image_key`` is given), else the network
        (then saved to the disk cache); always at the cache's precision (``at_cache_precision``)."""
        started = time.perf_counter()
        tta = self.tta
        found, computed = self.cache.heads(image_id, image_key, tta.key(),
                                           lambda: self._network(image_id, rgb, image_key, tta))
        if computed:
            self.runs += 1
            self.network_seconds.append(time.perf_counter() - started)
        if tta.flip:
            pending = self._mirrors.pop((image_id, tta.key()), None)
            if pending is not None:
                self.cache.put(image_id, pending, mirror_key(tta.key()))
            else:
                self.cache.lookup(image_id, image_key, mirror_key(tta.key()))
        return found

    def _network(self, image_id: int, rgb: np.ndarray, image_key: str | None, tta: TestTimeAugmentation) -> RawHeads:
        """The network's heads; with the flip test the mirror's heads too, rounded and saved to the disk cache
        and held for ``keep`` (the doubt score compares them with the image's own)."""
        if not tta.flip:
            return self.detector.heads(rgb, tta)
        heads, mirror = self.detector.heads_and_mirror(rgb, tta)
        if mirror is not None:
            self._mirrors[(image_id, tta.key())] = self.cache.computed(image_key, mirror_key(tta.key()), mirror,
                                                                       image_id)
        return heads

    def mirror(self, image_id: int) -> RawHeads | None:
        """The current image's mirror heads (memory only) when the flip test is on; None otherwise."""
        return self.cache.get(image_id, mirror_key(self.tta.key())) if self.tta.flip else None

    def compute(self, image_id: int, rgb: np.ndarray, image_key: str | None, tta: TestTimeAugmentation) -> RawHeads:
        """Run the network (for a worker thread: touches no shared state but the disk cache's files); the
        heads at the cache's precision. ``keep`` them in the GUI thread afterwards."""
        started = time.perf_counter()
        heads = self.cache.computed(image_key, tta.key(), self._network(image_id, rgb, image_key, tta), image_id)
        self.network_seconds.append(time.perf_counter() - started)  # list.append is atomic
        return heads

    def saved(self, image_key: str | None, tta: TestTimeAugmentation, image_id: int | None = None) -> RawHeads | None:
        """The image's heads from the disk cache only (for a worker thread, like ``compute``); None: not saved,
        or the saved file is damaged (it is computed again and replaced then). With the flip test and
        ``image_id``, the mirror's saved heads are read too, for ``keep``."""
        try:
            heads = self.cache.load_saved(image_key, tta.key())
            if heads is not None and tta.flip and image_id is not None:
                mirror = self.cache.load_saved(image_key, mirror_key(tta.key()))
                if mirror is not None:
                    self._mirrors[(image_id, tta.key())] = mirror
            return heads
        except DeepMarkError:
            return None

    def keep(self, image_id: int, tta_key: str, heads: RawHeads, computed: bool = True) -> None:
        """Heads from ``compute`` (one network run counted) or ``saved``, now in memory."""
        self.cache.put(image_id, heads, tta_key)
        mirror = self._mirrors.pop((image_id, tta_key), None)
        if mirror is not None:
            self.cache.put(image_id, mirror, mirror_key(tta_key))
        self.runs += int(computed)

    def seconds_per_image(self) -> float | None:
        """The median time of this session's network runs (reading, pre-processing, network, cache write);
        None before the first. A batch job adds reading each image and storing its predictions."""
        if not self.network_seconds:
            return None
        return float(np.median(self.network_seconds[-50:]))

    def forget(self) -> None:
        """Drop the heads in memory (another project's image ids mean other images)."""
        self.cache.clear()

    def decode(self, heads: RawHeads, params: PostprocessParams) -> list[Detection]:
        return decode_detections(heads, params, self.detector.taxonomy, self.detector.grouping)
    def store_predictions(self, project: Project, image_id: int, detections: list[Detection],
                          params: PostprocessParams) -> bool:
        """Store the image's detections under this model's run in ``project`` (created on first use), once
        per image; False when already stored this session. Predictions never touch the annotations."""
        key = (project.where, image_id)
        if key in self._stored:
            return False
        run_id = self.run_id(project, params)
        if not project.predictions.for_image(image_id, run_id):
            project.predictions.add(image_id, run_id, detections)
        self._stored.add(key)
        return True

    def run_id(self, project: Project, params: PostprocessParams) -> int:
        """This model's run in ``project`` for this session (recorded with ``params`` on first use); batch
        jobs store under it too, so an image is predicted once per session whichever way it was run."""
        run_id = self._run_ids.get(project.where)
        if run_id is None:
            run_id = self._run_ids[project.where] = new_model_run(project, self.detector, params)
        return run_id
