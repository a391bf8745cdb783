"""``deepmark project init / import / export / status`` end to end (SQLite)."""

import json

import pytest

from deepmark.core.cli.main import main
from deepmark.core.cli.store import detect_format
from deepmark.core.formats.df2 import write_df2_predictions
from deepmark.core.store import Project
from deepmark.core.store.schema import head_revision


def test_init_import_status_export(tmp_path, df2, capsys, monkeypatch):
    path = tmp_path / "team.deepmark"
    assert main(["project", "init", str(path), "--root", str(tmp_path)]) == 0
    assert "created project" in capsys.readouterr().out
    assert main(["project", "init", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err
    monkeypatch.setenv("DEEPMARK_PROJECT", str(path))
    assert main(["import", str(df2), "--status", "accepted", "--quiet"]) == 0
    assert "df2 import" in (out := capsys.readouterr().out) and "16 images added" in out
    (df2 / "train" / "annos" / "000001.json").write_text("{")
    assert main(["import", str(df2), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "000001.json: not valid JSON" in captured.err and "15 unchanged" in captured.out
    with Project.open(path) as project:
        item = project.annotations.for_image(project.images.page(limit=1)[0].id)[0]
        project.annotations.set_landmark(item.id, 0, x=item.landmarks[0, 0] + 3, y=item.landmarks[0, 1] + 4, v=2)
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["images"] == 16 and status["images_by_status"]["accepted"] == 16 and status["edits"] == 1
    assert status["mean_displacement_px"] == {str(item.category_id): pytest.approx(5.0)}
    assert main(["status"]) == 0
    assert "mean displacement px" in capsys.readouterr().out
    target = tmp_path / "export"
    assert main(["export", str(target), "--val-fraction", "0.25", "--quiet"]) == 0
    assert "train:" in capsys.readouterr().out and (target / "train_coco.json").exists()
    assert main(["export", str(target), "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["project", "info"]) == 0
    assert f"schema    {head_revision()}" in capsys.readouterr().out


def test_missing_project_is_a_clear_error(tmp_path, capsys):
    assert main(["status", "--project", str(tmp_path / "none.deepmark")]) == 2
    assert "no such project file" in capsys.readouterr().err


def test_format_detection(tmp_path, df2):
    assert detect_format(df2) == "df2"
    assert detect_format(df2 / "train" / "annos") == "df2"
    assert detect_format(df2 / "train" / "image") == "images"
    pred = tmp_path / "pred"
    pred.mkdir()
    write_df2_predictions(pred / "a.json", [], image_file="a.jpg")
    assert detect_format(pred) == "predictions"
    (tmp_path / "results.json").write_text("[]")
    assert detect_format(tmp_path / "results.json") == "predictions"
    (tmp_path / "coco.json").write_text('{"images": [], "annotations": []}')
    assert detect_format(tmp_path / "coco.json") == "coco"


def test_default_project_lives_in_the_user_data_folder(tmp_path, monkeypatch, capsys):
    from deepmark.core.store import default_project_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("DEEPMARK_PROJECT", raising=False)
    assert default_project_path() == tmp_path / "data" / "deepmark-studio" / "project.deepmark"
    assert main(["project", "init"]) == 0
    assert default_project_path().is_file()
    assert main(["status"]) == 0 and "0 images" in capsys.readouterr().out
