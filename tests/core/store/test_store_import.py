"""Import: DF2 folders, COCO json, predict output; bad files reported, human corrections never overwritten."""

import json
import shutil

import numpy as np
import pytest

from deepmark.core.domain.structures import Detection
from deepmark.core.formats.coco import ground_truth_to_coco
from deepmark.core.formats.df2 import read_df2_annotations, write_df2_predictions
from deepmark.core.store.interchange import import_coco, import_df2, import_images, import_predictions


def _annotation_count(folder) -> int:
    return sum(sum(1 for k in json.loads(p.read_text()) if k.startswith("item")) for p in folder.glob("*.json"))


def test_df2_import_keeps_items_attributes_and_order(project, df2):
    report = import_df2(project, df2, status="accepted")
    assert report.errors == [] and report.images_added == 16
    assert report.items_added == _annotation_count(df2 / "train" / "annos") + _annotation_count(
        df2 / "validation" / "annos")
    image = project.images.by_path("df2/train/image/000002.jpg")
    assert (image.status, image.width, image.height, image.source, image.pair_id) == ("accepted", 96, 96, "user", 2)
    raw = json.loads((df2 / "train" / "annos" / "000002.json").read_text())
    items = project.annotations.for_image(image.id)
    truth, _ = read_df2_annotations(df2 / "train")
    for record, item, key in zip(items, truth[2], sorted(k for k in raw if k.startswith("item")), strict=True):
        assert record.origin == "imported" and record.category_id == item.category_id
        np.testing.assert_array_equal(record.landmarks, item.landmarks)
        for name in ("style", "occlusion", "scale", "zoom_in", "viewpoint", "segmentation"):
            assert getattr(record, name) == raw[key][name]


def test_reimport_is_idempotent_and_never_overwrites_corrections(project, df2):
    import_df2(project, df2)
    again = import_df2(project, df2)
    assert (again.images_added, again.unchanged, again.set_beside) == (0, 16, 0)
    image = project.images.by_path("df2/train/image/000003.jpg")
    item = project.annotations.for_image(image.id)[0]
    project.annotations.set_landmark(item.id, 0, x=1.5, y=2.5, v=2)
    doc = json.loads((df2 / "train" / "annos" / "000003.json").read_text())
    doc["item1"]["bounding_box"][0] = 0.0  # a changed release of the dataset
    (df2 / "train" / "annos" / "000003.json").write_text(json.dumps(doc))
    third = import_df2(project, df2)
    assert (third.unchanged, third.set_beside, third.model_run_id is not None) == (15, 1, True)
    kept = project.annotations.get(item.id)
    assert kept.landmarks[0].tolist() == [1.5, 2.5, 2.0] and kept.origin == "corrected"
    beside = project.predictions.for_image(image.id, third.model_run_id)
    assert beside[0].box[0] == 0.0 and beside[0].attributes["style"] == doc["item1"]["style"]
    assert project.model_runs.get(third.model_run_id).kind == "import"
    accepted = project.annotations.accept_prediction(beside[0].id, replace=item.id)
    now = project.annotations.get(accepted.annotation_id)
    assert now.box[0] == 0.0 and now.landmarks[:, 2].tolist() == [v for v in doc["item1"]["landmarks"][2::3]]


def _break(df2):
    """Damage some files of the train split in each way the issue lists; returns the damaged stems."""
    annos, images = df2 / "train" / "annos", df2 / "train" / "image"
    (annos / "000001.json").write_text("{not json")
    doc = json.loads((annos / "000002.json").read_text())
    doc["item1"]["category_id"] = 14
    (annos / "000002.json").write_text(json.dumps(doc))
    doc = json.loads((annos / "000003.json").read_text())
    doc["item1"]["landmarks"] = doc["item1"]["landmarks"][:-3]
    (annos / "000003.json").write_text(json.dumps(doc))
    doc = json.loads((annos / "000004.json").read_text())
    doc[sorted(k for k in doc if k.startswith("item"))[-1]]["bounding_box"] = [10, 10, 150, 50]
    (annos / "000004.json").write_text(json.dumps(doc))
    doc = json.loads((annos / "000005.json").read_text())
    doc["item1"]["bounding_box"] = [50, 50, 10, 60]
    (annos / "000005.json").write_text(json.dumps(doc))
    (images / "000006.jpg").unlink()
    return {"000001": "not valid JSON", "000002": "unknown category id 14",
            "000003": "landmark numbers, expected", "000004": "lies outside the 96×96 image",
            "000005": "negative width", "000006": "image file"}


