"""Running a detector: image → raw heads (+ transform) for ``deepmark.core.centernet.decode``.

``Detector`` wraps an exported ONNX model (onnxruntime, tuned CPU options) or a training checkpoint
(torch, for users without an ONNX file). Pre-processing is ``deepmark.core.imaging.preprocess`` — the very functions the
training data goes through. Test-time augmentation: the flip test averages the heads of the image and
of its mirror (mirrored back: columns reversed, group channels swapped through the grouping's flip map,
x offsets measured from a pixel become 1 − x); multi-scale averages the center and group heatmaps of
each scale resampled to the base scale's map (sizes and offsets come from the base scale). Every input
size — the model's own, one asked for, each scale's (rounded to the nearest) — is a multiple of the model's
``input_multiple`` (its metadata: 32, or 128 for an hourglass), and the image is letterboxed into it.

A model is checked when it is loaded (``ModelFileError`` naming the file and the first problem): its
metadata (``read_model_info``), its one input (named ``image``, float32, laid out (batch, 3, height,
width); a batch, height or width fixed in the graph is honoured: a fixed size must be the metadata's
input size, a fixed batch is fed that many images at a time), then a dry run on a small made-up picture
that checks every head's shape, finiteness and, for the heatmaps (sigmoid applied), the range [0, 1].
On a real image the same value checks run again: a head that is NaN/Inf or out of range there is a
``ModelOutputError`` for that image (its heads are never returned, so nothing is cached or stored).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deepmark.core.centernet.decode import head_values_problem
from deepmark.core.domain.structures import HEAD_NAMES, OUTPUT_STRIDE, RawHeads
from deepmark.core.domain.taxonomy import Taxonomy, load_taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.formats.model_file import ModelFileError, read_model_info
from deepmark.core.imaging.preprocess import (
    border_colour,
    image_to_map,
    letterbox_affine,
    to_network_input,
    warp_image,
)
from deepmark.core.util.resources import resource_path

DEFAULT_MODEL = ("models", "deepmark-default-fp32.onnx")
PAPER_SCALES = (0.85, 0.95, 1.1)  # DeepMark++ Table 3's multi-scale multipliers
INPUT_NAME = "image"  # what deepmark.core.training.export names the network's input
DRY_RUN_SIDE = 64  # pixels of a dynamic input side in the load-time dry run: small, so loading stays fast
DRY_RUN_BATCH = 2  # images in the dry run of a dynamic-batch model: checks that the batch axis really is dynamic


class ModelOutputError(DeepMarkError):
    """The model's output on one input is unusable (NaN/Inf, a heatmap outside [0, 1], a wrong shape). The
    message names the model; ``path`` is None, so whoever ran it names the image (``FileError.from_error``,
    the session's problem line)."""


@dataclass(frozen=True)
class InputSpec:
    """The sizes the network's input fixes: ``batch`` images, ``height`` × ``width`` pixels; None: dynamic."""

    batch: int | None = None
    height: int | None = None
    width: int | None = None


def default_model_path() -> Path:
    return resource_path(*DEFAULT_MODEL)


@dataclass(frozen=True)
class TestTimeAugmentation:
    """``flip``: average with the mirrored image; ``scales``: input-size multipliers (1.0 = the model's)."""

    __test__ = False  # not a pytest test class, despite the name
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)

    def key(self) -> str:
        """A short stable name, for cache keys."""
        return f"flip{int(self.flip)}-s{'_'.join(f'{s:g}' for s in self.scales)}"


def flip_heads(heads: RawHeads, group_flip: np.ndarray) -> RawHeads:
    """The heads of the horizontally mirrored image, for heads laid out as ``deepmark.core.centernet.encode`` trains
    them."""
    g = len(group_flip)
    h, w = heads.map_size
    hps = heads.hps.reshape(g, 2, h, w)[group_flip][..., ::-1].copy()
    hps[:, 0] = 1.0 - hps[:, 0]
    reg, off = heads.reg[..., ::-1].copy(), heads.hp_offset[..., ::-1].copy()
    reg[0], off[0] = 1.0 - reg[0], 1.0 - off[0]
    return RawHeads(heads.hm[..., ::-1].copy(), reg, heads.wh[..., ::-1].copy(), hps.reshape(2 * g, h, w),
                    heads.hm_hp[group_flip][..., ::-1].copy(), off, heads.image_to_map, heads.image_size)


