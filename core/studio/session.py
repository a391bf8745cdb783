"""The state of one studio window, without Qt (in the spirit of napari's ``ViewerModel``): the open project,
the model, the current image with its stored items and live detections, the post-processing parameters,
and the load → heads → decode → store sequence. The window only shows it and forwards user intent to it.

Listeners subscribe to named events with ``session.events.connect(name, callback)``:

- ``project`` — another project is open (or none); the image, items and detections were cleared;
- ``model`` — another model is loaded;
- ``image`` — another image is current (``rgb`` may be None when it could not be read);
- ``items`` — the current image's stored items were re-read;
- ``detections`` — the current image's detections were decoded again (``heads`` may have changed too);
- ``record`` — the current image's row changed in the store (status, counts);
- ``params`` — the session chose the parameters itself (the project's own on open, else the model's
  recommendation): show them;
- ``params_offer`` — a model was loaded whose recommended parameters differ from the project's (those
  values): offer them;
- ``busy`` — the network is running for the current image (True), or no longer (False);
- ``model_problem`` — the model's output on the current image is unusable (the message), or usable again
  (None): nothing is stored for such an image, and the message stays until a decode succeeds;
- ``refinement`` — the landmark refinement's state changed (switched, a refiner loaded, running, done):
  ``refinement_state()`` says it in words;
- ``doubt`` — the model's doubt about an image was computed and stored (image id, ``DoubtRecord``): the
  current image's after each decode that stored it, and again once a burst of parameter changes ends;
- ``error`` / ``info`` — a message for the user (one line; the session never raises for a user action).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import Detection, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import Taxonomy, load_taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import TestTimeAugmentation, default_model_path
from deepmark.core.store import ImageRecord, ItemRecord, Project
from deepmark.core.store.presets import (
    model_default_params,
    model_recommends_params,
    project_params,
    set_project_params,
)
from deepmark.core.studio.heads_cache import image_key
from deepmark.core.studio.live import LiveModel
from deepmark.core.studio.refinement import LiveRefiner, RefinementKey
from deepmark.core.studio.uncertainty import doubt_key, image_doubt, store_doubt
from deepmark.core.util.lru import LruDict

EVENTS = ("project", "model", "image", "items", "detections", "record", "params", "params_offer", "busy",
          "model_problem", "refinement", "doubt", "error", "info")

Work = Callable[[], object]
Done = Callable[[object], None]
Background = Callable[[Work, Done], None]
"""``background(work, done)``: run ``work()`` off the caller's thread, then ``done(result)`` (an exception
object when it raised) back on the caller's thread. The app gives one running on a worker thread; without
one the session runs the network in place."""
Later = Callable[[Callable[[], None]], None]
"""``later(fn)``: run ``fn`` on the caller's thread once what is pending there (a repaint) is done. The app
runs it after the canvas's next paint (``Canvas.after_paint``), so that a new image is painted before its
detections are decoded and drawn and before the next images are computed; without one the session does
both at once."""
PREFETCH = 2  # images ahead whose heads are computed while the user looks at the current one


def file_signature(path: Path) -> tuple[int, int] | None:
    """(size in bytes, modification time in ns) of a file; None when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class Events:
    """Named callback lists: ``connect(name, fn)``, ``disconnect(name, fn)``, ``emit(name, *args)``.
    Callbacks run in the emitting thread, in connection order."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._callbacks: dict[str, list[Callable[..., object]]] = {name: [] for name in names}

    def _list(self, name: str) -> list[Callable[..., object]]:
        try:
            return self._callbacks[name]
        except KeyError:
            raise DeepMarkError(f"no session event {name!r}; events: {', '.join(self._callbacks)}") from None

    def connect(self, name: str, callback: Callable[..., object]) -> None:
        self._list(name).append(callback)

    def disconnect(self, name: str, callback: Callable[..., object]) -> None:
        callbacks = self._list(name)
        if callback in callbacks:
            callbacks.remove(callback)

    def emit(self, name: str, *args: object) -> None:
        for callback in list(self._list(name)):
            callback(*args)


class Session:
    """One window's project, model, current image and parameters. Every method that acts for the user
    reports problems through the ``error`` event and leaves the state consistent; none raises
    ``DeepMarkError``."""

    def __init__(self, params: PostprocessParams | None = None, taxonomy: Taxonomy | None = None,
                 heads_dir: str | Path | None = None, background: Background | None = None,
                 later: Later | None = None) -> None:
        self.taxonomy = taxonomy or load_taxonomy()
        self.heads_dir = heads_dir  # the disk heads cache every model of this session uses (None: memory only)
        self.events = Events(EVENTS)
        self.project: Project | None = None
        self.model: LiveModel | None = None
        self.record: ImageRecord | None = None
        self.rgb: np.ndarray | None = None  # (H, W, 3) uint8 RGB of the current image
        self.items: list[ItemRecord] = []
        self.version: int | None = None  # the current image's version when its items were read
        self.detections: list[Detection] = []  # what is shown: refined when refinement is on and has run
        self.unrefined: list[Detection] = []  # the decoder's detections of the current image
        self.refiner: LiveRefiner | None = None
        self.refine_on = False
        self._refining: set[RefinementKey] = set()  # being refined in the background
        self.params = params or PostprocessParams.all_techniques()
        self.tta = TestTimeAugmentation()
        self.model_problem: str | None = None  # why the model's output on the current image is unusable
        self.background = background
        self.later = later
        self._pending: set[tuple[int, str]] = set()  # (image id, TTA key) whose heads are being computed
        # the pixels the background read while computing an image ahead, so that opening it reads nothing
        self._read_ahead: LruDict[tuple[int, str], tuple[np.ndarray, tuple | None]] = LruDict(PREFETCH + 1)
        self._doubts_stored: set[tuple[str, int]] = set()  # (doubt key, image id) scored in this project

    # -- project -------------------------------------------------------------------------------

    def open_project(self, project: Project) -> None:
        """Make ``project`` the open one (the previous one is closed); the current image is cleared."""
        if self.project is not None and self.project is not project:
            self.project.close()
        if self.project is not project:
            # cached heads and refinements are per image id, and ids name other images in another project
            for cache in (self.model, self.refiner):
                if cache is not None:
                    cache.forget()
        self.project = project
        self._doubts_stored.clear()
        self._clear_image()
        self.events.emit("project")
        self._params_for_project()

    def _params_for_project(self) -> None:
        """The project's own parameters; for a project that has none, the model's recommendation (when it
        names one) — never what another project left behind."""
        try:
            stored = project_params(self.project)
        except DeepMarkError as exc:
            self.events.emit("error", f"cannot read the project's parameters: {exc}")
            stored = None
        chosen = stored
        if chosen is None and self.model is not None and model_recommends_params(self.model.detector.info):
            chosen = model_default_params(self.model.detector.info)
        if chosen is not None and chosen != self.params:
            self.params = chosen
            self.events.emit("params")

    def save_params(self) -> None:
        """Keep the parameters in the open project (the window calls this once a burst of changes ends)."""
        if self.project is None or self.project.read_only is not None:
            return  # a read-only project keeps what it has (said when it was opened)
        try:
            if project_params(self.project) != self.params:
                set_project_params(self.project, self.params)
        except DeepMarkError as exc:
            self.events.emit("error", f"parameters not kept in the project: {exc}")

    def close_project(self) -> None:
        if self.project is not None:
            self.project.close()
        self.project = None
        self._clear_image()
        self.events.emit("project")

    def shutdown(self) -> None:
        """Close the project without telling anyone (the window is closing)."""
        if self.project is not None:
            self.project.close()
        self.project = None
        self._clear_image()

    def _clear_image(self) -> None:
        self.record, self.rgb, self.items, self.detections, self.version = None, None, [], [], None
        self.unrefined = []
        self._read_ahead.clear()

    # -- model ---------------------------------------------------------------------------------

    def load_model(self, path: str | Path | None = None) -> bool:
        """Load a model file (None: the bundled default). A file that does not load leaves the model in use
        in place and says so (``error``); then False."""
        target = Path(path) if path is not None else default_model_path()
        try:
            model = LiveModel.load(target, heads_dir=self.heads_dir)
        except DeepMarkError as exc:
            message = str(exc)
            if path is None:
                message = (f"the default model is not installed yet ({exc}); choose one with Model → Choose model "
                           "file…")
            elif self.model is not None:
                message = f"{exc} (still using {self.model.path.name})"
            self.events.emit("error", message)
            return False
        model.tta = self.tta
        self.model = model
        self.events.emit("model")
        self.events.emit("info", f"model loaded: {model.describe()}")
        if model_recommends_params(model.detector.info):
            recommended = model_default_params(model.detector.info)
            try:
                own = project_params(self.project) if self.project is not None else None
            except DeepMarkError:
                own = None
            if own is None:
                if recommended != self.params:
                    self.params = recommended
                    self.events.emit("params")
            elif recommended != own:
                self.events.emit("params_offer", recommended)
        self.run_model()
        return True

    def set_tta(self, tta: TestTimeAugmentation) -> None:
        """Switch test-time augmentation: the current image's heads for it are computed once (a network run);
        every setting's heads stay cached, so switching back only re-decodes."""
        self.tta = tta
        if self.model is not None:
            self.model.tta = tta
            self.run_model()

    # -- landmark refinement -------------------------------------------------------------------

    def load_refiner(self, path: str | Path | None = None) -> bool:
        """Load a refinement model file (None: the bundled one). A file that does not load leaves the refiner
        in use in place and says so (``error``); then False."""
        try:
            refiner = LiveRefiner.load(path)
        except DeepMarkError as exc:
            keeping = f" (still using {self.refiner.describe()})" if self.refiner is not None else ""
            self.events.emit("error", f"{exc}{keeping}")
            return False
        self.refiner = refiner
        mismatch = refiner.mismatch(self.model.path) if self.model is not None else None
        if mismatch:
            self.events.emit("error", f"refinement model {refiner.describe()} loaded, but it was {mismatch}")
        else:
            self.events.emit("info", f"refinement model loaded: {refiner.describe()}")
        self.events.emit("refinement")
        self._show_refinement()
        return True

    def set_refinement(self, on: bool) -> None:
        """Switch landmark refinement on or off. On: the current image's detections are refined now (a network
        run per garment, in the background), and every image's after its decode; off: the decoder's are shown."""
        if on and self.refiner is None and not self.load_refiner():
            on = False
        self.refine_on = on
        self.events.emit("refinement")
        self._show_refinement()

    def refinement_state(self) -> str:
        """The refinement's state in words, for the panel."""
        if not self.refine_on:
            return "off"
        key = self._refinement_key()
        if key is not None and key in self._refining:
            return "refining…"
        if key is not None and self.refiner is not None and self.refiner.cached(key) is not None:
            return f"refined by {self.refiner.describe()}"
        return "waiting (runs once the sliders rest)" if self.unrefined else "on"

    def _refinement_key(self) -> RefinementKey | None:
        if self.record is None or self.model is None:
            return None
        return self.model.model_key, self.record.id, self.model.tta.key(), self.params

    def _show_refinement(self) -> None:
        """Show the refined detections when they are known, else the decoder's — and refine them when needed."""
        key = self._refinement_key() if self.refine_on and self.refiner is not None else None
        refined = self.refiner.cached(key) if key is not None else None
        self.detections = refined if refined is not None else self.unrefined
        self.events.emit("detections")
        if self.refine_on and refined is None:
            self.refine()

    def refine(self) -> None:
        """Refine the current image's decoded detections (in the background when the session has one), unless
        refinement is off, already known or under way. Never called on a slider move: after a decode of a new
        image, and once a burst of parameter changes has ended (``settle_params``)."""
        key = self._refinement_key()
        if (not self.refine_on or self.refiner is None or key is None or self.rgb is None or not self.unrefined
                or key in self._refining or self.refiner.cached(key) is not None):
            return
        refiner, rgb, unrefined = self.refiner, self.rgb, list(self.unrefined)
        self._refining.add(key)
        self.events.emit("refinement")

        def done(result: object) -> None:
            self._refining.discard(key)
            if isinstance(result, BaseException):
                self.events.emit("error", f"{self.record.path if self.record else 'image'}: landmark refinement "
                                          f"failed ({result}); the decoder's landmarks are shown")
            elif refiner is self.refiner:
                refiner.keep(key, result)
                if key == self._refinement_key() and self.refine_on:
                    self.detections = result
                    self.events.emit("detections")
            self.events.emit("refinement")

        if self.background is None:
            try:
                done(refiner.refine(rgb, unrefined))
            except DeepMarkError as exc:
                done(exc)
        else:
            self.background(lambda: refiner.refine(rgb, unrefined), done)

    # -- parameters ----------------------------------------------------------------------------

    def settle_params(self) -> None:
        """A burst of parameter changes has ended: keep them in the project, refine with them, and score the
        current image's doubt under them (the scores of other parameters are no longer current)."""
        self.save_params()
        self.refine()
        self.store_doubt()

    # -- doubt ---------------------------------------------------------------------------------

    def doubt_key(self) -> str | None:
        """The key current doubt scores are stored under (model file, TTA, parameters); None without a model."""
        if self.model is None:
            return None
        return doubt_key(self.model.model_key, self.model.tta.key(), self.params)

    def store_doubt(self) -> None:
        """Score the current image's doubt from its cached heads and store it under ``doubt_key`` (once per key
        and image; never runs the network); ``doubt`` follows. Nothing when the heads are not cached yet or the
        project can only be read."""
        heads = self.heads()
        if heads is None or self.project is None or self.project.read_only is not None or self.model_problem:
            return
        key, image_id = self.doubt_key(), self.record.id
        if (key, image_id) in self._doubts_stored:
            return
        try:
            if self.project.doubts.get(image_id, key) is not None:  # a batch job scored it under this key
                self._doubts_stored.add((key, image_id))
                return
            doubt = image_doubt(heads, self.model.mirror(image_id), self.params, self.taxonomy,
                                self.model.detector.grouping)
            stored = store_doubt(self.project, image_id, key, doubt, self.model.run_id(self.project, self.params))
        except DeepMarkError as exc:
            self.events.emit("error", f"{self.record.path}: doubt not scored ({exc})")
            return
        self._doubts_stored.add((key, image_id))
        self.events.emit("doubt", image_id, stored)

    def set_params(self, params: PostprocessParams) -> float | None:
        """New post-processing parameters: re-decode the cached heads (never the network); ``redecode``'s
        time."""
        self.params = params
        return self.redecode()

    # -- current image -------------------------------------------------------------------------

    def show_image(self, record: ImageRecord) -> None:
        """Make ``record`` the current image: read it (or take the pixels read ahead), its stored items, then
        its detections (after the image is painted, when the session has ``later``)."""
        self.record = record
        self.detections, self.unrefined, self.items, self.version = [], [], [], None
        try:
            self.rgb = self._pixels_read_ahead(record)
            if self.rgb is None and self.project is not None:
                self.rgb = read_image(self.project.absolute_path(record.path))
        except DeepMarkError as exc:
            self.rgb = None
            self.events.emit("error", f"cannot show {record.path}: {exc}")
        self.events.emit("image")
        self.reload_items()
        self.events.emit("detections")
        if self.rgb is None:
            return
        if self.later is None:
            self.run_model()
        else:
            self.later(lambda: self.run_model() if self.record is not None and self.record.id == record.id else None)

    def _pixels_read_ahead(self, record: ImageRecord) -> np.ndarray | None:
        """The pixels the background read for ``record`` — only while its file is unchanged since."""
        found = self._read_ahead.pop((record.id, image_key(record)))
        if found is None or self.project is None:
            return None
        pixels, signature = found
        return pixels if file_signature(self.project.absolute_path(record.path)) == signature else None

    def reload_items(self) -> None:
        """Re-read the current image's stored items (after an edit, an undo or an import), and its version
        first: an edit made on what is shown passes that version, so a change by someone else in between
        is refused rather than overwritten."""
        if self.record is None or self.project is None:
            return
        try:
            version = self.project.images.get(self.record.id).version
            self.items = self.project.annotations.for_image(self.record.id)
            self.version = version
        except DeepMarkError as exc:
            self.items, self.version = [], None
            self.events.emit("error", str(exc))
        self.events.emit("items")

    def edit_saved(self, image_id: int, version: int) -> None:
        """An edit of ours moved the image to ``version`` (what is shown is that version once re-read)."""
        if self.record is not None and self.record.id == image_id:
            self.version = version

    def refresh_record(self, record: ImageRecord | None) -> None:
        """The current image's row as the store now has it (``record`` None: not the current image)."""
        if record is not None and self.record is not None and record.id == self.record.id:
            self.record = record
            self.events.emit("record")

    def item(self, annotation_id: int) -> ItemRecord | None:
        return next((i for i in self.items if i.id == annotation_id), None)

    # -- load → heads → decode → store ---------------------------------------------------------

    def heads(self) -> RawHeads | None:
        """The current image's cached heads for the current TTA setting (never runs the network)."""
        if self.model is None or self.record is None:
            return None
        return self.model.cached(self.record.id)

    def run_model(self) -> None:
        """Heads of the current image (cache first, else the network: in the background when the session has
        ``background``, the detections following when ready), decode, and store the predictions once per
        model run (``record`` follows when the image's row changed)."""
        if self.model is None or self.record is None or self.rgb is None:
            return
        record, tta = self.record, self.model.tta
        if self.background is not None:
            if self.model.cached(record.id) is None:  # memory only: the disk is read in the background too
                self._compute_later(record, self.rgb, tta)
                return
        else:
            try:
                self.model.heads(record.id, self.rgb, image_key(record))
            except DeepMarkError as exc:
                self._failed(exc)
                return
        self._decode_and_store()

    def _failed(self, exc: DeepMarkError) -> None:
        # an error about a file names it already; otherwise say which image failed
        message = str(exc) if exc.path is not None else f"{self.record.path}: the model failed ({exc})"
        self._set_problem(message)

    def _compute_later(self, record: ImageRecord, rgb: np.ndarray | None, tta: TestTimeAugmentation) -> None:
        """Have the background load the heads from the disk cache, else compute them (reading the image there
        when ``rgb`` is None): no file is read on the session's thread."""
        key = (record.id, tta.key())
        if key in self._pending:
            return  # already on its way (a prefetch): its arrival decodes it when it is the current image
        self._pending.add(key)
        model, where = self.model, self.project.absolute_path(record.path) if self.project else None
        if record is self.record:
            self.events.emit("busy", True)

        def work():
            saved = model.saved(image_key(record), tta, record.id)
            if saved is not None:
                return saved, None, False
            if rgb is not None:
                return model.compute(record.id, rgb, image_key(record), tta), None, True
            signature = file_signature(where)  # before reading: a change while reading shows as a change
            pixels = read_image(where)
            return model.compute(record.id, pixels, image_key(record), tta), (pixels, signature), True

        self.background(work, lambda result: self._arrived(model, record, tta.key(), result))

    def _arrived(self, model: LiveModel, record: ImageRecord, tta_key: str, result: object) -> None:
        """(heads, (pixels, file signature) read there or None, whether the network ran) from the background,
        or the exception it raised; back on the session's thread."""
        image_id = record.id
        self._pending.discard((image_id, tta_key))
        current = (model is self.model and self.record is not None and self.record.id == image_id
                   and model.tta.key() == tta_key)
        if isinstance(result, BaseException):
            if current:
                self.events.emit("busy", False)
                self._failed(result if isinstance(result, DeepMarkError) else DeepMarkError(str(result)))
            return
        heads, read_ahead, computed = result
        model.keep(image_id, tta_key, heads, computed)
        if read_ahead is not None and not current and model is self.model:
            self._read_ahead.put((image_id, image_key(record)), read_ahead)
        if current:
            self.events.emit("busy", False)
            self._decode_and_store()

    def prefetch(self, records: list[ImageRecord]) -> None:
        """Compute the heads of the images the user is likely to open next, in the background — handed over
        only once the current image is painted and decoded (``later``), so the network does not compete
        with that for the CPU."""
        if self.model is None or self.background is None:
            return
        if self.later is not None:
            self.later(lambda: self._prefetch_now(records))
        else:
            self._prefetch_now(records)

    def _prefetch_now(self, records: list[ImageRecord]) -> None:
        if self.model is None:
            return
        for record in records[:PREFETCH]:
            if self.model.cache.get(record.id, self.model.tta.key()) is None:  # memory only, no file read here
                self._compute_later(record, None, self.model.tta)

    def _decode_and_store(self) -> None:
        if self.redecode() is None:
            return  # no usable detections: nothing is stored, the image is not marked predicted
        self.refine()
        if self.project.read_only is not None:
            return  # shown, not stored: the project can only be read (said once, when it was opened)
        self.store_doubt()
        try:
            # the model run's predictions are the decoder's; refined landmarks reach the store when accepted
            if self.model.store_predictions(self.project, self.record.id, self.unrefined, self.params):
                self.refresh_record(self.project.images.get(self.record.id))
        except DeepMarkError as exc:
            self.events.emit("error", f"predictions not stored: {exc}")

    def _set_problem(self, message: str | None) -> None:
        if message != self.model_problem:
            self.model_problem = message
            self.events.emit("model_problem", message)

    def redecode(self) -> float | None:
        """Decode the cached heads with the parameters (``detections`` follows: the refined ones when refinement
        is on and has run for these parameters, else the decoder's; refinement itself never runs here); the
        decode time in ms, None when there were no heads or the decode failed (``model_problem`` says why)."""
        heads = self.heads()
        elapsed = None
        self.unrefined = []
        if heads is not None:
            start = time.perf_counter()
            try:
                self.unrefined = self.model.decode(heads, self.params)
            except DeepMarkError as exc:
                self._set_problem(f"{self.record.path}: the model's output cannot be used ({exc})")
            else:
                elapsed = (time.perf_counter() - start) * 1000
                self._set_problem(None)
        refined = None
        if self.refine_on and self.refiner is not None:  # the key hashes the model file once: only when on
            key = self._refinement_key()
            refined = self.refiner.cached(key) if key is not None else None
        self.detections = refined if refined is not None else self.unrefined
        self.events.emit("detections")
        if self.refine_on:
            self.events.emit("refinement")
        return elapsed
