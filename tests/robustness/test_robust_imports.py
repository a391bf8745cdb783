"""Import validates what it stores and says what it skipped (``deepmark.core.store.interchange``).

Every input is generated here: small real JPEG / PNG files, DeepFashion2 annotation folders and COCO files,
imported into real SQLite projects, and ``deepmark import`` run as a user runs it (a subprocess) where the
point is its exit status and report lines. What is rejected, skipped or noted is the rule written in the
``interchange`` module docstring.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepmark.core.domain.taxonomy import load_taxonomy
from deepmark.core.formats.df2 import read_df2_annotations, read_predictions
from deepmark.core.imaging.read import ImageError, check_complete
from deepmark.core.store import InvalidValueError, ItemData, Project
from deepmark.core.store.interchange import LANDMARK_MARGIN, export_dataset, import_coco, import_df2, import_images
from deepmark.core.store.records import DF2_ITEM_FIELDS

TAXONOMY = load_taxonomy()
W, H = 80, 60


# ---------------------------------------------------------------------------------------------
# Inputs


def _write_image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90) if path.suffix == ".jpg" else Image.fromarray(pixels).save(path)
    return path


def _item(category_id: int = 1, box=(10, 10, 50, 40), v: float = 2.0, **extra) -> dict:
    """A DF2 item: landmarks on a grid inside ``box``, every one with visibility ``v``."""
    n = TAXONOMY.category(category_id).num_landmarks
    x1, y1, x2, y2 = box
    u, w = (np.arange(n) % 5 + 1) / 6.0, (np.arange(n) // 5 + 1) / (n // 5 + 2)
    lm = np.column_stack([x1 + u * (x2 - x1), y1 + w * (y2 - y1), np.full(n, v)])
    return {"category_id": category_id, "bounding_box": list(box), "landmarks": lm.ravel().tolist(), **extra}


def _df2(root: Path, docs: dict[str, dict | str], images: tuple[str, ...] | None = None) -> Path:
    """A DF2 folder: ``annos/<stem>.json`` per doc (a dict, or raw text) and ``image/<stem>.jpg`` for each of
    ``images`` (default: every doc's stem)."""
    (root / "annos").mkdir(parents=True)
    for stem, doc in docs.items():
        (root / "annos" / f"{stem}.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    for k, stem in enumerate(docs if images is None else images):
        _write_image(root / "image" / f"{stem}.jpg", seed=k)
    return root


def _doc(*items: dict, source: str = "user", pair_id: int = 1) -> dict:
    return {"source": source, "pair_id": pair_id, **{f"item{k}": it for k, it in enumerate(items, start=1)}}


@pytest.fixture
def project(tmp_path):
    with Project.create(tmp_path / "p.deepmark", root=tmp_path) as opened:
        yield opened


def _cli(*args: str) -> subprocess.CompletedProcess:
    """``deepmark ARGS`` in a subprocess; an ``import`` gets its ``--project`` created first."""
    if args[0] == "import":
        target = args[args.index("--project") + 1]
        assert _cli("project", "init", target, "--root", str(Path(target).parent)).returncode == 0
    return subprocess.run([sys.executable, "-m", "deepmark.core.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def _messages(report) -> dict[str, str]:
    """File name → report line (the last one, for files named once)."""
    return {Path(e.path).name: str(e) for e in report.errors}


# ---------------------------------------------------------------------------------------------
# Truncated images


def _cut(path: Path, keep: float) -> Path:
    """``path`` cut to a share ``keep`` of its bytes; ``keep`` 1: only its last pixel bytes and what follows
    (JPEG: 2 bytes + the FFD9 marker; PNG: the IEND chunk, the last IDAT's CRC, zlib's checksum and 20 bytes
    of pixel data; a PNG missing less can still decode to every pixel, and then it is complete)."""
    data = path.read_bytes()
    tail = 4 if data.startswith(b"\xff\xd8") else 40
    path.write_bytes(data[: max(16, int(len(data) * keep))] if keep < 1 else data[:-tail])
    return path


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("keep", [0.3, 0.8, 1.0], ids=["30%", "80%", "last-pixel-bytes"])
def test_truncated_image_is_named_at_import_and_the_others_imported(project, tmp_path, suffix, keep):
    root = tmp_path / "df2"
    _df2(root, {"000001": _doc(_item()), "000002": _doc(_item())}, images=())
    _write_image(root / "image" / f"000001{suffix}", 1)
    bad = _cut(_write_image(root / "image" / f"000002{suffix}", 2), keep)
    report = import_df2(project, root)
    assert report.images_added == 1
    (line,) = [str(e) for e in report.errors]
    assert line.startswith(f"{bad}: ") and "truncated or corrupt" in line and line.count(str(bad)) == 1
    # the same check guards plain image imports
    assert [Path(e.path) for e in import_images(project, [bad]).errors] == [bad]


def test_complete_images_with_data_after_the_end_marker_pass(tmp_path):
    # Some cameras append data after JPEG's FFD9: the marker is then not last, a full decode decides.
    for suffix in (".jpg", ".png"):
        path = _write_image(tmp_path / f"a{suffix}")
        path.write_bytes(path.read_bytes() + b"CAMERA TRAILER" * 10)
        check_complete(path, path.read_bytes())
        path.write_bytes(path.read_bytes() + b"\x00" * 5)
        check_complete(path, path.read_bytes())
    bad = _cut(_write_image(tmp_path / "b.jpg"), 0.5)
    bad.write_bytes(bad.read_bytes() + b"CAMERA TRAILER")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        check_complete(bad, bad.read_bytes())


# ---------------------------------------------------------------------------------------------
# Items: far landmarks, zero-area boxes, duplicates


def _far(axis: int, side: int) -> tuple[float, float]:
    """A point beyond the image on ``axis`` (0 x, 1 y), ``side`` −1 before 0 / +1 after the edge, by more than
    the margin."""
    size = (W, H)[axis]
    value = -1.5 * LANDMARK_MARGIN * size if side < 0 else size + 1.5 * LANDMARK_MARGIN * size
    return (value, H / 2) if axis == 0 else (W / 2, value)


@pytest.mark.parametrize(("axis", "side"), [(0, -1), (0, 1), (1, -1), (1, 1)])
@pytest.mark.parametrize("v", [1, 2], ids=["occluded", "visible"])
def test_labelled_landmark_far_outside_rejects_the_file_naming_the_item(project, tmp_path, axis, side, v):
    far = _item(2)
    lm = np.asarray(far["landmarks"]).reshape(-1, 3)
    lm[7] = [*_far(axis, side), v]
    far["landmarks"] = lm.ravel().tolist()
    report = import_df2(project, _df2(tmp_path / "df2", {"000001": _doc(_item()), "000002": _doc(_item(), far)}))
    assert report.images_added == 1 and report.items_added == 1
    line = _messages(report)["000002.json"]
    assert "item2 landmark 8" in line and "far outside the 80×60 image" in line


def test_landmarks_near_the_border_or_unlabelled_are_kept(project, tmp_path):
    near = _item(2)
    lm = np.asarray(near["landmarks"]).reshape(-1, 3)
    lm[0, :2] = [-0.5 * LANDMARK_MARGIN * W, H + 0.5 * LANDMARK_MARGIN * H]  # a garment cut by the frame
    lm[1] = [-5 * W, -5 * H, 0]  # unlabelled: the position means nothing
    near["landmarks"] = lm.ravel().tolist()
    report = import_df2(project, _df2(tmp_path / "df2", {"000001": _doc(near)}))
    assert report.errors == [] and report.items_added == 1


@pytest.mark.parametrize("box", [(10, 10, 10, 40), (10, 20, 50, 20), (30, 30, 30, 30)],
                         ids=["no width", "no height", "a point"])
def test_zero_area_box_rejects_the_file_naming_the_item(project, tmp_path, box):
    report = import_df2(project, _df2(tmp_path / "df2", {"000001": _doc(_item()),
                                                          "000002": _doc(_item(), _item(3, box))}))
    assert report.images_added == 1
    line = _messages(report)["000002.json"]
    assert "item2 bounding_box" in line and "zero area" in line


def test_exact_duplicate_item_is_skipped_and_named_the_rest_imported(project, tmp_path):
    a, b = _item(1, (5, 5, 40, 40), scale=1), _item(7, (20, 10, 70, 55))
    near_twin = _item(1, (5, 5, 40, 40), scale=3)  # differs in an attribute: not a duplicate
    root = _df2(tmp_path / "df2", {"000001": _doc(a, b, dict(a), near_twin, dict(b))})
    report = import_df2(project, root)
    assert report.images_added == 1 and report.items_added == 3
    lines = [str(e) for e in report.errors]
    assert len(lines) == 2
    assert "item3 is an exact duplicate of item1; skipped" in lines[0]
    assert "item5 is an exact duplicate of item2; skipped" in lines[1]
    assert all(line.count("000001.json") == 1 for line in lines)
    again = import_df2(project, root)  # a re-import is still idempotent
    assert again.unchanged == 1 and again.set_beside == 0 and again.items_added == 0


# ---------------------------------------------------------------------------------------------
# Files without their pair


def test_images_without_annotation_and_annotations_without_image_are_listed(project, tmp_path):
    root = _df2(tmp_path / "df2", {"000001": _doc(_item()), "000002": _doc(_item())}, images=("000001", "000003"))
    _write_image(root / "image" / "000004.png")
    (root / "image" / "notes.txt").write_text("not an image")
    report = import_df2(project, root)
    assert report.images_added == 1
    lines = _messages(report)
    assert set(lines) == {"000002.json", "000003.jpg", "000004.png"}
    assert "image file" in lines["000002.json"] and "not found" in lines["000002.json"]
    for name in ("000003", "000004"):
        line = [v for k, v in lines.items() if k.startswith(name)][0]
        assert f"no annotation file {root / 'annos' / name}.json; image not imported" in line


# ---------------------------------------------------------------------------------------------
# Pathological JSON


def _deep(levels: int, kind: str) -> str:
    return "[" * levels + "]" * levels if kind == "list" else '{"a":' * levels + "1" + "}" * levels


@pytest.mark.parametrize("kind", ["list", "object"])
def test_deeply_nested_json_is_a_named_error_for_that_file_only(project, tmp_path, kind):
    deep = _deep(200_000, kind)
    root = _df2(tmp_path / "df2", {"000001": _doc(_item()), "000002": deep, "000003": _doc(_item(5))})
    report = import_df2(project, root)
    assert report.images_added == 2
    assert _messages(report)["000002.json"].endswith("000002.json: not usable JSON (nested too deeply)")
    # the same reader serves evaluation and prediction folders
    gt, errors = read_df2_annotations(root)
    assert sorted(gt) == [1, 3] and [Path(e.path).name for e in errors] == ["000002.json"]
    _, errors = read_predictions(root / "annos")
    assert any("nested too deeply" in str(e) for e in errors)
    # a results list or a COCO file that deep: the whole file, named
    results = tmp_path / "results.json"
    results.write_text(deep)
    assert [str(e) for e in read_predictions(results)[1]] == [f"{results}: not usable JSON (nested too deeply)"]


def test_cli_import_of_deep_coco_file_says_so_and_does_nothing(tmp_path):
    coco = tmp_path / "deep.json"
    coco.write_text(_deep(200_000, "object"))
    done = _cli("import", str(coco), "--project", str(tmp_path / "p.deepmark"), "--format", "coco", "--quiet")
    assert done.returncode == 2
    assert f"{coco}: not usable JSON (nested too deeply)" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------
# The command line: exit 1 and one line per skipped file or item


def test_cli_import_lists_every_skipped_file_and_item_and_exits_1(tmp_path):
    root = _df2(tmp_path / "df2", {
        "000001": _doc(_item()),
        "000002": _doc(_item(), _item(3, (10, 10, 10, 40))),       # zero area
        "000003": _doc(_item(), _item()),                          # duplicate item
        "000004": _deep(200_000, "list"),                          # pathological JSON
        "000005": _doc(_item()),                                   # no image
    }, images=("000001", "000002", "000003", "000004", "000006"))
    _cut(root / "image" / "000001.jpg", 0.5)
    done = _cli("import", str(root), "--project", str(tmp_path / "p.deepmark"), "--quiet")
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    expected = {
        root / "image" / "000001.jpg": "truncated or corrupt",
        root / "annos" / "000002.json": "item2 bounding_box [10.0, 10.0, 10.0, 40.0] has zero area",
        root / "annos" / "000003.json": "item2 is an exact duplicate of item1; skipped",
        root / "annos" / "000004.json": "nested too deeply",
        root / "annos" / "000005.json": "not found",
        root / "image" / "000006.jpg": "no annotation file",
    }
    assert len(lines) == len(expected)
    for path, reason in expected.items():
        (line,) = [line for line in lines if line.startswith(f"error: {path}: ")]
        assert reason in line and line.count(str(path)) == 1
    assert "1 images added" in done.stdout  # 000003, without its duplicate
    assert "Traceback" not in done.stderr


def test_cli_import_exits_2_when_everything_is_skipped(tmp_path):
    root = _df2(tmp_path / "df2", {"000001": _deep(200_000, "list")}, images=("000001",))
    done = _cli("import", str(root), "--project", str(tmp_path / "p.deepmark"), "--quiet")
    assert done.returncode == 2 and "nested too deeply" in done.stderr


# ---------------------------------------------------------------------------------------------
# COCO: lossless DF2 → COCO → DF2, and the defaults said


def _export_docs(out: Path) -> dict[str, dict]:
    return {f"{p.parent.parent.name}/{p.name}": json.loads(p.read_text()) for p in sorted(out.glob("*/annos/*.json"))}


def _json(value) -> str:
    """``value`` as canonical JSON text: equal only for the same JSON (1, 1.0 and true differ)."""
    return json.dumps(value, sort_keys=True)


# A team's own item keys, one of each JSON type, nested ones too; 2.0 must stay a float and 1 an integer.
EXTRA_KEYS = ({"annotator": "x", "quality": 3},
              {"confidence": 0.125, "ratio": 2.0, "checked": True, "rejected": False, "note": None,
               "huge": 12345678901234567890, "tiny": 1.5e-300, "label": "Ünïcødé ✓ \"quoted\"\n"},
              {"tags": ["a", 1, 2.5, None, [True, {"deep": []}]],
               "review": {"by": "ann", "round": 2, "history": [{"ok": False, "at": 1}, {"ok": True, "at": 1.0}],
                          "empty": {}}})


def test_df2_to_coco_to_df2_is_lossless(tmp_path):
    rng = np.random.default_rng(5)
    docs = {}
    for k in range(1, 7):
        items = []
        for j in range(int(rng.integers(1, 4))):
            cat = int(rng.integers(1, 14))
            x1, y1 = (round(float(v), 3) for v in rng.uniform(0, 30, 2))
            box = (float(x1), float(y1), float(x1 + round(rng.uniform(10, 45), 3)),
                   float(y1 + round(rng.uniform(10, 25), 3)))
            it = _item(cat, box, style=int(rng.integers(0, 3)), scale=int(rng.integers(1, 4)),
                       occlusion=int(rng.integers(1, 4)), zoom_in=int(rng.integers(1, 4)),
                       viewpoint=int(rng.integers(1, 4)), segmentation=[[x1, y1, box[2], y1, box[2], box[3]]])
            lm = np.asarray(it["landmarks"]).reshape(-1, 3)
            lm[:, 2] = rng.choice([0, 1, 2], len(lm))
            lm[lm[:, 2] == 0] = 0
            it["landmarks"] = lm.ravel().tolist()
            if (k + j) % 4:  # most items carry keys outside the format, some none
                it.update(EXTRA_KEYS[(k + j) % len(EXTRA_KEYS)])
            items.append(it)
        if k == 1:  # 21.06 + (61.76 − 21.06) ≠ 61.76 in floating point: COCO's x, w alone would not give it back
            items.append(_item(8, (21.06, 10.5, 61.76, 40.25), style=1, scale=1, occlusion=3, zoom_in=2, viewpoint=3))
        docs[f"{k:06d}"] = _doc(*items, source=("shop", "user")[k % 2], pair_id=100 + k)
    root = _df2(tmp_path / "df2", docs)
    first, second = tmp_path / "first", tmp_path / "second"
    with Project.create(tmp_path / "a.deepmark", root=tmp_path) as a:
        report = import_df2(a, root, status="accepted")
        assert report.errors == [] and report.notes == []  # nothing left out, nothing assumed
        export_dataset(a, first, val_fraction=0.5, seed=1)
    with Project.create(tmp_path / "b.deepmark", root=tmp_path) as b:
        for split in ("train", "validation"):
            report = import_coco(b, first / f"{split}_coco.json", first / split / "image", status="accepted")
            assert report.errors == [] and report.notes == []  # nothing assumed: every field was there
        export_dataset(b, second, val_fraction=0.5, seed=1)
    assert _export_docs(first) == _export_docs(second)
    files = sorted(p.relative_to(first) for p in first.glob("*/annos/*.json"))
    assert files == sorted(p.relative_to(second) for p in second.glob("*/annos/*.json")) and len(files) == 6
    for name in files:  # byte for byte: values, JSON types and key order
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # and both say what the original files said, item by item, extra keys included with their JSON types
    extras = 0
    for name, doc in _export_docs(first).items():
        original = docs[Path(name).stem]
        assert (doc["source"], doc["pair_id"]) == (original["source"], original["pair_id"])
        for key, item in original.items():
            if key.startswith("item"):
                assert {k: doc[key][k] for k in item} == json.loads(json.dumps(item)), (name, key)
                assert set(doc[key]) == set(item) | {"category_name", "segmentation"}, (name, key)
                extra = {k: v for k, v in item.items() if k not in DF2_ITEM_FIELDS}
                assert _json({k: doc[key][k] for k in extra}) == _json(extra), (name, key)  # 2.0 stays 2.0
                extras += bool(extra)
    assert extras >= 6
    coco = [a for split in ("train", "validation") for a in
            json.loads((first / f"{split}_coco.json").read_text())["annotations"]]
    assert sum("df2_extra" in a for a in coco) == extras  # COCO carries them in one object per annotation


def test_coco_without_df2_fields_says_which_defaults_were_used(tmp_path):
    _write_image(tmp_path / "image" / "a.jpg")
    kp = np.zeros((TAXONOMY.num_landmarks, 3))
    kp[:25] = np.asarray(_item()["landmarks"]).reshape(-1, 3)
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 30], "area": 1200,
                             "iscrowd": 0, "keypoints": kp.ravel().tolist(), "num_keypoints": 25, "style": 1,
                             "pair_id": 3, "segmentation": []}],
            "categories": []}
    path = tmp_path / "official.json"
    path.write_text(json.dumps(coco))
    done = _cli("import", str(path), "--project", str(tmp_path / "p.deepmark"), "--quiet")
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
    expected = {"scale": 2, "occlusion": 1, "zoom_in": 1, "viewpoint": 2}
    for name, value in expected.items():
        assert any(f"1 of 1 annotations have no {name}; stored as unknown, a DeepFashion2 export writes "
                   f"{name} {value}" in n for n in notes), name
    assert any("1 of 1 images have no source" in n and "'user'" in n for n in notes)
    assert not any("style" in n for n in notes)  # given in the file


