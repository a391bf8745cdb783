"""The per-image doubt score as the studio keeps it: computed from the cached heads whenever an image is decoded
(the live view, batch jobs) and stored under the key of what it was computed with, so that a score of another
model, test-time augmentation or parameters is never shown as the current one ("not computed" instead).

The score itself is ``deepmark.core.studio.doubt.image_uncertainty``. With the flip test on, the heads cache
keeps the mirrored image's heads too (``MIRROR_SUFFIX``): the flip part compares the image's own heads with
its mirror's, both recovered from what the flip test computed (the average and the mirror).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import numpy as np

from deepmark.core.domain.structures import PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.store import Project
from deepmark.core.store.doubts import DoubtRecord
from deepmark.core.store.errors import InvalidValueError
from deepmark.core.studio.doubt import ImageDoubt, image_uncertainty

MIRROR_SUFFIX = "+mirror"  # the heads cache's TTA key of the mirror's heads: "<tta key>+mirror"
REVIEW_ORDER_KEY = "review_order"  # project setting: "uncertainty" or "file"
REVIEW_ORDERS = ("file", "uncertainty")


def mirror_key(tta_key: str) -> str:
    """The heads cache's key for the mirrored image's heads under TTA ``tta_key``."""
    return tta_key + MIRROR_SUFFIX


def doubt_key(model_key: str, tta_key: str, params: PostprocessParams) -> str:
    """32 hex digits naming what a doubt score was computed with: the model file's content key, the TTA key
    and every post-processing parameter (the score depends on the thresholds and techniques)."""
    text = json.dumps({"model": model_key, "tta": tta_key, "params": asdict(params)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def own_heads(averaged: RawHeads, mirror: RawHeads) -> RawHeads:
    """The image's own heads from the flip test's average and the mirror's heads (mirrored back): 2a − m, the
    heatmaps clipped to [0, 1] (the cache's float16 rounding can leave them a hair outside)."""
    arrays = {k: 2.0 * a - b for (k, a), b in zip(averaged.arrays().items(), mirror.arrays().values(), strict=True)}
    arrays["hm"] = np.clip(arrays["hm"], 0.0, 1.0)
    arrays["hm_hp"] = np.clip(arrays["hm_hp"], 0.0, 1.0)
    return RawHeads(**{k: v.astype(np.float32) for k, v in arrays.items()}, image_to_map=averaged.image_to_map,
                    image_size=averaged.image_size)


def image_doubt(heads: RawHeads, mirror: RawHeads | None, params: PostprocessParams, taxonomy: Taxonomy,
                grouping: Grouping) -> ImageDoubt:
    """``image_uncertainty`` of one image: of ``heads`` alone, or (``mirror`` given: ``heads`` are then the
    flip test's average) of the image's own heads against its mirror's. DecodeError for unusable heads."""
    if mirror is None:
        return image_uncertainty(heads, params, taxonomy, grouping)
    return image_uncertainty(own_heads(heads, mirror), params, taxonomy, grouping, flipped=mirror)


def store_doubt(project: Project, image_id: int, key: str, doubt: ImageDoubt, run_id: int | None) -> DoubtRecord:
    """Keep ``doubt`` for the image under ``key`` (replacing one stored before under it)."""
    return project.doubts.put(image_id, key, score=doubt.score, expected_edits=doubt.expected_edits,
                              centre=doubt.centre, landmarks=doubt.landmarks, flip=doubt.flip, run_id=run_id)


def describe(record: DoubtRecord | None) -> str:
    """One line for a tooltip: the score and its parts, or "not computed"."""
    if record is None:
        return "doubt: not computed for this model and these parameters"
    flip = "" if np.isnan(record.flip) else f", flip {record.flip:.2f}"
    return (f"doubt {record.score:.2f} (≈ {record.expected_edits:.0f} edits expected; centre {record.centre:.2f}, "
            f"landmarks {record.landmarks:.2f}{flip})")


def review_order(project: Project) -> str:
    """The project's review order ("file" or "uncertainty"; "file" when never set or unreadable)."""
    value = project.setting(REVIEW_ORDER_KEY)
    return value if value in REVIEW_ORDERS else "file"


def set_review_order(project: Project, order: str) -> None:
    if order not in REVIEW_ORDERS:
        raise InvalidValueError(f"review order must be one of {REVIEW_ORDERS}, got {order!r}")
    project.set_setting(REVIEW_ORDER_KEY, order)
