"""DeepFashion2 training data: a plain sequence of encoded samples, plus a torch-free collate.

A dataset folder holds ``image/NNNNNN.jpg`` (or .jpeg / .png) and ``annos/NNNNNN.json``. The
annotations are read once; files that cannot be read and annotations without an image are listed in
``DF2Dataset.errors`` and left out. Each sample is the image pre-processed exactly as at inference
(``deepmark.core.imaging.preprocess``: letterbox, or a random affine when augmenting), normalised, with the CenterNet
targets of ``deepmark.core.centernet.encode``. Torch is not imported here: a ``torch.utils.data.DataLoader`` accepts any
object with ``__len__`` and ``__getitem__``, and ``collate`` returns numpy arrays for the trainer to convert.

Determinism: sample ``i`` in epoch ``e`` uses ``numpy.random.default_rng([seed, e, i])``, so the same
(seed, index, epoch) gives the same augmentation whatever the worker or the order. Call ``set_epoch``
before each epoch; DataLoader workers copy the dataset when they start, so create the iterator after
``set_epoch`` (persistent workers would keep the old epoch).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepmark.core.centernet.encode import MAX_OBJECTS, encode_targets
from deepmark.core.domain.structures import OUTPUT_STRIDE, Item
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.formats.df2 import FileError, read_coco_keypoints, read_df2_annotations
from deepmark.core.imaging.preprocess import image_to_map, letterbox_affine, to_network_input, warp_image
from deepmark.core.imaging.read import ImageError, image_size, read_image
from deepmark.core.training.augment import AugmentConfig, color_jitter, flip_items, mirror_affine, random_affine

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # preference order when one id has several files


class DatasetError(DeepMarkError):
    """A dataset folder lacks its ``image`` or ``annos`` sub-folder, or the dataset settings are unusable."""


def _image_index(folder: Path) -> dict[int, Path]:
    """Image id → file for every ``<digits>.<jpg|jpeg|png>`` in the folder (extension case ignored)."""
    rank = {ext: k for k, ext in enumerate(IMAGE_EXTENSIONS)}
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        ext = path.suffix.lower()
        if ext not in rank or not path.stem.isdigit():
            continue
        image_id = int(path.stem)
        if image_id not in found or rank[ext] < rank[found[image_id].suffix.lower()]:
            found[image_id] = path
    return found


def _box_area(item: Item) -> float:
    x1, y1, x2, y2 = np.asarray(item.box, np.float64)
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def keep_largest(items: Sequence[Item], max_objects: int) -> list[Item]:
    """At most ``max_objects`` items: the ones with the largest boxes, in their original order.

    DeepFashion2 images rarely hold more than a handful of garments; when one exceeds the slots, the
    small (often distant, partly hidden) ones are the least useful labels to lose. Ties keep the earlier.
    """
    if len(items) <= max_objects:
        return list(items)
    order = sorted(range(len(items)), key=lambda k: (-_box_area(items[k]), k))
    return [items[k] for k in sorted(order[:max_objects])]


class DF2Dataset:
    """Encoded DeepFashion2 samples (a sequence; see the module notes).

    ``input_size`` (W, H), both multiples of ``OUTPUT_STRIDE`` (32 for the backbones); ``augment``
    None means a plain letterbox and no colour change. ``ids`` lists the image ids in index order;
    ``errors`` the annotation files skipped and the annotated ids without an image file.
    """

    def __init__(
        self,
        root: str | Path,
        taxonomy: Taxonomy,
        grouping: Grouping,
        input_size: Sequence[int],
        augment: AugmentConfig | None = None,
        max_objects: int = MAX_OBJECTS,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        in_w, in_h = (int(v) for v in input_size)
        if in_w <= 0 or in_h <= 0 or in_w % OUTPUT_STRIDE or in_h % OUTPUT_STRIDE:
            raise DatasetError(f"input_size must be positive multiples of {OUTPUT_STRIDE}, got {tuple(input_size)}")
        if max_objects < 1:
            raise DatasetError(f"max_objects must be at least 1, got {max_objects}")
        self.input_size = (in_w, in_h)
        self.map_size = (in_h // OUTPUT_STRIDE, in_w // OUTPUT_STRIDE)  # (H, W) as encode_targets wants
        self.taxonomy = taxonomy
        self.grouping = grouping
        self.augment = augment
        self.max_objects = int(max_objects)
        self.seed = int(seed)
        self.epoch = 0

        self.errors: list[FileError] = []
        self._entries: list[tuple[int, Path, list[Item]]] = []
        if self.root.suffix.lower() == ".json" and self.root.is_file():
            self._read_coco(self.root)
        else:
            self._read_df2_folder(self.root)

    def _read_df2_folder(self, root: Path) -> None:
        image_dir, annos_dir = root / "image", root / "annos"
        for folder in (image_dir, annos_dir):
            if not folder.is_dir():
                raise DatasetError(f"{folder}: not a folder (a DeepFashion2 folder holds image/ and annos/)",
                                   path=folder)
        annotations, errors = read_df2_annotations(annos_dir, self.taxonomy)
        images = _image_index(image_dir)
        self.errors += errors
        for image_id, items in annotations.items():
            path = images.get(image_id)
            if path is None:
                self.errors.append(FileError(
                    annos_dir / f"{image_id:06d}.json",
                    f"no image file for image {image_id} in {image_dir} "
                    f"(looked for {image_id:06d} with {', '.join(IMAGE_EXTENSIONS)})",
                ))
                continue
            self._entries.append((image_id, path, items))

    def _read_coco(self, path: Path) -> None:
        """The official 294-keypoint COCO json; images are looked up in ``image/`` beside it, or beside it."""
        annotations, file_names, errors = read_coco_keypoints(path, self.taxonomy)
        self.errors += errors
        image_dir = path.parent / "image" if (path.parent / "image").is_dir() else path.parent
        for image_id in sorted(annotations):
            image_path = image_dir / file_names[image_id]
            if not image_path.is_file():
                self.errors.append(FileError(path, f"image {image_id}: {image_path} not found"))
                continue
            self._entries.append((image_id, image_path, annotations[image_id]))

    # -- sequence ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def ids(self) -> list[int]:
        return [image_id for image_id, _, _ in self._entries]

    def image_path(self, index: int) -> Path:
        return self._entries[index][1]

    def items(self, index: int) -> list[Item]:
        """The annotated items of sample ``index`` in image pixels (all of them, before ``max_objects``)."""
        return list(self._entries[index][2])

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of this epoch (see the module notes)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator sample ``index`` uses in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> dict:
        """Sample ``index``: ``image`` (3, H, W) float32, the target arrays of ``encode_targets``,
        ``image_id`` int, ``image_to_map`` (2, 3) float64 (original image → map pixels, including the
        mirror when ``flipped``), ``image_size`` (2,) int64 (w, h), ``flipped`` bool.

        Raises IndexError past the end and ImageError naming the file when the image cannot be read.
        """
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        image_id, path, items = self._entries[index]
        image = read_image(path)
        size = (image.shape[1], image.shape[0])
        items = keep_largest(items, self.max_objects)

        if self.augment is None:
            affine, flipped = letterbox_affine(size, self.input_size), False
        else:
            rng = self.rng(index % len(self))
            affine, flipped = random_affine(rng, size, self.input_size, self.augment)
        # Labels live in the mirrored image when flipped: permuted landmarks, mapped without the mirror.
        label_affine = mirror_affine(size[0]).then(affine) if flipped else affine
        if flipped:
            items = flip_items(items, size[0], self.taxonomy)

        picture = warp_image(image, affine, self.input_size)
        if self.augment is not None:
            picture = color_jitter(rng, picture, self.augment)
        targets = encode_targets(items, image_to_map(label_affine), self.map_size, self.taxonomy, self.grouping,
                                 self.max_objects)
        sample = {"image": to_network_input([picture])[0]}
        sample.update(targets.arrays())
        sample["image_id"] = image_id
        sample["image_to_map"] = image_to_map(affine).matrix.astype(np.float64)
        sample["image_size"] = np.array(size, np.int64)
        sample["flipped"] = flipped
        return sample

    # -- checks ------------------------------------------------------------------------------------

    def validate_images(self, decode: bool = False, drop: bool = False) -> list[FileError]:
        """One FileError per image that cannot be opened.

        By default only the header is read (``image_size``: fast, but a file truncated after its header
        passes); ``decode=True`` decodes every image fully (``read_image``). ``drop=True`` also removes
        those samples from the dataset and adds the errors to ``errors``.
        """
        check = read_image if decode else image_size
        bad: list[FileError] = []
        keep = []
        for entry in self._entries:
            try:
                check(entry[1])
            except ImageError as exc:
                bad.append(FileError.from_error(exc, entry[1]))
                continue
            keep.append(entry)
        if drop:
            self._entries = keep
            self.errors.extend(bad)
        return bad


def collate(samples: Sequence[dict]) -> dict[str, np.ndarray]:
    """Stack a list of samples key by key into numpy arrays (``image`` → (B, 3, H, W), ``image_id`` → (B,))."""
    if not samples:
        raise ValueError("collate needs at least one sample")
    keys = samples[0].keys()
    for sample in samples[1:]:
        if sample.keys() != keys:
            raise ValueError(f"samples have different keys: {sorted(keys)} vs {sorted(sample.keys())}")
    return {key: np.stack([np.asarray(sample[key]) for sample in samples]) for key in keys}
