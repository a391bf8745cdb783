"""Synthetic DeepFashion2 datasets (``deepmark.core.synthetic``): determinism, file format, label consistency."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from deepmark.core.domain.taxonomy import Taxonomy
from deepmark.core.formats.df2 import read_df2_annotations
from deepmark.core.synthetic import (
    SynthConfig,
    SynthError,
    SynthItem,
    _shape,
    generate_dataset,
    render_scene,
    scene_rng,
)

SMALL = SynthConfig(image_size=(192, 160))
CROWDED = SynthConfig(image_size=(192, 192), min_items=4, max_items=6, occlusion_prob=1.0)


@pytest.fixture(scope="module")
def scenes(taxonomy) -> list[tuple[np.ndarray, list[SynthItem]]]:
    """60 scenes with the default look at a small size."""
    return [render_scene(scene_rng(7, i), taxonomy, SMALL) for i in range(60)]


@pytest.fixture(scope="module")
def crowded(taxonomy) -> list[tuple[np.ndarray, list[SynthItem]]]:
    return [render_scene(scene_rng(3, i), taxonomy, CROWDED) for i in range(20)]


def _later_union(items: list[SynthItem], k: int, shape: tuple[int, int]) -> np.ndarray:
    union = np.zeros(shape, bool)
    for later in items[k + 1 :]:
        union |= later.mask
    return union


def _pixel(mask: np.ndarray, xy: np.ndarray) -> np.ndarray:
    x = np.clip(np.round(xy[:, 0]).astype(int), 0, mask.shape[1] - 1)
    y = np.clip(np.round(xy[:, 1]).astype(int), 0, mask.shape[0] - 1)
    return mask[y, x]


# ---------------------------------------------------------------------------------------------
# Determinism and files


def test_dataset_is_deterministic_and_chunkable(tmp_path, taxonomy):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert generate_dataset(a, 4, seed=5, config=SMALL, taxonomy=taxonomy) == [1, 2, 3, 4]
    generate_dataset(b, 4, seed=5, config=SMALL, taxonomy=taxonomy)
    generate_dataset(c, 2, seed=5, config=SMALL, taxonomy=taxonomy, start=3)  # a later chunk alone
    for image_id in (1, 2, 3, 4):
        name = f"{image_id:06d}"
        pairs = [(a, b)] + ([(a, c)] if image_id >= 3 else [])
        for x, y in pairs:
            assert (x / "annos" / f"{name}.json").read_bytes() == (y / "annos" / f"{name}.json").read_bytes()
            img_x = cv2.imread(str(x / "image" / f"{name}.jpg"))
            img_y = cv2.imread(str(y / "image" / f"{name}.jpg"))
            assert img_x.shape == (160, 192, 3)
            np.testing.assert_array_equal(img_x, img_y)
    assert sorted(p.name for p in (c / "annos").iterdir()) == ["000003.json", "000004.json"]
    # another seed gives other data
    generate_dataset(c, 1, seed=6, config=SMALL, taxonomy=taxonomy)
    assert (c / "annos" / "000001.json").read_bytes() != (a / "annos" / "000001.json").read_bytes()


def test_render_scene_is_deterministic(taxonomy):
    img1, items1 = render_scene(scene_rng(1, 9), taxonomy, SMALL)
    img2, items2 = render_scene(scene_rng(1, 9), taxonomy, SMALL)
    np.testing.assert_array_equal(img1, img2)
    assert len(items1) == len(items2) >= 1
    for s, t in zip(items1, items2, strict=True):
        assert s.item.category_id == t.item.category_id
        np.testing.assert_array_equal(s.item.box, t.item.box)
        np.testing.assert_array_equal(s.item.landmarks, t.item.landmarks)
        assert s.segmentation == t.segmentation


def test_files_read_back_equal(tmp_path, taxonomy):
    from deepmark.core.synthetic import write_example

    (tmp_path / "image").mkdir()
    (tmp_path / "annos").mkdir()
    written = {i: write_example(tmp_path, i, seed=11, config=SMALL, taxonomy=taxonomy) for i in range(1, 7)}
    gt, errors = read_df2_annotations(tmp_path, taxonomy)
    assert errors == []
    assert sorted(gt) == list(range(1, 7))
    for image_id, items in written.items():
        assert len(gt[image_id]) == len(items)
        for read, synth in zip(gt[image_id], items, strict=True):
            assert read.category_id == synth.item.category_id
            np.testing.assert_array_equal(read.box, synth.item.box)
            np.testing.assert_array_equal(read.landmarks, synth.item.landmarks)
        doc = json.loads((tmp_path / "annos" / f"{image_id:06d}.json").read_text())
        assert doc["source"] == "user" and doc["pair_id"] == image_id
        for k, synth in enumerate(items, start=1):
            raw = doc[f"item{k}"]
            assert set(raw) == {"category_id", "category_name", "bounding_box", "landmarks", "segmentation",
                                "style", "scale", "occlusion", "zoom_in", "viewpoint"}
            assert raw["category_name"] == taxonomy.category(raw["category_id"]).name
            assert raw["segmentation"] == synth.segmentation
            triples = np.array(raw["landmarks"]).reshape(-1, 3)
            assert all(t.tolist() == [0, 0, 0] for t in triples[triples[:, 2] == 0])
            for key in ("scale", "occlusion", "zoom_in"):
                assert raw[key] in (1, 2, 3)
            assert raw["viewpoint"] == 2 and raw["style"] == 0
        assert (tmp_path / "image" / f"{image_id:06d}.jpg").stat().st_size > 0


def test_progress_and_bad_arguments(tmp_path, taxonomy):
    calls = []
    generate_dataset(tmp_path, 2, config=SMALL, taxonomy=taxonomy, progress=lambda d, n: calls.append((d, n)))
    assert calls == [(1, 2), (2, 2)]
    with pytest.raises(SynthError):
        generate_dataset(tmp_path, -1)
    for bad in (dict(min_items=0), dict(min_items=3, max_items=2), dict(scale_range=(0.5, 0.2)),
                dict(max_covered=1.0), dict(jpeg_quality=0), dict(image_size=(8, 8)), dict(category_ids=())):
        with pytest.raises(SynthError):
            SynthConfig(**bad)


# ---------------------------------------------------------------------------------------------
# Labels


def test_every_category_appears(scenes, taxonomy):
    seen = {s.item.category_id for _, items in scenes for s in items}
    assert seen == set(taxonomy.category_ids)
    counts = [len(items) for _, items in scenes]
    assert min(counts) >= 1 and max(counts) <= SMALL.max_items


def test_labels_are_consistent(scenes, taxonomy):
    w, h = SMALL.image_size
    for image, items in scenes:
        assert image.shape == (h, w, 3) and image.dtype == np.uint8
        for k, s in enumerate(items):
            cat = taxonomy.category(s.item.category_id)
            lm = s.item.landmarks
            assert lm.shape == (cat.num_landmarks, 3)
            assert set(np.unique(lm[:, 2])) <= {0.0, 1.0, 2.0}
            labelled = lm[:, 2] > 0
            assert labelled.sum() >= 3
            # v = 0: stored as 0, 0, 0 and the landmark lies outside the image
            assert (lm[~labelled] == 0).all()
            pts = s.points
            outside = (pts[:, 0] < 0) | (pts[:, 0] > w - 1) | (pts[:, 1] < 0) | (pts[:, 1] > h - 1)
            np.testing.assert_array_equal(outside, ~labelled)
            np.testing.assert_array_equal(lm[labelled, :2], pts[labelled])
            # box: inside the image, non-empty, holding the garment and its labelled landmarks
            x1, y1, x2, y2 = s.item.box
            assert 0 <= x1 < x2 <= w - 1 and 0 <= y1 < y2 <= h - 1
            ys, xs = np.nonzero(s.mask)
            assert xs.min() >= x1 and xs.max() <= x2 and ys.min() >= y1 and ys.max() <= y2
            assert (lm[labelled, 0] >= x1).all() and (lm[labelled, 0] <= x2).all()
            # labelled landmarks lie on the garment (within 2 px of its mask)
            near = cv2.dilate(s.mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            assert _pixel(near, lm[labelled, :2]).all()
            # v = 1 exactly where a later garment covers the landmark
            later = _later_union(items, k, (h, w))
            covered = _pixel(later, lm[:, :2]) & labelled
            np.testing.assert_array_equal(lm[:, 2] == 1, covered)
            # no garment is mostly hidden; the segmentation is its visible region
            visible = s.mask & ~later
            assert visible.sum() >= (1 - SMALL.max_covered) * s.mask.sum() - 1
            assert s.segmentation and all(len(p) >= 6 and len(p) % 2 == 0 for p in s.segmentation)
            seg = np.zeros((h, w), np.uint8)
            for p in s.segmentation:
                cv2.fillPoly(seg, [np.array(p).reshape(-1, 1, 2).astype(np.int32)], 1)
            assert (seg.astype(bool) & visible).sum() >= 0.8 * visible.sum()
            assert s.occlusion in (1, 2, 3) and s.scale in (1, 2, 3) and s.zoom_in in (1, 2, 3)


def test_crowded_scenes_have_occluded_landmarks(crowded):
    h, w = crowded[0][0].shape[:2]
    occluded = 0
    for _, items in crowded:
        for k, s in enumerate(items):
            v1 = s.item.landmarks[:, 2] == 1
            occluded += int(v1.sum())
            if v1.any():
                assert k < len(items) - 1  # the front garment is never covered
                assert _pixel(_later_union(items, k, (h, w)), s.item.landmarks[v1, :2]).all()
    assert occluded >= 20
    assert any(s.occlusion >= 2 for _, items in crowded for s in items)


def test_frontal_template_keeps_left_right(taxonomy):
    """Without deformation and rotation, a garment is its template scaled and shifted: every flip pair
    keeps the template's left/right order (in the bundled templates the '... L' landmark is image-left)."""
    config = SynthConfig(image_size=(256, 256), min_items=1, max_items=1, deformation=0.0, rotation_deg=0.0,
                         truncation_prob=0.0)
    for cat in taxonomy.categories:
        _, items = render_scene(scene_rng(0, cat.id), taxonomy, dataclasses.replace(config, category_ids=(cat.id,)))
        (s,) = items
        lm = s.item.landmarks
        assert (lm[:, 2] == 2).all()
        tmpl = cat.template * [cat.template_aspect, 1.0]
        scale = np.ptp(lm[:, :2], axis=0).max() / np.ptp(tmpl, axis=0).max()
        expected = (tmpl - tmpl.min(axis=0)) * scale + lm[:, :2].min(axis=0)
        np.testing.assert_allclose(lm[:, :2], expected, atol=0.05)
        for a, b in cat.flip_pairs:
            assert np.sign(lm[a, 0] - lm[b, 0]) == np.sign(tmpl[a, 0] - tmpl[b, 0])
            left, right = (a, b) if cat.landmark_names[a].endswith(" L") else (b, a)
            if cat.landmark_names[left].endswith(" L") and cat.landmark_names[right].endswith(" R"):
                assert lm[left, 0] < lm[right, 0]


