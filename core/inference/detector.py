"""Running a detector: image → raw heads (+ transform) for ``deepmark.core.centernet.decode``.

``Detector`` wraps an exported ONNX model (onnxruntime, tuned CPU options) or a training checkpoint
(torch, for users without an ONNX file). Pre-processing is ``deepmark.core.imaging.preprocess`` — the very functions the
training data goes through. Test-time augmentation: the flip test averages the heads of the image and
of its mirror (mirrored back: columns reversed, group channels swapped through the grouping's flip map,
x offsets measured from a pixel become 1 − x); multi-scale averages the center and group heatmaps of
each scale resampled to the base scale's map (sizes and offsets come from the base scale).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deepmark.core.domain.structures import HEAD_NAMES, RawHeads
from deepmark.core.domain.taxonomy import Taxonomy, load_taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.formats.model_file import ModelFileError, read_model_info
from deepmark.core.imaging.preprocess import image_to_map, letterbox_affine, to_network_input, warp_image
from deepmark.core.util.resources import resource_path

DEFAULT_MODEL = ("models", "deepmark-default-fp32.onnx")
PAPER_SCALES = (0.85, 0.95, 1.1)  # DeepMark++ Table 3's multi-scale multipliers


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


class _OnnxBackend:
    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelFileError(f"{path}: onnxruntime cannot load the model ({exc})", path=path) from None

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(list(HEAD_NAMES), {"image": batch})


class Detector:
    """A loaded detector. ``path``: an exported ``.onnx`` model (default: the bundled one) or a ``.pt``
    training checkpoint. Raises ModelFileError naming the file when it cannot be used."""

    def __init__(self, path: str | Path | None = None, threads: int | None = None,
                 taxonomy: Taxonomy | None = None) -> None:
        self.path = Path(path) if path is not None else default_model_path()
        self.taxonomy = taxonomy or load_taxonomy()
        if self.path.suffix == ".pt":
            self.info, self._backend = _checkpoint_backend(self.path, self.taxonomy, threads)
            self.grouping = self.info.grouping(self.taxonomy)
        else:
            self.info = read_model_info(self.path)
            if tuple(self.info.category_ids) != self.taxonomy.category_ids:
                raise ModelFileError(f"{self.path}: model categories {list(self.info.category_ids)} do not "
                                     f"match the taxonomy's {list(self.taxonomy.category_ids)}", path=self.path)
            self.grouping = self.info.grouping(self.taxonomy)
            self._backend = _OnnxBackend(self.path, threads)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.info.input_size

    def heads(self, image: np.ndarray, tta: TestTimeAugmentation = TestTimeAugmentation(),
              input_size: Sequence[int] | None = None) -> RawHeads:
        """Raw heads of one (H, W, 3) uint8 RGB image."""
        return self.heads_batch([image], tta, input_size)[0]

    def heads_batch(self, images: Sequence[np.ndarray], tta: TestTimeAugmentation = TestTimeAugmentation(),
                    input_size: Sequence[int] | None = None) -> list[RawHeads]:
        """Raw heads of several RGB images (any sizes; each is letterboxed to the input size)."""
        base = tuple(input_size or self.input_size)
        per_scale = [self._run_scale(images, _scaled(base, s), tta.flip) for s in tta.scales]
        reference = per_scale[int(np.argmin([abs(s - 1.0) for s in tta.scales]))]
        if len(per_scale) == 1:
            return reference
        return [_fuse_scales(reference[i], [heads[i] for heads in per_scale]) for i in range(len(images))]

    def _run_scale(self, images, input_size: tuple[int, int], flip: bool) -> list[RawHeads]:
        affines, pictures = [], []
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise DeepMarkError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
            affine = letterbox_affine((image.shape[1], image.shape[0]), input_size)
            affines.append(affine)
            pictures.append(warp_image(image, affine, input_size))
        batch = to_network_input(pictures + ([p[:, ::-1] for p in pictures] if flip else []))
        outputs = self._backend.run(batch)
        result = []
        for i, image in enumerate(images):
            heads = RawHeads(*(np.ascontiguousarray(o[i], np.float32) for o in outputs),
                             image_to_map=image_to_map(affines[i]), image_size=(image.shape[1], image.shape[0]))
            if flip:
                mirrored = RawHeads(*(np.ascontiguousarray(o[len(images) + i], np.float32) for o in outputs),
                                    heads.image_to_map, heads.image_size)
                heads = average_heads(heads, flip_heads(mirrored, self.grouping.group_flip))
            result.append(heads)
        return result


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return tuple(max(32, int(round(v * scale / 32)) * 32) for v in size)


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