# ---------------------------------------------------------------------------------------------
# Item keys outside the DeepFashion2 format ("extra" keys)


def test_df2_item_keys_outside_the_format_are_kept_and_exported(project, tmp_path):
    docs = {f"{k:06d}": _doc(_item(colour="red", **EXTRA_KEYS[2]), _item(4, colour="blue", fabric="wool"), _item(7))
            for k in (1, 2)}
    report = import_df2(project, _df2(tmp_path / "df2", docs))
    assert report.errors == [] and report.items_added == 6 and report.notes == []
    image = project.images.page(limit=1)[0]
    extras = [item.extra for item in project.annotations.for_image(image.id)]
    assert [_json(e) for e in extras] == [_json({"colour": "red", **EXTRA_KEYS[2]}),
                                          _json({"colour": "blue", "fabric": "wool"}), _json(None)]
    assert list(extras[0]) == ["colour", *EXTRA_KEYS[2]]  # in the file's order
    export_dataset(project, tmp_path / "out", statuses=("new",), val_fraction=0.0)
    doc = json.loads((tmp_path / "out" / "train" / "annos" / "000001.json").read_text())
    assert list(doc["item1"])[-3:] == ["colour", "tags", "review"]  # after the DF2 fields, as imported
    assert doc["item2"]["fabric"] == "wool" and set(doc["item3"]) == DF2_ITEM_FIELDS
    coco = json.loads((tmp_path / "out" / "train_coco.json").read_text())["annotations"]
    assert [_json(a.get("df2_extra")) for a in coco[:3]] == [_json(e) for e in extras]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", '{"deep": [1, NaN]}'])