def test_bad_files_are_reported_and_the_rest_imported(sqlite_project, df2):
    expected = _break(df2)
    report = import_df2(sqlite_project, df2, batch_size=4)
    found = {e.path.stem: e.message for e in report.errors}
    assert set(found) == set(expected)
    for stem, reason in expected.items():
        assert reason in found[stem], found[stem]
    assert report.images_added == 10
    paths = {i.path for i in sqlite_project.images.page(limit=100)}
    assert not any(f"train/image/{stem}.jpg" in p for p in paths for stem in expected)
    assert sum(len(sqlite_project.annotations.for_image(i.id)) for i in sqlite_project.images.page(limit=100)) \
        == report.items_added


def _coco_file(df2, tmp_path):
    truth, _ = read_df2_annotations(df2 / "train")
    dataset = ground_truth_to_coco(truth)
    for image in dataset["images"]:
        image["file_name"] = f"{image['id']:06d}.jpg"
    for ann in dataset["annotations"]:
        ann["style"] = 1
    path = tmp_path / "train_coco.json"
    path.write_text(json.dumps(dataset))
    return path, dataset


def test_coco_import_skips_whole_images_with_a_bad_annotation(project, df2, tmp_path):
    path, dataset = _coco_file(df2, tmp_path)
    bad = dataset["annotations"][0]
    bad["category_id"] = 99
    dataset["images"].append(dict(dataset["images"][1], id=999))  # a duplicate file name
    path.write_text(json.dumps(dataset))
    report = import_coco(project, path, df2 / "train" / "image")
    messages = " | ".join(e.message for e in report.errors)
    assert f"image {bad['image_id']}" in messages and "unknown category id 99" in messages
    assert "duplicate image id or file name" in messages
    assert report.images_added == 11
    image = project.images.by_path(f"df2/train/image/{dataset['images'][2]['file_name']}")
    items = project.annotations.for_image(image.id)
    assert items and all(r.style == 1 and r.occlusion is None for r in items)


def test_predictions_go_beside_and_seed_new_images(project, df2, tmp_path):
    import_df2(project, df2 / "validation")  # 4 images with their truth
    import_images(project, [df2 / "train" / "image"])  # 12 images without items
    out = tmp_path / "pred"
    out.mkdir()
    rng = np.random.default_rng(0)
    for name in ("000001.jpg", "000002.jpg", "000101.jpg"):
        dets = [Detection(9, s, s, np.array([5.0, 5.0, 60.0, 70.0]),
                          np.column_stack([rng.uniform(5, 60, (8, 2)), rng.uniform(0, 1, 8)]),
                          np.ones(8, bool)) for s in (0.9, 0.2)]
        write_df2_predictions(out / f"{name[:-4]}.json", dets, image_file=name)
    (out / "broken.json").write_text("[")
    shutil.copy(out / "000001.json", out / "dup.json")
    report = import_predictions(project, out, run_name="m1", images_dir=df2 / "train" / "image",
                                params={"alpha": 0.8})
    assert {e.path.name for e in report.errors} == {"broken.json", "dup.json", "000101.json"}
    assert report.predictions_added == 4 and report.items_added == 2
    image = project.images.by_path("df2/train/image/000001.jpg")
    assert image.status == "predicted"
    (seeded,) = project.annotations.for_image(image.id)
    assert seeded.origin == "predicted" and seeded.prediction_id is not None
    # the same source again, its images found by image_file name: the one run gets only what it lacked
    by_name = import_predictions(project, tmp_path / "pred", run_name="m2")
    assert (by_name.model_run_id, by_name.predictions_added, by_name.unchanged) == (report.model_run_id, 2, 2)
    assert by_name.items_added == 0
    val = project.images.by_path("df2/validation/image/000101.jpg")
    assert len(project.annotations.for_image(val.id)) == len(read_df2_annotations(df2 / "validation")[0][101])
    assert [(r.name, r.completed) for r in project.model_runs.list()] == [("m1", True)]
    assert project.predictions.count() == 6


def test_missing_source_is_a_clear_error(project, tmp_path):
    from deepmark.core.store import StoreError

    with pytest.raises(StoreError, match="no annos/ folder"):
        import_df2(project, tmp_path)
    with pytest.raises(StoreError, match="not a folder"):
        import_df2(project, tmp_path / "nope")
