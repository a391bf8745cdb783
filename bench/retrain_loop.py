"""The correction → retraining loop, measured (issue 14 point 4; a script, not a test).

    .venv/bin/python bench/retrain_loop.py --data DIR --work DIR [--epochs 4] [--control]
    .venv/bin/python bench/retrain_loop.py --labelled DIR --new DIR --val DIR --work DIR ...

``--data DIR`` renders the shifted synthetic domain below into ``DIR/labelled`` (300 images, seed 11),
``DIR/new`` (300 more, seed 11, ids 301–600) and ``DIR/val`` (200, seed 12) when they are not there yet.

Every model here comes out of the app's retraining job (``RetrainJob``, the object the Model → Retrain dialog
drives: export of the accepted images, ``deepmark train`` in a separate process, ONNX export, post-processing tuned
on the job's held-out accepted images, both models evaluated there):

1. *Job 1*: a project whose only accepted images are the ``--labelled`` ones (e.g. 300), retrained from the
   bundled model → the starting model M1, "a model trained on 300 images".
2. The ``--new`` images (e.g. 300 more), predicted by M1 and corrected by the simulated annotator with every assist
   (``simulate_correction``: each garment brought within tolerance of the truth, KS ≥ 0.9; the truth itself never
   enters the store), accepted.
3. *Job 2*: retrained from M1 on all accepted images → M2.
4. *Control* (``--control``): job 2's schedule again from M1, in a second project holding only the ``--labelled``
   images → M1′. M2 against M1′ separates what the corrected images taught from what more training steps did.
5. The bundled model M0, M1, M2 (and M1′) on ``--val``, labelled images outside the projects, each decoded with
   the post-processing its job tuned: mAP_pt and mAP_box.

Why the bundled model is the starting point of job 1 and not random weights: no one trains a detector from scratch
on 300 images (DeepMark++ starts from CenterNet's pretrained weights), and from scratch this recipe needs ~1,500
steps before its mAP leaves zero (resources/models/training/default-log.jsonl). The ``--labelled``, ``--new`` and
``--val`` images come from a shifted synthetic domain (smaller, more rotated and deformed garments) so that there is
something to learn beyond the bundled model's own training set.

Everything is written under ``--work``; running it again with the same ``--work`` resumes a job where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.domain.taxonomy import load_taxonomy
from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator
from deepmark.core.formats.df2 import read_df2_annotations, write_df2_annotation
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import Detector, default_model_path
from deepmark.core.store import Project
from deepmark.core.store.interchange import import_df2
from deepmark.core.store.presets import model_default_params
from deepmark.core.studio.annotator import ALL_ASSISTS, simulate_correction
from deepmark.core.studio.retrain import RetrainJob, RetrainOptions, RetrainResult
from deepmark.core.studio.retrain_finish import model_heads
from deepmark.core.synthetic.config import SynthConfig
from deepmark.core.synthetic.dataset import generate_dataset

TAXONOMY = load_taxonomy()
# smaller, more rotated and deformed, more crowded garments than the bundled model's training set
SHIFTED = SynthConfig(scale_range=(0.2, 0.6), rotation_deg=40.0, deformation=1.6, max_items=7, image_noise=1.5)


def shifted_data(folder: Path) -> tuple[Path, Path, Path]:
    """(labelled, new, val) folders of the shifted domain below ``folder``, rendered when absent."""
    parts = {"labelled": (300, 11, 1), "new": (300, 11, 301), "val": (200, 12, 1)}
    for name, (count, seed, start) in parts.items():
        if not (folder / name / "annos").is_dir():
            generate_dataset(folder / name, count, seed=seed, config=SHIFTED, start=start)
    return folder / "labelled", folder / "new", folder / "val"


def image_files(folder: Path) -> dict[int, Path]:
    """Image id → file of a DeepFashion2 folder's ``image/NNNNNN.jpg``."""
    return {int(p.stem): p for p in sorted((folder / "image").glob("*.jpg"))}


def corrected_folder(detector: Detector, new: Path, out: Path) -> tuple[Path, dict]:
    """``out`` in DeepFashion2 layout: the ``new`` images (linked) with the labels the simulated annotator
    stores after correcting ``detector``'s predictions; and what the correction cost."""
    truth, errors = read_df2_annotations(new, TAXONOMY)
    if errors:
        raise SystemExit(f"{new}: {len(errors)} unreadable annotation file(s), first: {errors[0]}")
    files = {n: f for n, f in image_files(new).items() if n in truth}
    params = model_default_params(detector.info)
    heads = model_heads(detector, files)
    predictions = {n: decode_detections(h, params, TAXONOMY, detector.grouping) for n, h in heads.items()}
    sizes = {n: read_image(f).shape[1::-1] for n, f in files.items()}  # (width, height)
    corrected = simulate_correction(predictions, truth, TAXONOMY, ALL_ASSISTS, heads, params, detector.grouping,
                                    image_sizes=sizes)
    (out / "image").mkdir(parents=True, exist_ok=True)
    (out / "annos").mkdir(parents=True, exist_ok=True)
    for number, items in corrected.items():
        link = out / "image" / files[number].name
        if not link.exists():
            link.symlink_to(files[number].resolve())
        write_df2_annotation(out / "annos" / f"{number:06d}.json", items, TAXONOMY)
    garments = sum(len(v) for v in truth.values())
    predicted = sum(len(v) for v in predictions.values())
    return out, {"images": len(corrected), "garments": garments, "predicted_garments": predicted}