def test_shapes_from_skeleton(taxonomy):
    """Contour rings become filled faces; links bounding no face (straps, open-jacket collar) are bands."""
    top = _shape(taxonomy.category(1))
    assert len(top.faces) == 2 and sorted(top.inner) == [False, True] and len(top.bands) == 0
    sling = _shape(taxonomy.category(6))
    assert {tuple(sorted(b)) for b in sling.bands.tolist()} == {(1, 6), (5, 14)}
    jacket = _shape(taxonomy.category(4))
    assert len(jacket.faces) == 2 and not any(jacket.inner)
    assert {tuple(sorted(b)) for b in jacket.bands.tolist()} == {(0, 1), (0, 5)}
    assert len(_shape(taxonomy.category(8)).faces) == 1


def test_skeleton_without_rings_falls_back_to_hull(taxonomy):
    broken = []
    for cat in taxonomy.categories[:3]:
        broken.append(dataclasses.replace(cat, skeleton=np.array([[0, 1], [1, 2]])))  # a path, no ring
    tax = Taxonomy(tuple(broken))
    config = SynthConfig(image_size=(128, 128), min_items=2, max_items=2)
    for i in range(6):
        image, items = render_scene(scene_rng(0, i), tax, config)
        assert items
        for s in items:
            labelled = s.item.landmarks[:, 2] > 0
            near = cv2.dilate(s.mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            assert _pixel(near, s.item.landmarks[labelled, :2]).all()


def test_any_image_size(taxonomy):
    image, items = render_scene(scene_rng(0, 1), taxonomy, SynthConfig(image_size=(200, 96), max_items=2))
    assert image.shape == (96, 200, 3)
    for s in items:
        assert s.item.box[2] <= 199 and s.item.box[3] <= 95

