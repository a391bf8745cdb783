"""The ``deepmark`` command end to end: decode saved heads, evaluate, tune; bad files reported."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepmark.core.cli.main import main
from deepmark.core.formats.heads_file import save_heads
from deepmark.core.synthetic.simulate import random_scene, simulated_heads

SIZE = (256, 192)


def _write_annotation(folder: Path, image_id: int, items, taxonomy) -> None:
    doc = {"source": "user", "pair_id": image_id}
    for k, item in enumerate(items, start=1):
        doc[f"item{k}"] = {
            "category_id": item.category_id,
            "category_name": taxonomy.category(item.category_id).name,
            "bounding_box": item.box.tolist(),
            "landmarks": item.landmarks.ravel().tolist(),
            "style": 0, "scale": 2, "occlusion": 1, "zoom_in": 1, "viewpoint": 2, "segmentation": [],
        }
    (folder / f"{image_id:06d}.json").write_text(json.dumps(doc))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, taxonomy, semantic62):
    root = tmp_path_factory.mktemp("df2")
    annos, heads_dir = root / "validation" / "annos", root / "heads"
    annos.mkdir(parents=True)
    heads_dir.mkdir()
    rng = np.random.default_rng(21)
    for image_id in range(1, 9):
        items = random_scene(rng, taxonomy, SIZE)
        _write_annotation(annos, image_id, items, taxonomy)
        save_heads(heads_dir / f"{image_id:06d}", simulated_heads(items, SIZE, taxonomy, semantic62), image_id)
    return root


def test_decode_then_eval_gives_perfect_scores(tmp_path, dataset, capsys):
    results = tmp_path / "results.json"
    assert main(["decode", str(dataset / "heads"), "--out", str(results)]) == 0
    assert "detections on 8 images" in capsys.readouterr().out
    metrics = tmp_path / "metrics.json"
    assert main(["eval", str(dataset / "validation"), str(results), "--json", str(metrics)]) == 0
    table = capsys.readouterr().out
    assert "mAP @ .50:.95" in table and "short sleeve top" in table
    data = json.loads(metrics.read_text())
    assert data["map_pt"] == pytest.approx(1.0) and data["map_box"] == pytest.approx(1.0)


def test_tune_writes_table_and_best_params(tmp_path, dataset, capsys):
    out_csv, out_json, best = tmp_path / "t.csv", tmp_path / "t.json", tmp_path / "best.json"
    code = main([
        "tune", str(dataset / "validation" / "annos"), str(dataset / "heads"), "--param", "sigma_center",
        "--param", "sigma_keypoint", "--values", "0,0.5,1", "--out", str(out_csv), "--out", str(out_json),
        "--best-params", str(best), "--quiet", "--workers", "1", "--set", "center_rescoring=true",
    ])
    assert code == 0
    assert "9 grid points" in capsys.readouterr().out
    assert len(out_csv.read_text().splitlines()) == 10
    params = json.loads(best.read_text())
    assert params["heatmap_rescoring"] and params["center_rescoring"]
    assert json.loads(out_json.read_text())["best_values"]["sigma_center"] == params["sigma_center"]
    # The best parameters feed straight back into decode.
    assert main(["decode", str(dataset / "heads"), "--out", str(tmp_path / "r.json"), "--params", str(best)]) == 0


def test_bad_files_are_reported_and_the_rest_processed(tmp_path, dataset, capsys):
    heads = tmp_path / "heads"
    heads.mkdir()
    for path in (dataset / "heads").glob("*.npz"):
        (heads / path.name).write_bytes(path.read_bytes())
    (heads / "000099.npz").write_bytes(b"truncated")
    code = main(["decode", str(heads), "--out", str(tmp_path / "r.json")])
    captured = capsys.readouterr()
    assert code == 1
    assert "000099.npz: cannot read raw heads" in captured.err
    assert "on 8 images" in captured.out


def test_bad_arguments_exit_2(tmp_path, dataset, capsys):
    assert main(["decode", str(dataset / "heads"), "--out", str(tmp_path / "r.json"), "--set", "alpha=3"]) == 2
    assert "alpha must be a number in [0, 1]" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nowhere"), str(tmp_path / "r.json")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("deepmark")
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "eval" in done.stdout and "tune" in done.stdout


def test_simulate_then_ablation_table(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--n", "6", "--out", str(out), "--size", "128"]) == 0
    assert len(list((out / "annos").glob("*.json"))) == 6 and len(list((out / "heads").glob("*.npz"))) == 6
    capsys.readouterr()
    best = tmp_path / "best.json"
    assert main(["ablation", str(out / "annos"), str(out / "heads"), "--step", "0.5", "--workers", "1",
                 "--best-params", str(best)]) == 0
    table = capsys.readouterr().out
    tuned = json.loads(best.read_text())
    assert tuned["center_rescoring"] and tuned["keypoint_rescoring"] and tuned["nms"]
    assert tuned["alpha"] in (0.0, 0.5, 1.0) and tuned["gamma"] in (0.0, 0.5, 1.0)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "mAP" not in line]
    assert [r.split("|")[1].strip() for r in rows] == [
        "Baseline", "NMS", "Technique (1) center rescoring", "Technique (2) heatmap rescoring",
        "Technique (3) location refinement", "Technique (4) keypoint rescoring", "Combined",
    ]
    assert "held-out" in table
    assert "leave out the heads check" in table and "ms/image, paid once per image" in table


def test_no_ablation_row_pays_the_heads_check(taxonomy, semantic62):
    """The check is cached per heads object: it runs before the rows are timed, so the first row (the
    baseline) is not charged for it; its own time is reported."""
    import numpy as np

    from deepmark.core.centernet import decode
    from deepmark.core.domain.structures import PostprocessParams
    from deepmark.core.evaluation.ablation import ablation_table
    from deepmark.core.synthetic.simulate import random_scene, simulated_heads

    rng = np.random.default_rng(4)
    scenes = {i: random_scene(rng, taxonomy, (256, 256)) for i in range(1, 4)}
    heads = {i: simulated_heads(items, (256, 256), taxonomy, semantic62) for i, items in scenes.items()}
    checked_during_rows = []
    real = decode.validate_heads

    def spy(h, t, g):
        cached = decode._validated.get(h) is not None
        checked_during_rows.append(cached)
        return real(h, t, g)

    settings = {"Baseline": PostprocessParams(), "Combined": PostprocessParams.all_techniques()}
    import deepmark.core.evaluation.ablation as ablation_module

    original = ablation_module.validate_heads
    ablation_module.validate_heads = real  # the check before the rows, as the module runs it
    decode.validate_heads = spy  # what decode_detections calls inside the rows
    try:
        rows = ablation_table(heads, scenes, settings, taxonomy, semantic62)
    finally:
        decode.validate_heads = real
        ablation_module.validate_heads = original
    assert rows[0].check_ms > 0 and rows[0].check_ms == rows[1].check_ms
    assert checked_during_rows and all(checked_during_rows)  # inside every row, the heads were already checked


def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--images", "6", "--out", str(tmp_path / "demo"), "--step", "0.5", "--workers", "1"]) == 0
    assert "| Combined |" in capsys.readouterr().out


def test_model_params_are_stored_in_the_model(tmp_path, tiny_onnx, capsys):
    import shutil

    from deepmark.core.formats.model_file import read_model_info
    from deepmark.core.inference.detector import Detector
    from deepmark.core.store.presets import model_default_params

    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"alpha": 0.55, "sigma_center": 0.3, "gamma": 0.8}))
    before = model.read_bytes()
    assert main(["model-params", str(model), "--params", str(params), "--set", "nms=false"]) == 0
    assert "recommended post-processing stored" in capsys.readouterr().out
    recommended = model_default_params(read_model_info(model))
    assert (recommended.alpha, recommended.sigma_center, recommended.gamma, recommended.nms) == (0.55, 0.3, 0.8, False)
    assert read_model_info(model).training["postprocess"]["alpha"] == 0.55
    assert len(model.read_bytes()) > 0.9 * len(before)  # the weights are still there
    Detector(model)  # and it still loads for inference
    assert main(["model-params", str(tmp_path / "missing.onnx"), "--set", "alpha=0.5"]) == 2


BAD_SETS = [
    ("alpha=abc", "--set: alpha='abc': expected a number"),
    ("top_k=2.5", "--set: top_k='2.5': expected a whole number"),
    ("nope=1", "--set: unknown post-processing parameter(s) ['nope']; valid names: center_rescoring, alpha"),
    ("nms=maybe", "--set: nms='maybe': expected true or false"),
    ("alpha", "--set 'alpha': expected name=value"),
    ("alpha=nan", "--set: alpha='nan': expected a finite number"),
]


def _one_error_line(err: str, expected: str) -> None:
    """The whole of stderr is one ``error: ...`` line holding ``expected`` (no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err


@pytest.mark.parametrize("command", ["decode", "predict"])
@pytest.mark.parametrize(("item", "expected"), BAD_SETS)
def test_a_bad_set_is_one_line_and_exit_2(tmp_path, dataset, capsys, command, item, expected):
    out = tmp_path / "out"
    args = {"decode": ["decode", str(dataset / "heads")],
            "predict": ["predict", str(tmp_path), "--model", str(tmp_path / "never-loaded.onnx")]}[command]
    assert main([*args, "--out", str(out), "--set", item]) == 2
    _one_error_line(capsys.readouterr().err, expected)
    assert not out.exists()


@pytest.mark.parametrize("command", ["decode", "predict"])
@pytest.mark.parametrize(("text", "expected"), [
    ("[0.5, 0.7]", "expected an object of parameter names and values, got list"),
    ('{"top_k": "many"}', "top_k='many': expected a number"),
    ('{"center_rescoring": 2}', "center_rescoring=2: expected true or false"),
    ('{"alpha": 0.5, "alpah": 0.5}', "unknown post-processing parameter(s) ['alpah']"),
    ("{not json", "cannot read parameters"),
])
def test_a_bad_params_file_is_one_line_naming_it_and_exit_2(tmp_path, dataset, capsys, command, text, expected):
    params = tmp_path / "params.json"
    params.write_text(text)
    args = {"decode": ["decode", str(dataset / "heads")],
            "predict": ["predict", str(tmp_path), "--model", str(tmp_path / "never-loaded.onnx")]}[command]
    assert main([*args, "--out", str(tmp_path / "out"), "--params", str(params)]) == 2
    _one_error_line(capsys.readouterr().err, f"{params}: {expected}")


def test_params_file_then_set_then_decode(tmp_path, dataset, capsys):
    from deepmark.core.cli.params import params_from_options

    params = tmp_path / "p.json"
    params.write_text(json.dumps({"alpha": 0.25, "top_k": 7.0, "nms": "yes"}))
    merged = params_from_options(str(params), ["alpha=0.5", "center_rescoring=TRUE"])
    assert (merged.alpha, merged.top_k, merged.nms, merged.center_rescoring) == (0.5, 7, True, True)
    assert main(["decode", str(dataset / "heads"), "--out", str(tmp_path / "r.json"), "--params", str(params),
                 "--set", "alpha=0.5"]) == 0


def test_bad_tune_values_are_one_line_and_exit_2(tmp_path, dataset, capsys):
    assert main(["tune", str(dataset / "validation" / "annos"), str(dataset / "heads"), "--param", "alpha",
                 "--values", "0,half,1", "--quiet", "--workers", "1"]) == 2
    _one_error_line(capsys.readouterr().err, "--values '0,half,1': expected comma-separated numbers")


def test_model_params_records_what_the_model_learned_from(tiny_onnx, tmp_path):
    import shutil

    from deepmark.core.formats.model_file import read_model_info

    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    assert main(["model-params", str(model), "--set", "alpha=0.7"]) == 0
    assert main(["model-params", str(model), "--training-data", "synthetic garments (test)"]) == 0
    info = read_model_info(model)
    assert info.training_data == "synthetic garments (test)" and info.synthetic_only
    assert info.training["postprocess"]["alpha"] == 0.7  # the recommended parameters are kept


def test_predict_input_size_must_be_a_multiple_the_model_takes(tmp_path, capsys):
    demo = Path(__file__).resolve().parents[3] / "resources" / "demo" / "image"
    assert main(["predict", str(demo), "--out", str(tmp_path / "out"), "--input-size", "200", "200"]) == 2
    assert "takes multiples of 32" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
