"""The end of a retraining job, run as its own process (``python -m deepmark.core.studio.retrain_finish JOB_DIR``)
once ``deepmark train`` has finished, so that neither torch nor the evaluation runs in the app.

It exports the run's best checkpoint (``run/best.pt``, by validation mAP_pt; ``run/last.pt`` when the run never
validated) as ``model.onnx``, then, on the job's validation images (accepted images the training never saw):
runs the new model and the job's current model once each, tunes each one's post-processing on them
(all four techniques + NMS, as ``deepmark ablation`` does: (σ_c, σ_k), then α, then γ; both models the same
way, so the comparison is fair), evaluates both with their tuned parameters (DeepFashion2 protocol: mAP_pt,
mAP_box, per category), stores the new model's tuned parameters in its metadata, and writes ``result.json``
(atomically, last: its presence means the job's end succeeded). The parent records it in the store.

Failure: one ``error:`` line on stderr, exit status 2, and no ``result.json``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import RawHeads
from deepmark.core.domain.taxonomy import Taxonomy, load_taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.evaluation.ablation import tune_all_techniques
from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator
from deepmark.core.formats.df2 import read_df2_annotations
from deepmark.core.formats.model_file import set_recommended_params
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import Detector
from deepmark.core.store.predictions import file_sha256
from deepmark.core.util.atomic import write_text_atomically

RESULT_FILE = "result.json"
JOB_FILE = "job.json"  # written by the parent: current model, tuning grid step, what the data is
BATCH = 8


def export_new_model(job_dir: Path, taxonomy: Taxonomy) -> tuple[Path, Path]:
    """(model.onnx, the checkpoint it came from): the run's best.pt, else last.pt, exported with its training
    summary; DeepMarkError when the run left neither."""
    from deepmark.core.domain.taxonomy import load_grouping
    from deepmark.core.formats.model_file import model_info
    from deepmark.core.network.checkpoint import checkpoint_model, load_checkpoint
    from deepmark.core.training.export import export_onnx, training_summary

    run = job_dir / "run"
    checkpoint_path = next((p for p in (run / "best.pt", run / "last.pt") if p.is_file()), None)
    if checkpoint_path is None:
        raise DeepMarkError(f"{run}: the training left no checkpoint (best.pt or last.pt)", path=run)
    checkpoint = load_checkpoint(checkpoint_path)
    grouping = load_grouping(checkpoint["grouping"], taxonomy)
    model = checkpoint_model(checkpoint, grouping, taxonomy)
    info = model_info(checkpoint["arch"], grouping, taxonomy, tuple(checkpoint["input_size"]),
                      training_summary(checkpoint), input_multiple=model.input_multiple)
    return export_onnx(model.eval(), info, job_dir / "model.onnx"), checkpoint_path


def validation_set(job_dir: Path, taxonomy: Taxonomy) -> tuple[dict[int, list], dict[int, Path], dict[int, int]]:
    """The exported validation part: ground truth by file number, image file by number, project image id by
    number (from the export's manifest)."""
    folder = job_dir / "data" / "validation"
    truth, errors = read_df2_annotations(folder, taxonomy)
    if errors:
        raise DeepMarkError(f"{folder}: {errors[0]}", path=folder)
    manifest = json.loads((job_dir / "data" / "export.json").read_text(encoding="utf-8"))
    files, ids = {}, {}
    for entry in manifest["splits"]["validation"]:
        number = int(Path(entry["file"]).stem)
        files[number] = folder / "image" / entry["file"]
        ids[number] = int(entry["image_id"])
    missing = sorted(set(truth) - set(files))
    if missing:
        raise DeepMarkError(f"{folder}: annotation {missing[0]:06d} has no image in the export's manifest",
                            path=folder)
    return truth, files, ids


def model_heads(detector: Detector, files: dict[int, Path]) -> dict[int, RawHeads]:
    """Raw heads of every image (by number), batched; the first unusable output is an error."""
    numbers = sorted(files)
    heads: dict[int, RawHeads] = {}
    for start in range(0, len(numbers), BATCH):
        chunk = numbers[start : start + BATCH]
        for number, result in zip(chunk, detector.heads_each([read_image(files[n]) for n in chunk]), strict=True):
            if isinstance(result, DeepMarkError):
                raise DeepMarkError(f"{files[number]}: {result}", path=files[number])
            heads[number] = result
    return heads


def evaluate_model(label: str, path: Path, truth: dict[int, list], files: dict[int, Path], ids: dict[int, int],
                   tune_values: list[float], taxonomy: Taxonomy) -> dict:
    """One model run, tuned and evaluated on the validation images: its result entry."""
    detector = Detector(path, taxonomy=taxonomy)
    heads = model_heads(detector, files)
    params = tune_all_techniques(heads, truth, taxonomy, detector.grouping, values=tune_values)
    detections = {n: decode_detections(h, params, taxonomy, detector.grouping) for n, h in heads.items()}
    metrics = DeepFashion2Evaluator(truth, taxonomy).evaluate(detections).to_dict()
    return {"label": label, "model_path": str(path), "model_hash": file_sha256(path), "params": asdict(params),
            "metrics": metrics, "image_ids": [ids[n] for n in sorted(truth)]}


def finish(job_dir: Path) -> dict:
    """Export, tune and evaluate (see the module docstring); the result written to ``result.json``."""
    job = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    taxonomy = load_taxonomy()
    step = float(job.get("tune_step", 0.1))
    values = [round(float(v), 4) for v in np.arange(0.0, 1.0 + 1e-9, step)]
    model_path, checkpoint = export_new_model(job_dir, taxonomy)
    truth, files, ids = validation_set(job_dir, taxonomy)
    current = evaluate_model("current", Path(job["base_model_path"]), truth, files, ids, values, taxonomy)
    new = evaluate_model("new", model_path, truth, files, ids, values, taxonomy)
    # the new model carries its tuned post-processing: loading it in the app applies them
    set_recommended_params(model_path, new["params"], job.get("training_data"))
    new["model_hash"] = file_sha256(model_path)  # the metadata changed the file
    result = {"model": str(model_path), "checkpoint": str(checkpoint), "evaluations": [current, new]}
    write_text_atomically(job_dir / RESULT_FILE, json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m deepmark.core.studio.retrain_finish JOB_DIR", file=sys.stderr)
        return 2
    try:
        result = finish(Path(args[0]))
    except DeepMarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    maps = ", ".join(f"{e['label']} mAP_pt {e['metrics']['map_pt']}" for e in result["evaluations"])
    print(f"finished: {result['model']} ({maps})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
