"""DeepMark++ Table 3 on the demo images with the bundled model: the rows, what each row decodes, the
refinement row fed with the multi-scale detections, and bad images named and left out."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deepmark.core.domain.taxonomy import load_taxonomy
from deepmark.core.experiments.table3 import format_table3, paper_table3
from deepmark.core.formats.df2 import read_df2_annotations
from deepmark.core.inference.detector import Detector

DEMO = Path(__file__).resolve().parents[3] / "resources" / "demo"
ROWS = ["Baseline", "+ post-processing", "+ NMS", "+ flip", "+ multi-scale"]


class OracleRefiner:
    """Moves every landmark onto the nearest ground-truth garment's landmark of the same category: whatever
    the table reports for the refinement row must be computed from what ``refine`` returned."""

    def __init__(self, truth) -> None:
        self.truth = truth
        self.calls = 0
        self.image_id = 0

    def refine(self, image, detections):
        self.calls += 1
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
        out = []
        for det in detections:
            same = [item for items in self.truth.values() for item in items if item.category_id == det.category_id]
            if not same:
                out.append(det)
                continue
            centre = (det.box[:2] + det.box[2:]) / 2
            nearest = min(same, key=lambda item: np.linalg.norm((item.box[:2] + item.box[2:]) / 2 - centre))
            landmarks = det.landmarks.copy()
            landmarks[:, :2] = nearest.landmarks[:, :2]
            out.append(replace(det, landmarks=landmarks))
        return out


@pytest.fixture(scope="module")
def demo():
    truth, errors = read_df2_annotations(DEMO / "annos")
    assert not errors
    images = {int(p.stem): p for p in sorted((DEMO / "image").iterdir())}
    return truth, images


def test_rows_in_the_papers_order_each_adding_one_technique(demo):
    truth, images = demo
    detector = Detector()
    ids = sorted(images)
    table = paper_table3(detector, images, truth, ids[::2], ids[1::2], load_taxonomy(), detector.grouping,
                         values=[0.0, 0.5, 1.0])
    assert [row.name for row in table.rows] == ROWS
    assert table.tune_images == 4 and table.test_images == 4 and not table.skipped
    assert table.params.nms and table.params.center_rescoring  # all four techniques + NMS were tuned
    by_name = {row.name: row for row in table.rows}
    # the three plain rows share one network run per image; flip and multi-scale pay for more runs
    assert by_name["Baseline"].steps_ms["network"] == by_name["+ NMS"].steps_ms["network"]
    assert by_name["+ multi-scale"].steps_ms["network"] > by_name["Baseline"].steps_ms["network"]
    assert all(row.ms_per_image > 0 and row.result.num_images == 4 for row in table.rows)
    text = format_table3(table)
    assert text.count("\n") == len(ROWS) + 1 and "| + flip |" in text


def test_refinement_row_measures_what_the_refiner_returned(demo):
    truth, images = demo
    detector = Detector()
    ids = sorted(images)
    refiner = OracleRefiner(truth)
    table = paper_table3(detector, images, truth, ids[:3], ids[3:], load_taxonomy(), detector.grouping,
                         refiner=refiner, values=[0.5])
    by_name = {row.name: row for row in table.rows}
    assert refiner.calls == 5
    assert by_name["+ refinement"].result.map_pt > by_name["+ multi-scale"].result.map_pt
    assert by_name["+ refinement"].result.map_box == by_name["+ multi-scale"].result.map_box
    assert by_name["+ refinement"].steps_ms["refine"] >= 0


def test_cli_names_a_broken_image_and_goes_on(tmp_path):
    shutil.copytree(DEMO, tmp_path / "demo")
    (tmp_path / "demo" / "image" / "000006.jpg").write_bytes(b"not a jpeg")
    run = subprocess.run([sys.executable, "-m", "deepmark.core.cli.main", "ablation", "--table", "3",
                          str(tmp_path / "demo" / "annos"), str(tmp_path / "demo"), "--step", "0.5",
                          "--workers", "1"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stderr
    assert "000006.jpg" in run.stderr and "Traceback" not in run.stderr
    assert "| + multi-scale |" in run.stdout and "no refinement row" in run.stdout


def test_table_1_options_are_refused_with_table_3_inputs(tmp_path):
    run = subprocess.run([sys.executable, "-m", "deepmark.core.cli.main", "ablation", str(DEMO / "annos"),
                          str(DEMO), "--refiner", str(tmp_path / "r.onnx")], capture_output=True, text=True)
    assert run.returncode == 2 and "--table 3" in run.stderr
