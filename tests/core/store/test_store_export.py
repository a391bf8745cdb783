"""Export for retraining: DF2 schema, COCO json, split, status filter, atomic folder; the round trip."""

import json
import os

import numpy as np
import pytest

from deepmark.core.formats.df2 import read_coco_keypoints, read_df2_annotations
from deepmark.core.store import ItemData, Project, StoreError
from deepmark.core.store import exporting as exporting_module
from deepmark.core.store.exporting import split_of
from deepmark.core.store.interchange import export_dataset, import_df2

ITEM_KEYS = {"category_id", "category_name", "bounding_box", "landmarks", "segmentation", "style", "scale",
             "occlusion", "zoom_in", "viewpoint"}


def _rows(project: Project) -> dict:
    """Everything an import stores, keyed by image content (paths differ between projects)."""
    out = {}
    for image in project.images.page(limit=1000):
        items = [(r.category_id, r.box.tolist(), r.landmarks.tolist(), r.style, r.occlusion, r.scale, r.zoom_in,
                  r.viewpoint, r.segmentation, r.origin) for r in project.annotations.for_image(image.id)]
        out[image.content_hash] = (image.width, image.height, image.size_bytes, image.source, image.pair_id,
                                   image.status, items)
    return out


def test_import_export_import_gives_the_same_rows(project, df2, tmp_path):
    import_df2(project, df2, status="accepted")
    report = export_dataset(project, tmp_path / "export", val_fraction=0.3)
    assert report.errors == [] and sum(report.images.values()) == 16
    assert report.images["validation"] > 0 and report.images["train"] > 0
    with Project.create(tmp_path / "again.deepmark", root=tmp_path) as again:
        second = import_df2(again, tmp_path / "export", status="accepted")
        assert second.errors == [] and second.images_added == 16
        assert _rows(again) == _rows(project)


def test_df2_files_follow_the_dataset_schema(sqlite_project, df2, tmp_path):
    import_df2(sqlite_project, df2 / "train", status="accepted")
    export_dataset(sqlite_project, tmp_path / "out", val_fraction=0.0)
    for path in sorted((tmp_path / "out" / "train" / "annos").glob("*.json")):
        doc = json.loads(path.read_text())
        source = json.loads((df2 / "train" / "annos" / path.name).read_text())
        assert set(doc) == set(source) and (doc["source"], doc["pair_id"]) == (source["source"], source["pair_id"])
        for key in (k for k in doc if k.startswith("item")):
            assert set(doc[key]) == ITEM_KEYS
            assert doc[key] == source[key]  # the same values, the same JSON types
        assert (tmp_path / "out" / "train" / "image" / f"{path.stem}.jpg").read_bytes() == (
            df2 / "train" / "image" / f"{path.stem}.jpg").read_bytes()
    truth, errors = read_df2_annotations(tmp_path / "out" / "train")
    assert errors == [] and len(truth) == 12


def test_coco_json_is_the_official_layout(sqlite_project, df2, tmp_path):
    import_df2(sqlite_project, df2 / "train", status="accepted")
    export_dataset(sqlite_project, tmp_path / "out", val_fraction=0.0)
    items, names, errors = read_coco_keypoints(tmp_path / "out" / "train_coco.json")
    truth, _ = read_df2_annotations(df2 / "train")
    assert errors == [] and set(names.values()) == {f"{i:06d}.jpg" for i in truth}
    for image_id, expected in truth.items():
        for got, want in zip(items[image_id], expected, strict=True):
            np.testing.assert_array_equal(got.box, want.box)
            np.testing.assert_array_equal(got.landmarks, want.landmarks)
    data = json.loads((tmp_path / "out" / "train_coco.json").read_text())
    ann = data["annotations"][0]
    assert len(ann["keypoints"]) == 294 * 3 and {"style", "segmentation", "pair_id", "num_keypoints"} <= set(ann)
    assert data["images"][0]["width"] == 96 and len(data["categories"]) == 13


