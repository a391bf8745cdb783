"""DF2Dataset: reading a DeepFashion2 folder, encoded samples, augmentation, determinism, bad files."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepmark.core.domain.structures import Item
from deepmark.core.imaging.read import ImageError
from deepmark.core.training.augment import AugmentConfig
from deepmark.core.training.dataset import DatasetError, DF2Dataset, collate, keep_largest

INPUT = (128, 96)  # W, H → map 32 × 24
MAP_W, MAP_H = 32, 24


def _landmarks(taxonomy, category_id, box):
    cat = taxonomy.category(category_id)
    x1, y1, x2, y2 = box
    pts = cat.template * (x2 - x1, y2 - y1) + (x1, y1)
    return np.column_stack([pts, np.full(len(pts), 2.0)])


def _entry(taxonomy, category_id, box):
    cat = taxonomy.category(category_id)
    return {
        "category_id": category_id,
        "category_name": cat.name,
        "bounding_box": list(box),
        "landmarks": _landmarks(taxonomy, category_id, box).ravel().round(2).tolist(),
        "style": 0, "scale": 2, "occlusion": 1, "zoom_in": 1, "viewpoint": 2,
        "segmentation": [[box[0], box[1], box[2], box[1], box[2], box[3], box[0], box[3]]],
    }


def _write(root: Path, image_id: int, boxes, taxonomy, ext=".jpg", size=(160, 120), category_id=9):
    w, h = size
    img = np.full((h, w, 3), 90, np.uint8)
    for x1, y1, x2, y2 in boxes:
        cv2.rectangle(img, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), (30, 200, 240), -1)
    if ext is not None:
        cv2.imwrite(str(root / "image" / f"{image_id:06d}{ext}"), img)
    doc = {"source": "user", "pair_id": 1}
    for k, box in enumerate(boxes, start=1):
        doc[f"item{k}"] = _entry(taxonomy, category_id, box)
    (root / "annos" / f"{image_id:06d}.json").write_text(json.dumps(doc))


@pytest.fixture
def df2(tmp_path, taxonomy):
    root = tmp_path / "df2"
    (root / "image").mkdir(parents=True)
    (root / "annos").mkdir()
    _write(root, 1, [(20, 30, 80, 100)], taxonomy)  # skirt
    _write(root, 2, [(10, 10, 60, 110), (90, 20, 150, 60), (100, 70, 110, 80)], taxonomy, ext=".png")
    _write(root, 3, [(5, 5, 50, 50)], taxonomy, ext=None)  # annotation without an image
    (root / "annos" / "000004.json").write_text("{ not json")
    _write(root, 7, [(0, 0, 100, 40)], taxonomy, size=(100, 200), category_id=8)  # tall, trousers
    return root


def test_reads_folder_and_records_errors(df2, taxonomy, semantic62):
    ds = DF2Dataset(df2, taxonomy, semantic62, INPUT)
    assert len(ds) == 3 and ds.ids == [1, 2, 7]
    assert ds.image_path(1).name == "000002.png"
    bad = {e.path.name: e.message for e in ds.errors}
    assert set(bad) == {"000003.json", "000004.json"}
    assert "no image file" in bad["000003.json"] and "JSON" in bad["000004.json"]


def test_missing_subfolders_raise(tmp_path, taxonomy, semantic62):
    with pytest.raises(DatasetError, match="image"):
        DF2Dataset(tmp_path, taxonomy, semantic62, INPUT)
    with pytest.raises(DatasetError, match="multiples"):
        DF2Dataset(tmp_path, taxonomy, semantic62, (130, 96))


def test_sample_shapes_and_center_target(df2, taxonomy, semantic62):
    ds = DF2Dataset(df2, taxonomy, semantic62, INPUT)
    s = ds[0]
    g = semantic62.num_groups
    assert s["image"].shape == (3, 96, 128) and s["image"].dtype == np.float32
    assert s["hm"].shape == (13, MAP_H, MAP_W) and s["hm"].dtype == np.float32
    assert s["hm_hp"].shape == (g, MAP_H, MAP_W)
    assert s["ind"].shape == (32,) and s["ind"].dtype == np.int64
    assert s["reg"].shape == (32, 2) and s["wh"].shape == (32, 2) and s["reg_mask"].shape == (32,)
    assert s["hps"].shape == (32, 2 * g) and s["hps_mask"].shape == (32, 2 * g)
    assert s["hp_offset"].shape == (32 * g, 2) and s["hp_ind"].shape == (32 * g,) and s["hp_mask"].shape == (32 * g,)
    assert s["image_id"] == 1 and s["flipped"] is False
    assert s["image_to_map"].shape == (2, 3) and s["image_to_map"].dtype == np.float64
    np.testing.assert_array_equal(s["image_size"], [160, 120])
    # 160 × 120 letterboxed into 128 × 96: scale 0.8, no padding; map = input / 4 → scale 0.2
    np.testing.assert_allclose(s["image_to_map"], [[0.2, 0, 0], [0, 0.2, 0]])
    centre = np.array([(20 + 80) / 2, (30 + 100) / 2]) * 0.2  # (10, 13)
    assert s["reg_mask"].tolist() == [1] + [0] * 31
    assert s["ind"][0] == int(centre[1]) * MAP_W + int(centre[0])
    np.testing.assert_allclose(s["reg"][0], centre - np.floor(centre), atol=1e-6)
    np.testing.assert_allclose(s["wh"][0], [60 * 0.2, 70 * 0.2], atol=1e-5)
    assert s["hm"][taxonomy.category_index(9)].reshape(-1)[s["ind"][0]] == 1.0
    assert s["hp_mask"].sum() == len(taxonomy.category(9).template)


def test_letterbox_of_a_tall_image(df2, taxonomy, semantic62):
    ds = DF2Dataset(df2, taxonomy, semantic62, INPUT)
    s = ds[2]  # 100 × 200 into 128 × 96: scale 0.48, x offset (128 − 48) / 2 = 40
    m = s["image_to_map"]
    np.testing.assert_allclose(m, [[0.12, 0, 10], [0, 0.12, 0]])
    centre = m @ [50, 20, 1]  # box (0, 0, 100, 40)
    assert s["ind"][0] == int(centre[1]) * MAP_W + int(centre[0])
    # the image pixels outside the letterboxed strip are the mean colour, i.e. ~0 after normalisation
    np.testing.assert_allclose(s["image"][:, :, :39], 0, atol=0.02)


def test_flip_moves_the_peak_to_the_mirrored_place(df2, taxonomy, semantic62):
    plain = AugmentConfig.none()
    flip = AugmentConfig(scale_range=(1.0, 1.0), shift=0.0, flip_probability=1.0, brightness=0.0, contrast=0.0,
                         saturation=0.0, lighting_std=0.0)
    a = DF2Dataset(df2, taxonomy, semantic62, INPUT, augment=plain)[0]
    b = DF2Dataset(df2, taxonomy, semantic62, INPUT, augment=flip)[0]
    assert a["flipped"] is False and b["flipped"] is True
    channel = taxonomy.category_index(9)
    ya, xa = np.unravel_index(a["ind"][0], (MAP_H, MAP_W))
    yb, xb = np.unravel_index(b["ind"][0], (MAP_H, MAP_W))
    # continuous centres mirror about the map's width
    assert ya == yb
    assert xb + b["reg"][0, 0] == pytest.approx(MAP_W - (xa + a["reg"][0, 0]), abs=1e-5)
    assert b["hm"][channel, yb, xb] == 1.0
    assert b["hm"].max(axis=(1, 2)).tolist() == a["hm"].max(axis=(1, 2)).tolist()
    # the picture is mirrored too (letterbox without padding, so exactly the left-right flip)
    np.testing.assert_allclose(b["image"], a["image"][:, :, ::-1], atol=1e-5)
    # landmark heatmaps: each landmark's group peak moves to its mirrored partner's group
    perm = taxonomy.category(9).flip_permutation
    groups = semantic62.category_groups[channel]
    for k in range(len(perm)):
        ga, gb = groups[perm[k]], groups[k]
        ia, ib = a["hp_ind"][ga], b["hp_ind"][gb]  # object 0: slot = group
        pa = np.array([ia % MAP_W + a["hp_offset"][ga, 0], ia // MAP_W + a["hp_offset"][ga, 1]])
        pb = np.array([ib % MAP_W + b["hp_offset"][gb, 0], ib // MAP_W + b["hp_offset"][gb, 1]])
        np.testing.assert_allclose(pb, [MAP_W - pa[0], pa[1]], atol=1e-4)
    # image_to_map is the true geometric map of the original image, mirror included
    np.testing.assert_allclose(b["image_to_map"][0, 0], -0.2)


def test_augmented_targets_follow_the_affine(df2, taxonomy, semantic62):
    ds = DF2Dataset(df2, taxonomy, semantic62, INPUT, augment=AugmentConfig(scale_range=(0.8, 1.0),
                                                                          shift=0.05), seed=4)
    for epoch in range(4):
        ds.set_epoch(epoch)
        s = ds[0]
        m = s["image_to_map"]
        corners = (m[:, :2] @ np.array([[20, 30], [80, 100]]).T).T + m[:, 2]
        x1, x2 = np.clip(np.sort(corners[:, 0]), 0, MAP_W)
        y1, y2 = np.clip(np.sort(corners[:, 1]), 0, MAP_H)
        centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
        assert s["ind"][0] == int(centre[1]) * MAP_W + int(centre[0])
        np.testing.assert_allclose(s["reg"][0], centre - np.floor(centre), atol=1e-5)


def test_determinism_per_seed_index_epoch(df2, taxonomy, semantic62):
    def make(seed=0):
        return DF2Dataset(df2, taxonomy, semantic62, INPUT, augment=AugmentConfig(), seed=seed)

    ds = make()

    def same(x, y):
        return all(np.array_equal(np.asarray(x[k]), np.asarray(y[k])) for k in x)

    first = ds[1]
    assert same(first, ds[1])
    assert same(first, make()[1])  # a fresh copy (e.g. in a worker) agrees
    assert not same(first, make(seed=1)[1])
    ds.set_epoch(1)
    second = ds[1]
    assert not same(first, second)
    ds.set_epoch(0)
    assert same(first, ds[1])


def test_max_objects_keeps_the_largest(df2, taxonomy, semantic62):
    ds = DF2Dataset(df2, taxonomy, semantic62, INPUT, max_objects=2)
    s = ds[1]  # three items; the 10 × 10 one is dropped
    assert s["reg_mask"].tolist() == [1, 1] and s["ind"].shape == (2,)
    np.testing.assert_allclose(s["wh"], [[50 * 0.8 / 4, 100 * 0.8 / 4], [60 * 0.8 / 4, 40 * 0.8 / 4]], atol=1e-5)
    items = [Item(9, np.array(b, float), np.zeros((8, 3))) for b in ([0, 0, 5, 5], [0, 0, 9, 9], [0, 0, 2, 2],
                                                                     [0, 0, 9, 9])]
    kept = keep_largest(items, 2)
    assert [k.box[2] for k in kept] == [9, 9] and kept[0] is items[1] and kept[1] is items[3]


def test_corrupt_image_raises_naming_the_file(df2, taxonomy, semantic62):
    bad = df2 / "image" / "000002.png"
    bad.write_bytes(b"not really a png")
    ds = DF2Dataset(df2, taxonomy, semantic62, INPUT)
    with pytest.raises(ImageError) as info:
        ds[1]
    assert str(bad) in str(info.value)
    errors = ds.validate_images()
    assert [e.path for e in errors] == [bad] and "not a recognised image" in errors[0].message
    assert len(ds) == 3  # listing does not drop
    ds.validate_images(drop=True)
    assert ds.ids == [1, 7] and bad in [e.path for e in ds.errors]


def test_truncated_image_found_by_full_validation(df2, taxonomy, semantic62):
    path = df2 / "image" / "000001.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(path), noise)
    path.write_bytes(path.read_bytes()[:2000])
    ds = DF2Dataset(df2, taxonomy, semantic62, INPUT)
    assert ds.validate_images() == []  # header only
    assert [e.path for e in ds.validate_images(decode=True)] == [path]
    with pytest.raises(ImageError, match="000001.jpg"):
        ds[0]


def test_index_errors_and_negative_index(df2, taxonomy, semantic62):
    ds = DF2Dataset(df2, taxonomy, semantic62, INPUT)
    with pytest.raises(IndexError):
        ds[3]
    assert ds[-1]["image_id"] == 7
    assert len(list(iter(ds))) == 3


def test_collate_stacks(df2, taxonomy, semantic62):
    ds = DF2Dataset(df2, taxonomy, semantic62, INPUT, augment=AugmentConfig())
    batch = collate([ds[0], ds[1], ds[2]])
    assert batch["image"].shape == (3, 3, 96, 128) and batch["image"].dtype == np.float32
    assert batch["hm"].shape == (3, 13, MAP_H, MAP_W)
    assert batch["image_id"].tolist() == [1, 2, 7]
    assert batch["image_to_map"].shape == (3, 2, 3) and batch["image_size"].shape == (3, 2)
    assert batch["flipped"].dtype == np.bool_


def test_works_with_a_torch_dataloader(df2, taxonomy, semantic62):
    torch = pytest.importorskip("torch")
    ds = DF2Dataset(df2, taxonomy, semantic62, INPUT, augment=AugmentConfig())
    loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=False, collate_fn=collate)
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [2, 1]
    assert torch.from_numpy(batches[0]["image"]).shape == (2, 3, 96, 128)


def test_core_data_imports_without_torch():
    code = ("import sys, deepmark.core.training.dataset, deepmark.core.imaging.read, "
            "deepmark.core.imaging.preprocess, deepmark.core.training.augment; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])


def test_reads_the_official_coco_keypoints_layout(tmp_path, taxonomy, semantic62):
    """The 294-keypoint COCO json (official conversion) beside an image/ folder gives the same items."""
    from deepmark.core.formats.coco import ground_truth_to_coco
    from deepmark.core.formats.df2 import read_df2_annotations
    from deepmark.core.synthetic import SynthConfig, generate_dataset

    generate_dataset(tmp_path, 4, seed=5, config=SynthConfig(image_size=(96, 96), max_items=2))
    items, errors = read_df2_annotations(tmp_path / "annos", taxonomy)
    assert not errors
    coco = ground_truth_to_coco(items, taxonomy)
    coco["annotations"].append(dict(coco["annotations"][0], category_id=99))  # one bad annotation
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    dataset = DF2Dataset(tmp_path / "coco.json", taxonomy, semantic62, (96, 96))
    assert len(dataset) == 4 and len(dataset.errors) == 1 and "annotation" in dataset.errors[0].message
    for index, image_id in enumerate(dataset.ids):
        expected = items[image_id]
        got = dataset.items(index)
        assert [i.category_id for i in got] == [i.category_id for i in expected]
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a.box, b.box)
            np.testing.assert_allclose(a.landmarks, b.landmarks)
    assert dataset[0]["hm"].shape == (13, 24, 24)