def average_heads(a: RawHeads, b: RawHeads) -> RawHeads:
    return RawHeads(*((x + y) * np.float32(0.5) for x, y in zip(a.arrays().values(), b.arrays().values(),
                                                               strict=True)), a.image_to_map, a.image_size)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (onnxruntime's run to many lines), at most ``limit`` chars."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _fixed(dim: object) -> int | None:
    """An ONNX input dimension as onnxruntime reports it: an int when fixed, a name (or None) when dynamic."""
    return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None


def _input_spec(inputs: Sequence, path: Path) -> InputSpec:
    """Check onnxruntime's ``get_inputs()``: one float32 input named ``INPUT_NAME``, (batch, 3, H, W)."""
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        names = [i.name for i in inputs]
        raise ModelFileError(f"{path}: the model's inputs are {names}, expected one named '{INPUT_NAME}'", path=path)
    shape, kind = list(inputs[0].shape or []), inputs[0].type
    if kind != "tensor(float)":
        raise ModelFileError(f"{path}: input '{INPUT_NAME}' is {kind}, expected tensor(float) (float32)", path=path)
    if len(shape) != 4:
        raise ModelFileError(f"{path}: input '{INPUT_NAME}' has shape {shape}, expected (batch, 3, height, width)",
                             path=path)
    dims = [_fixed(d) for d in shape]
    if dims[1] != 3 and dims[3] == 3:
        raise ModelFileError(f"{path}: input '{INPUT_NAME}' is laid out {shape} (channels last, NHWC); this version "
                             "feeds (batch, 3, height, width) (NCHW)", path=path)
    if dims[1] is not None and dims[1] != 3:
        raise ModelFileError(f"{path}: input '{INPUT_NAME}' has {dims[1]} channels (shape {shape}), expected 3",
                             path=path)
    return InputSpec(batch=dims[0], height=dims[2], width=dims[3])


class _OnnxBackend:
    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        # idle worker threads sleep instead of spinning: as fast on this model (99.9 vs 109.7 ms at 512², 2
        # threads) and it leaves the CPU to the GUI thread while the network runs in the background
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 4  # fatal only: a failure is reported once, as our own one-line error
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelFileError(f"{path}: onnxruntime cannot load the model ({_one_line(exc)})", path=path) from None
        self.path = path
        self.spec = _input_spec(self.session.get_inputs(), path)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """(N, 3, H, W) → the heads in HEAD_NAMES order, each (N, C, h, w); a model with a fixed batch size
        is fed that many at a time (the last chunk padded with copies of its first image, then dropped)."""
        size = self.spec.batch
        if size is None or len(batch) == size:
            return self._run(batch)
        parts = []
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size]
            padding = np.repeat(chunk[:1], size - len(chunk), axis=0)
            parts.append(self._run(np.concatenate([chunk, padding]) if len(padding) else chunk))
        return [np.concatenate([part[k] for part in parts])[: len(batch)] for k in range(len(HEAD_NAMES))]

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(list(HEAD_NAMES), {INPUT_NAME: batch})


def shape_problem(outputs: Sequence[np.ndarray], channels: dict[str, int], batch: int,
                  map_size: tuple[int, int]) -> str | None:
    """What is wrong with the layout of a network run's heads, or None: HEAD_NAMES order, floating point,
    each (batch, C, h, w) with C from ``channels`` and (h, w) = ``map_size``."""
    if len(outputs) != len(HEAD_NAMES):
        return f"{len(outputs)} outputs, expected {len(HEAD_NAMES)} ({', '.join(HEAD_NAMES)})"
    for name, array in zip(HEAD_NAMES, outputs, strict=True):
        expected = (batch, channels[name], *map_size)
        if not np.issubdtype(np.asarray(array).dtype, np.floating):
            return f"head '{name}' is {np.asarray(array).dtype}, expected floating point"
        if np.shape(array) != expected:
            return f"head '{name}' has shape {tuple(np.shape(array))}, expected {expected}"
    return None


def value_problem(outputs: Sequence[np.ndarray], rows: Sequence[int]) -> str | None:
    """What is wrong with the values of the heads' batch ``rows``, or None: a NaN/Inf anywhere, or a heatmap
    (``HEATMAP_HEADS``, the sigmoid applied in the graph) outside [0, 1]."""
    rows = list(rows)
    for name, array in zip(HEAD_NAMES, outputs, strict=True):
        problem = head_values_problem(name, array[rows])
        if problem is not None:
            return problem
    return None