def test_extra_key_values_json_cannot_hold_skip_the_file_named(project, tmp_path, value):
    """Python reads NaN and Infinity from a file, JSON has no such values: a PostgreSQL project and other tools
    refuse them, so the file is skipped, named, rather than stored in a form that is not JSON."""
    good = json.dumps(_doc(_item(quality=1)))
    bad = json.dumps(_doc(_item(), _item(4))).replace('"category_id": 4', f'"quality": {value}, "category_id": 4')
    report = import_df2(project, _df2(tmp_path / "df2", {"000001": bad, "000002": good}))
    assert report.images_added == 1 and len(report.errors) == 1
    message = _messages(report)["000001.json"]
    assert "item2" in message and "not plain JSON" in message


@pytest.mark.parametrize("df2_extra", [{"scale": 3}, {"annotator": "x", "landmarks": []}, {"category_name": "x"},
                                       ["annotator", "x"], "annotator", 3])
def test_coco_df2_extra_that_is_not_extra_keys_skips_the_image_named(project, tmp_path, df2_extra):
    """``df2_extra`` holds an item's keys outside the format: a DF2 field there (it would take the field's
    place in a DF2 export) or anything but an object skips that image, named; the other images are imported."""
    kp = np.zeros((TAXONOMY.num_landmarks, 3))
    kp[:25] = np.asarray(_item()["landmarks"]).reshape(-1, 3)
    ann = {"category_id": 1, "bbox": [10, 10, 40, 30], "area": 1200, "iscrowd": 0,
           "keypoints": kp.ravel().tolist(), "num_keypoints": 25}
    coco = {"images": [{"id": k, "file_name": f"{k}.jpg", "width": W, "height": H} for k in (1, 2)],
            "annotations": [{**ann, "id": 1, "image_id": 1, "df2_extra": {"annotator": "ok"}},
                            {**ann, "id": 2, "image_id": 2, "df2_extra": df2_extra}], "categories": []}
    for k in (1, 2):
        _write_image(tmp_path / "image" / f"{k}.jpg", seed=k)
    (tmp_path / "c.json").write_text(json.dumps(coco))
    report = import_coco(project, tmp_path / "c.json")
    assert report.images_added == 1 and len(report.errors) == 1
    assert "image 2 (2.jpg)" in str(report.errors[0]) and ("DeepFashion2 field" in str(report.errors[0])
                                                          or "df2_extra must be an object" in str(report.errors[0]))
    (image,) = project.images.page(limit=10)
    assert project.annotations.for_image(image.id)[0].extra == {"annotator": "ok"}