def test_status_filter_split_and_image_modes(sqlite_project, df2, tmp_path):
    import_df2(sqlite_project, df2)
    images = sqlite_project.images.page(limit=100)
    for image in images[:5]:
        sqlite_project.images.set_status(image.id, "accepted")
    sqlite_project.images.set_status(images[5].id, "rejected")
    report = export_dataset(sqlite_project, tmp_path / "a", images="hardlink", val_fraction=0.5, seed=7)
    assert sum(report.images.values()) == 5
    manifest = json.loads((tmp_path / "a" / "export.json").read_text())
    for split in ("train", "validation"):
        for entry in manifest["splits"][split]:
            assert split_of(entry["content_hash"], 7, 0.5) == split
            assert (tmp_path / "a" / split / "image" / entry["file"]).stat().st_nlink == 2
    report = export_dataset(sqlite_project, tmp_path / "b", statuses=("accepted", "rejected"), images="symlink")
    assert sum(report.images.values()) == 6
    linked = next((tmp_path / "b" / "train" / "image").iterdir())
    assert linked.is_symlink()
    export_dataset(sqlite_project, tmp_path / "c", images="none")
    assert not (tmp_path / "c" / "train" / "image").exists()


def test_export_is_all_or_nothing(sqlite_project, df2, tmp_path, monkeypatch):
    import_df2(sqlite_project, df2, status="accepted")
    target = tmp_path / "out"
    calls = []
    original = exporting_module._place_image

    def failing(source, dest, mode):
        calls.append(dest)
        if len(calls) == 6:
            raise OSError("disk full")
        original(source, dest, mode)
    monkeypatch.setattr(exporting_module, "_place_image", failing)
    with pytest.raises(OSError, match="disk full"):
        export_dataset(sqlite_project, target)
    assert not target.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    monkeypatch.setattr(exporting_module, "_place_image", original)
    export_dataset(sqlite_project, target)
    with pytest.raises(StoreError, match="exists and is not empty"):
        export_dataset(sqlite_project, target)
    (target / "stale.txt").write_text("old")
    export_dataset(sqlite_project, target, overwrite=True)
    assert not (target / "stale.txt").exists() and (target / "export.json").exists()


def test_missing_image_file_is_reported_and_left_out(sqlite_project, df2, tmp_path):
    import_df2(sqlite_project, df2 / "train", status="accepted")
    os.unlink(df2 / "train" / "image" / "000004.jpg")
    report = export_dataset(sqlite_project, tmp_path / "out", val_fraction=0.0)
    assert len(report.errors) == 1 and "000004.jpg" in str(report.errors[0].path)
    assert report.images["train"] == 11 and not (tmp_path / "out" / "train" / "annos" / "000004.json").exists()


def _empty_image(project: Project, df2) -> int:
    """An image of the project with its items deleted (as if nobody labelled it)."""
    image = project.images.page(limit=1)[0]
    for item in project.annotations.for_image(image.id):
        project.annotations.delete_item(item.id)
    return image.id


def test_an_image_without_items_is_exported_only_when_marked_no_garments(project, df2, tmp_path):
    import_df2(project, df2 / "train", status="accepted")
    image_id = _empty_image(project, df2)
    report = export_dataset(project, tmp_path / "unmarked", val_fraction=0.0)
    assert [e.message for e in report.errors if f"image {image_id} " in e.message]
    assert "not marked 'no garments'" in report.errors[0].message and report.images["train"] == 11

    receipt = project.images.set_status(image_id, "accepted", no_garments=True)
    assert project.images.get(image_id).no_garments
    report = export_dataset(project, tmp_path / "marked", val_fraction=0.0)
    assert report.errors == [] and report.images["train"] == 12
    number = [f for f in json.loads((tmp_path / "marked" / "export.json").read_text())["splits"]["train"]
              if f["image_id"] == image_id][0]["file"].split(".")[0]
    doc = json.loads((tmp_path / "marked" / "train" / "annos" / f"{number}.json").read_text())
    assert not [k for k in doc if k.startswith("item")]  # an empty label, because someone said so

    project.history.undo(image_id, edit_id=receipt.edit_id)  # undo takes the mark back
    assert not project.images.get(image_id).no_garments


def test_the_no_garments_mark_follows_the_labels(project, df2):
    import_df2(project, df2 / "train", status="accepted")
    labelled = project.images.page(limit=2)[1]
    with pytest.raises(StoreError, match="garments labelled"):
        project.images.set_status(labelled.id, "accepted", no_garments=True)
    with pytest.raises(StoreError, match="only an accepted image"):
        project.images.set_status(labelled.id, "rejected", no_garments=True)
    image_id = _empty_image(project, df2)
    project.images.set_status(image_id, "accepted", no_garments=True)
    item = project.annotations.for_image(labelled.id)[0]
    project.annotations.add_item(image_id, ItemData.from_item(item.to_item()))  # a garment after all: unmarked
    assert not project.images.get(image_id).no_garments
    project.images.set_status(image_id, "rejected")
    assert not project.images.get(image_id).no_garments