def probe_pictures(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``count`` copies of a made-up (H, W, 3) uint8 RGB picture of ``size`` (W, H) for the dry run: smooth
    ramps over the whole 0–255 range in every channel, like an ordinary photograph's values."""
    width, height = size
    x = np.linspace(0.0, 255.0, width, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 255.0, height, dtype=np.float32)[:, None]
    picture = np.stack(np.broadcast_arrays(x, y, (x + y) / 2), axis=-1).round().astype(np.uint8)
    return [picture] * count


class Detector:
    """A loaded and checked detector (see the module docstring). ``path``: an exported ``.onnx`` model
    (default: the bundled one) or a ``.pt`` training checkpoint. Raises ModelFileError naming the file and
    the first problem when it cannot be used."""

    def __init__(self, path: str | Path | None = None, threads: int | None = None,
                 taxonomy: Taxonomy | None = None) -> None:
        self.path = Path(path) if path is not None else default_model_path()
        self.taxonomy = taxonomy or load_taxonomy()
        if self.path.suffix == ".pt":
            self.info, self._backend = _checkpoint_backend(self.path, self.taxonomy, threads)
            self.input_spec = InputSpec()  # our own torch network: every size dynamic
        else:
            self.info = read_model_info(self.path)
            if tuple(self.info.category_ids) != self.taxonomy.category_ids:
                raise ModelFileError(f"{self.path}: model categories {list(self.info.category_ids)} do not "
                                     f"match the taxonomy's {list(self.taxonomy.category_ids)}", path=self.path)
            self._backend = _OnnxBackend(self.path, threads)
            self.input_spec = self._backend.spec
        try:
            self.grouping = self.info.grouping(self.taxonomy)
        except DeepMarkError as exc:  # a TaxonomyError names the grouping, not the file it came from
            raise ModelFileError(f"{self.path}: {exc}", path=self.path) from None
        self._channels = self.grouping.head_channels(self.taxonomy.num_classes)
        self._border = border_colour(self.info.mean, self.info.color_order)
        self._dry_run()

    @property
    def input_size(self) -> tuple[int, int]:
        return self.info.input_size

    def network_input(self, pictures: Sequence[np.ndarray]) -> np.ndarray:
        """Input-size (H, W, 3) uint8 RGB pictures → the (B, 3, H, W) float32 batch this model takes: its
        metadata's colour order, mean and std."""
        return to_network_input(pictures, self.info.mean, self.info.std, self.info.color_order)

    def _dry_run(self) -> None:
        """Run the network once on ``probe_pictures`` and check its heads; ModelFileError naming the file."""
        spec = self.input_spec
        for what, fixed, declared in (("width", spec.width, self.info.input_size[0]),
                                      ("height", spec.height, self.info.input_size[1])):
            if fixed is not None and fixed != declared:
                raise ModelFileError(f"{self.path}: the graph fixes the input {what} at {fixed}, the metadata's "
                                     f"input_size says {declared}", path=self.path)
        side = _round_up(DRY_RUN_SIDE, self.info.input_multiple)  # a size the network takes (128 for an hourglass)
        size = (spec.width or side, spec.height or side)
        count = spec.batch or DRY_RUN_BATCH
        try:
            outputs = self._backend.run(self.network_input(probe_pictures(count, size)))
        except Exception as exc:  # onnxruntime's or torch's own types: the model does not run
            raise ModelFileError(f"{self.path}: the model fails on a test input of {count}×3×{size[1]}×{size[0]} "
                                 f"({_one_line(exc)})", path=self.path) from None
        problem = (shape_problem(outputs, self._channels, count, _map_size(size))
                   or value_problem(outputs, range(count)))
        if problem is not None:
            raise ModelFileError(f"{self.path}: on a {size[0]}×{size[1]} test input, {problem}", path=self.path)

    def heads(self, image: np.ndarray, tta: TestTimeAugmentation = TestTimeAugmentation(),
              input_size: Sequence[int] | None = None) -> RawHeads:
        """Raw heads of one (H, W, 3) uint8 RGB image; ModelOutputError when the model's output on it is
        unusable."""
        return self.heads_batch([image], tta, input_size)[0]

    def heads_batch(self, images: Sequence[np.ndarray], tta: TestTimeAugmentation = TestTimeAugmentation(),
                    input_size: Sequence[int] | None = None) -> list[RawHeads]:
        """Raw heads of several RGB images (any sizes; each is letterboxed to the input size); the first
        image's ModelOutputError when the model's output on any of them is unusable (``heads_each`` reports
        each image on its own)."""
        results = self.heads_each(images, tta, input_size)
        for result in results:
            if isinstance(result, ModelOutputError):
                raise result
        return results

    def heads_and_mirror(self, image: np.ndarray, tta: TestTimeAugmentation = TestTimeAugmentation()
                         ) -> tuple[RawHeads, RawHeads | None]:
        """(``heads(image, tta)``, and with ``tta.flip`` the mirrored image's own heads mirrored back to this
        image's frame, fused over the scales like the average; None without flip) from the one network run
        the flip test makes anyway: the doubt score compares the two (``deepmark.core.studio.doubt``)."""
        mirrors: list[RawHeads | None] = []
        found = self.heads_each([image], tta, mirrors=mirrors)[0]
        if isinstance(found, ModelOutputError):
            raise found
        return found, (mirrors[0] if tta.flip else None)

    def heads_each(self, images: Sequence[np.ndarray], tta: TestTimeAugmentation = TestTimeAugmentation(),
                   input_size: Sequence[int] | None = None,
                   mirrors: list[RawHeads | None] | None = None) -> list[RawHeads | ModelOutputError]:
        """Per image of one batched run: its raw heads, or the ModelOutputError saying why the model's output
        on it is unusable (NaN/Inf, a heatmap outside [0, 1]). Raises DeepMarkError when a size it asks for
        is not a multiple of the model's ``input_multiple`` or differs from a size fixed in its graph.
        ``mirrors`` (with ``tta.flip``): filled with each image's mirrored heads, mirrored back (None where
        the output is unusable)."""
        base = tuple(input_size or self.input_size)
        sizes = [_scaled(base, s, self.info.input_multiple) for s in tta.scales]
        self._check_sizes([base, *sizes])
        # Scales that round to the same size (a coarse input multiple) run once and keep their weight.
        runs = {size: self._run_scale(images, size, tta.flip, keep_mirror=mirrors is not None)
                for size in dict.fromkeys(sizes)}
        per_scale = [runs[size] for size in sizes]
        reference = int(np.argmin([abs(s - 1.0) for s in tta.scales]))
        results = []
        for i in range(len(images)):
            found = [heads[i] for heads in per_scale]
            error = next((h for h in found if isinstance(h, ModelOutputError)), None)
            pairs = [h for h in found if isinstance(h, tuple)]  # (average, mirror) when the mirror is kept
            if pairs and error is None:
                averaged, mirrored = [p[0] for p in pairs], [p[1] for p in pairs]
                results.append(averaged[0] if len(found) == 1 else _fuse_scales(averaged[reference], averaged))
                mirrors.append(mirrored[0] if len(found) == 1 else _fuse_scales(mirrored[reference], mirrored))
                continue
            if mirrors is not None:
                mirrors.append(None)
            if error is not None or len(found) == 1:
                results.append(error or found[0])
            else:
                results.append(_fuse_scales(found[reference], found))
        return results

    def _check_sizes(self, sizes: Sequence[tuple[int, int]]) -> None:
        """DeepMarkError naming the model when a size is not a positive multiple of its ``input_multiple``
        or differs from a size fixed in its graph."""
        multiple = self.info.input_multiple
        fixed = (self.input_spec.width, self.input_spec.height)
        for size in sizes:
            if any(v <= 0 or v % multiple for v in size):
                raise DeepMarkError(f"{self.path}: input size {size[0]}×{size[1]} does not suit this model: width and "
                                    f"height must be positive multiples of {multiple} ({self.info.arch})",
                                    path=self.path)
            if any(f is not None and f != v for f, v in zip(fixed, size, strict=True)):
                wanted = "×".join("any" if f is None else str(f) for f in fixed)
                raise DeepMarkError(f"{self.path}: the model's graph takes {wanted} inputs only, not {size[0]}×"
                                    f"{size[1]} (multi-scale and other input sizes need a model exported with "
                                    "dynamic sizes)", path=self.path)

    def _forward(self, batch: np.ndarray) -> list[np.ndarray]:
        """The backend's heads of a (N, 3, H, W) batch; ModelOutputError when the runtime refuses it."""
        try:
            return self._backend.run(batch)
        except Exception as exc:  # onnxruntime's Fail/InvalidArgument/RuntimeException, torch's errors
            shape = "×".join(str(v) for v in batch.shape)
            raise ModelOutputError(f"the model {self.path.name} failed on a {shape} input ({_one_line(exc)})") from None

    def _run_scale(self, images, input_size: tuple[int, int], flip: bool,
                   keep_mirror: bool = False) -> list[RawHeads | tuple[RawHeads, RawHeads] | ModelOutputError]:
        """Per image: its heads (the flip average with ``flip``), or (average, mirror mirrored back) with
        ``flip`` and ``keep_mirror``, or the ModelOutputError."""
        affines, pictures = [], []
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise DeepMarkError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
            affine = letterbox_affine((image.shape[1], image.shape[0]), input_size)
            affines.append(affine)
            pictures.append(warp_image(image, affine, input_size, self._border))
        batch = pictures + ([p[:, ::-1] for p in pictures] if flip else [])
        outputs = self._forward(self.network_input(batch))
        problem = shape_problem(outputs, self._channels, len(batch), _map_size(input_size))
        if problem is not None:  # the same for every image of the batch
            raise ModelOutputError(f"the model {self.path.name} gives unusable output at "
                                   f"{input_size[0]}×{input_size[1]}: {problem}")
        result = []
        for i, image in enumerate(images):
            problem = value_problem(outputs, (i, len(images) + i) if flip else (i,))
            if problem is not None:
                result.append(ModelOutputError(f"the model {self.path.name} gives unusable output on this image: "
                                               f"{problem}"))
                continue
            heads = RawHeads(*(np.ascontiguousarray(o[i], np.float32) for o in outputs),
                             image_to_map=image_to_map(affines[i]), image_size=(image.shape[1], image.shape[0]))
            if flip:
                mirrored = RawHeads(*(np.ascontiguousarray(o[len(images) + i], np.float32) for o in outputs),
                                    heads.image_to_map, heads.image_size)
                mirrored = flip_heads(mirrored, self.grouping.group_flip)
                averaged = average_heads(heads, mirrored)
                result.append((averaged, mirrored) if keep_mirror else averaged)
                continue
            result.append(heads)
        return result


def _map_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the output map of an input of ``input_size`` (W, H)."""
    return input_size[1] // OUTPUT_STRIDE, input_size[0] // OUTPUT_STRIDE


def _scaled(size: tuple[int, int], scale: float, multiple: int) -> tuple[int, int]:
    """``size`` (W, H) times ``scale``, each side rounded to the nearest positive multiple of ``multiple``."""
    return tuple(max(multiple, int(round(v * scale / multiple)) * multiple) for v in size)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _fuse_scales(reference: RawHeads, all_scales: list[RawHeads]) -> RawHeads:
    """Average heatmaps of every scale on the reference map; regressions from the reference."""
    h, w = reference.map_size

    def resampled(arr: np.ndarray) -> np.ndarray:
        if arr.shape[1:] == (h, w):
            return arr
        planes = cv2.resize(np.ascontiguousarray(arr.transpose(1, 2, 0)), (w, h), interpolation=cv2.INTER_LINEAR)
        return planes.reshape(h, w, -1).transpose(2, 0, 1)

    hm = np.mean([resampled(x.hm) for x in all_scales], axis=0).astype(np.float32)
    hm_hp = np.mean([resampled(x.hm_hp) for x in all_scales], axis=0).astype(np.float32)
    return RawHeads(hm, reference.reg, reference.wh, reference.hps, hm_hp, reference.hp_offset,
                    reference.image_to_map, reference.image_size)


def _checkpoint_backend(path: Path, taxonomy: Taxonomy, threads: int | None):
    """(ModelInfo, runner) for a training checkpoint, run in torch (the training extras)."""
    try:
        from deepmark.core.network.checkpoint import CheckpointRunner, checkpoint_info, load_checkpoint
    except ImportError as exc:  # the app installed without the training extras, or its frozen build
        raise ModelFileError(f"{path}: a training checkpoint needs PyTorch, which is not installed ({exc}); "
                             "use an exported .onnx model, or install deepmark-studio[train]", path=path) from None
    checkpoint = load_checkpoint(path)
    info = checkpoint_info(checkpoint, taxonomy)
    return info, CheckpointRunner(checkpoint, info.grouping(taxonomy), taxonomy, threads)