def test_items_differing_only_in_extra_keys_are_not_duplicates(project, tmp_path):
    docs = {"000001": _doc(_item(quality=1), _item(quality=1.0), _item(quality=True), _item(), _item(quality=1))}
    report = import_df2(project, _df2(tmp_path / "df2", docs))
    assert report.items_added == 4 and len(report.errors) == 1  # only item5 repeats item1 exactly
    assert "item5 is an exact duplicate of item1" in str(report.errors[0])


def test_edits_keep_an_items_extra_keys_and_undo_restores_them(project, tmp_path):
    extra = {"annotator": "x", **EXTRA_KEYS[2]}
    import_df2(project, _df2(tmp_path / "df2", {"000001": _doc(_item(**extra))}))
    image = project.images.page(limit=1)[0]
    annotations = project.annotations
    (item,) = annotations.for_image(image.id)
    other = _item(4)
    edits = [lambda: annotations.set_landmark(item.id, 0, x=12.0, v=1),
             lambda: annotations.set_box(item.id, [11, 11, 50, 40]),
             lambda: annotations.update_item(item.id, attributes={"scale": 3}, segmentation=[[1, 2, 3, 4, 5, 6]]),
             lambda: annotations.set_category(item.id, 4, landmarks=np.reshape(other["landmarks"], (-1, 3)))]
    for edit in edits:
        edit()
        assert _json(annotations.get(item.id).extra) == _json(extra)
    annotations.delete_item(item.id)
    assert annotations.for_image(image.id) == []
    project.history.undo(image.id)
    back = annotations.get(item.id)
    assert _json(back.extra) == _json(extra) and back.category_id == 4
    for _ in edits:  # every edit undone in turn, back to the imported item
        project.history.undo(image.id)
    assert _json(annotations.get(item.id).extra) == _json(extra)
    export_dataset(project, tmp_path / "out", statuses=("new",), val_fraction=0.0)
    doc = json.loads((tmp_path / "out" / "train" / "annos" / "000001.json").read_text())
    assert list(doc["item1"])[-len(extra):] == list(extra)
    assert _json({k: doc["item1"][k] for k in extra}) == _json(extra)
    drawn = annotations.add_item(image.id, ItemData(category_id=1, box=np.array([1.0, 1.0, 9.0, 9.0]),
                                                    landmarks=np.zeros((25, 3))))
    assert annotations.get(drawn.annotation_id).extra is None  # a person's item has none


