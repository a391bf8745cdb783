"""Synthetic datasets on disk in the DeepFashion2 layout: per-image generators (``scene_rng``), annotation
documents, single examples and whole datasets, optionally rendered in forked worker processes."""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from deepmark.core.domain.taxonomy import Taxonomy, load_taxonomy
from deepmark.core.synthetic.config import SynthConfig, SynthError
from deepmark.core.synthetic.scene import SynthItem, render_scene
from deepmark.core.util.atomic import write_atomically, write_text_atomically


def scene_rng(seed: int, image_id: int) -> np.random.Generator:
    """The generator of image ``image_id`` of the dataset with ``seed``."""
    return np.random.default_rng([int(seed), int(image_id)])


def annotation_dict(items: Sequence[SynthItem], taxonomy: Taxonomy | None = None, source: str = "user",
                    pair_id: int = 0) -> dict:
    """The per-image DeepFashion2 annotation (``source``, ``pair_id``, ``item1``..``itemN``)."""
    taxonomy = taxonomy or load_taxonomy()
    doc: dict = {"source": source, "pair_id": int(pair_id)}
    for k, s in enumerate(items, start=1):
        cat = taxonomy.category(s.item.category_id)
        flat: list[float | int] = []
        for x, y, v in s.item.landmarks:
            flat += [float(x), float(y), int(v)] if v > 0 else [0, 0, 0]
        doc[f"item{k}"] = {
            "category_id": cat.id,
            "category_name": cat.name,
            "bounding_box": [float(b) for b in s.item.box],
            "landmarks": flat,
            "segmentation": [list(map(float, poly)) for poly in s.segmentation],
            "style": int(s.style),
            "scale": int(s.scale),
            "occlusion": int(s.occlusion),
            "zoom_in": int(s.zoom_in),
            "viewpoint": int(s.viewpoint),
        }
    return doc


def write_example(out_dir: str | Path, image_id: int, seed: int = 0, config: SynthConfig | None = None,
                  taxonomy: Taxonomy | None = None) -> list[SynthItem]:
    """Render image ``image_id`` of the dataset with ``seed`` and write ``image/NNNNNN.jpg`` and
    ``annos/NNNNNN.json`` under ``out_dir`` (folders must exist); returns the items."""
    taxonomy = taxonomy or load_taxonomy()
    config = config or SynthConfig()
    out = Path(out_dir)
    image, items = render_scene(scene_rng(seed, image_id), taxonomy, config)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(config.jpeg_quality)])
    if not ok:
        raise SynthError(f"JPEG encoding failed for image {image_id}")
    name = f"{image_id:06d}"
    write_atomically(out / "image" / f"{name}.jpg", lambda handle: handle.write(jpg.tobytes()), binary=True)
    doc = annotation_dict(items, taxonomy, source="user", pair_id=image_id)
    write_text_atomically(out / "annos" / f"{name}.json", json.dumps(doc))
    return items


def _write_chunk(out_dir: str, ids: list[int], seed: int, config: SynthConfig, taxonomy: Taxonomy) -> int:
    for image_id in ids:
        write_example(out_dir, image_id, seed, config, taxonomy)
    return len(ids)


def generate_dataset(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    config: SynthConfig | None = None,
    taxonomy: Taxonomy | None = None,
    progress: Callable[[int, int], object] | None = None,
    start: int = 1,
    workers: int = 1,
) -> list[int]:
    """Write ``n`` synthetic images and annotations in the DeepFashion2 layout; returns the image ids.

    Files: ``out_dir/image/NNNNNN.jpg`` and ``out_dir/annos/NNNNNN.json`` for ids ``start`` ..
    ``start + n - 1``. Image ``i`` depends only on (``seed``, ``i``), so a dataset can be written in
    chunks or extended later (``start``) with the same result; existing files of those ids are
    replaced. ``workers`` > 1 renders in that many forked processes (serially where the platform
    cannot fork); the files are the same either way. ``progress(done, n)`` is called as images are
    written.
    """
    if n < 0 or start < 0 or workers < 1:
        raise SynthError(f"need n >= 0, start >= 0 and workers >= 1, got {n}, {start}, {workers}")
    taxonomy = taxonomy or load_taxonomy()
    config = config or SynthConfig()
    out = Path(out_dir)
    (out / "image").mkdir(parents=True, exist_ok=True)
    (out / "annos").mkdir(parents=True, exist_ok=True)
    ids = list(range(start, start + n))
    if workers == 1 or n < 8 or "fork" not in mp.get_all_start_methods():
        for done, image_id in enumerate(ids, start=1):
            write_example(out, image_id, seed, config, taxonomy)
            if progress:
                progress(done, n)
        return ids
    chunk = max(1, min(50, n // (4 * workers)))
    done = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
        futures = [pool.submit(_write_chunk, str(out), ids[k : k + chunk], seed, config, taxonomy)
                   for k in range(0, n, chunk)]
        for fut in futures:
            done += fut.result()
            if progress:
                progress(done, n)
    return ids