def evaluate_on(model: Path, params: PostprocessParams, val: Path) -> dict:
    truth, _ = read_df2_annotations(val, TAXONOMY)
    detector = Detector(model, taxonomy=TAXONOMY)
    files = {n: f for n, f in image_files(val).items() if n in truth}
    heads = model_heads(detector, files)
    detections = {n: decode_detections(h, params, TAXONOMY, detector.grouping) for n, h in heads.items()}
    result = DeepFashion2Evaluator(truth, TAXONOMY).evaluate(detections)
    return {"mAP_pt": result.map_pt, "mAP_box": result.map_box, "images": len(truth)}


def steps_run(result: RetrainResult, project: Project) -> tuple[int, int]:
    """(training steps, epochs) a finished job ran, from its run's log."""
    lines = (project.training.get(result.job_id).job_dir / "run" / "log.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in lines.splitlines() if line.strip()]
    return int(records[-1]["step"]), len(records)


def run_job(project: Project, current_model: Path, epochs: int, lr: float | None,
            checkpoint: Path | None = None) -> RetrainResult:
    """The project's job to its end (resumed when one was interrupted), progress printed. ``checkpoint``: the
    current model's training checkpoint when the project did not make it (None: the job finds it)."""
    mine = [r for r in project.training.list()
            if r.base_model_path and Path(r.base_model_path).resolve() == Path(current_model).resolve()]
    record = max(mine, key=lambda r: r.id) if mine else None
    if record is not None and record.state == "done":
        return RetrainJob(project, record).result()
    if record is not None and record.state not in ("failed", "discarded"):
        job = RetrainJob.attach(project, record.id)
        if not job.poll().running:
            job = RetrainJob.resume(project, record.id)
    else:
        job = RetrainJob.start(project, current_model=current_model,
                               options=RetrainOptions(epochs=epochs, lr=lr, workers=1, base_checkpoint=(
                                   None if checkpoint is None else str(checkpoint))))
    last = ""
    while not (progress := job.poll()).ended:
        if (line := progress.describe()) != last:
            print(time.strftime("%H:%M:%S"), f"job {job.id}:", line, flush=True)
            last = line
        time.sleep(10)
    if progress.state != "done":
        raise SystemExit(f"job {job.id} ended: {progress.describe()}")
    return job.result()


def params_of(record) -> PostprocessParams:
    return PostprocessParams.from_mapping(record.params or {}, PostprocessParams.all_techniques())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="render (once) and use the shifted domain's three folders here")
    parser.add_argument("--labelled", type=Path, help="labelled images for job 1 (DF2 folder)")
    parser.add_argument("--new", type=Path, help="more images; their labels serve only as the truth")
    parser.add_argument("--val", type=Path, help="held-out labelled images for the final numbers")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each job")
    parser.add_argument("--lr", type=float, default=None, help="default: the job's fine-tuning rate")
    parser.add_argument("--control", action="store_true", help="also retrain M1 on the labelled images alone")
    args = parser.parse_args(argv)
    if args.data is not None:
        args.labelled, args.new, args.val = shifted_data(args.data)
    if None in (args.labelled, args.new, args.val):
        parser.error("give --data, or all of --labelled, --new and --val")
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    bundled = default_model_path()
    project = Project.open(args.work / "loop.deepmark", create=True)
    if project.images.count(("accepted",)) == 0:
        print("job 1 data:", import_df2(project, args.labelled, status="accepted", taxonomy=TAXONOMY))
    first = run_job(project, bundled, args.epochs, args.lr)
    m1 = first.model_path
    summary_file = args.work / "correction.json"
    if not summary_file.is_file():
        _, summary = corrected_folder(Detector(m1, taxonomy=TAXONOMY), args.new, args.work / "corrected")
        report = import_df2(project, args.work / "corrected", status="accepted", taxonomy=TAXONOMY)
        print(f"job 2 data: {report.images_added} images, {report.items_added} items, {len(report.errors)} refused")
        if report.errors:
            raise SystemExit(f"corrected labels refused by the store, first: {report.errors[0].message}")
        summary_file.write_text(json.dumps(summary))
    second = run_job(project, m1, args.epochs, args.lr)
    on_val = {"M0 bundled": evaluate_on(bundled, params_of(first.current), args.val),
              "M1 (job 1, labelled images)": evaluate_on(m1, first.params, args.val),
              "M2 (job 2, + corrected images)": evaluate_on(second.model_path, second.params, args.val)}
    if args.control:
        control = Project.open(args.work / "control.deepmark", create=True)
        if control.images.count(("accepted",)) == 0:
            import_df2(control, args.labelled, status="accepted", taxonomy=TAXONOMY)
        # as many training steps as job 2 ran, on the labelled images alone (job 1's steps per epoch)
        (steps, _), (steps1, epochs1) = steps_run(second, project), steps_run(first, project)
        m1_checkpoint = project.training.get(first.job_id).job_dir / "run" / "best.pt"
        again = run_job(control, m1, max(1, round(steps / (steps1 / epochs1))), args.lr, m1_checkpoint)
        on_val["M1′ (control: job 2's steps, labelled images only)"] = evaluate_on(again.model_path, again.params,
                                                                                  args.val)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "epochs_per_job": args.epochs, "correction": json.loads(summary_file.read_text()),
              "job1_held_out": {"current": first.current.metrics, "new": first.new.metrics},
              "job2_held_out": {"current": second.current.metrics, "new": second.new.metrics},
              "val": on_val, "wall_s": round(time.time() - started, 1)}
    (args.work / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