def test_extra_keys_that_are_df2_fields_are_refused_by_edits(project, tmp_path):
    import_df2(project, _df2(tmp_path / "df2", {"000001": _doc(_item(annotator="x"))}))
    (item,) = project.annotations.for_image(project.images.page(limit=1)[0].id)
    for bad in ({"scale": 2}, {"bounding_box": [1, 2, 3, 4]}, {"x": float("nan")}, {"x": {1, 2}}):
        with pytest.raises(InvalidValueError, match=f"item {item.id}: .*(DeepFashion2 field|not plain JSON)"):
            project.annotations.update_item(item.id, extra=bad)
    assert project.annotations.get(item.id).extra == {"annotator": "x"}


def test_a_reimport_with_other_extra_keys_goes_beside_and_accepting_it_takes_them(project, tmp_path):
    root = _df2(tmp_path / "df2", {"000001": _doc(_item(annotator="a", quality=1))})
    import_df2(project, root)
    image = project.images.page(limit=1)[0]
    (item,) = project.annotations.for_image(image.id)
    (root / "annos" / "000001.json").write_text(json.dumps(_doc(_item(quality=1, annotator="a"))))
    again = import_df2(project, root)
    assert again.unchanged == 1 and again.set_beside == 0  # the same keys (in another order): nothing to do
    (root / "annos" / "000001.json").write_text(json.dumps(_doc(_item(annotator="b", quality=1.0))))
    changed = import_df2(project, root)
    assert changed.set_beside == 1 and project.annotations.get(item.id).extra == {"annotator": "a", "quality": 1}
    (beside,) = project.predictions.for_image(image.id)
    project.annotations.accept_prediction(beside.id, replace=item.id)
    assert _json(project.annotations.get(item.id).extra) == _json({"annotator": "b", "quality": 1.0})
    run = project.model_runs.add("model")
    det = beside.to_detection()
    (model_prediction,) = project.predictions.add(image.id, run.id, [det])
    project.annotations.accept_prediction(model_prediction, replace=item.id)  # a model's: keeps the item's keys
    assert _json(project.annotations.get(item.id).extra) == _json({"annotator": "b", "quality": 1.0})
