"""The ``deepmark`` command: each subcommand maps onto one ``core`` function.

    deepmark eval ANNOTATIONS PREDICTIONS           DeepFashion2 metrics table
    deepmark decode HEADS --out RESULTS.json        saved raw heads → DF2 result file
    deepmark tune ANNOTATIONS HEADS --param alpha   grid search → best parameters + table (CSV/JSON)
    deepmark ablation ANNOTATIONS HEADS             DeepMark++ Table 1 layout, parameters tuned on a split
    deepmark ablation --table 3 ANNOTATIONS IMAGES  DeepMark++ Table 3 layout: + NMS, flip, multi-scale, refinement
    deepmark model-params MODEL --params P.json     store tuned post-processing in a model's metadata
    deepmark model-params MODEL --export P.json     write the parameters a model uses to a file
    deepmark simulate --n N --out DIR               labelled scenes + simulated heads (no model needed)
    deepmark demo                                   simulate, tune and print the ablation table
    deepmark synth --n N --out DIR                  synthetic DeepFashion2-format garments (images + JSON)
    deepmark train CONFIG.toml                      train (or resume) a detector
    deepmark export-onnx CHECKPOINT --out M.onnx    self-describing ONNX (+ static int8 with --int8)
    deepmark predict IMAGES_OR_FOLDER --out DIR     DF2-format predictions with the bundled model (--refine R.onnx)
    deepmark train-refiner CONFIG.toml              train (or resume) a landmark refinement network
    deepmark export-refiner CHECKPOINT --out R.onnx self-describing refiner ONNX (+ static int8 with --int8)
    deepmark train-refiner CONFIG.toml              train (or resume) a landmark refiner (PoseFix-style)
    deepmark export-refiner CHECKPOINT --out R.onnx self-describing refiner ONNX (+ static int8 with --int8)

Bad files are reported one per line on stderr (``error: PATH: reason``); the rest of the work goes on.
Exit status, for every command:

    0  success
    1  finished, but some inputs were skipped (each named on its own line), or nothing matched (export)
    2  nothing done: bad arguments, an unusable project, model or output folder (one ``error:`` line)

No traceback reaches the user; ``deepmark --debug COMMAND`` shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepmark.core import __version__
from deepmark.core.cli.store import add_store_commands
from deepmark.core.errors import DeepMarkError
from deepmark.core.util.atomic import write_text_atomically, writing_to

if TYPE_CHECKING:
    from deepmark.core.domain.structures import PostprocessParams

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED = 0, 1, 2


def _output_folder(path: str | Path) -> Path:
    """An output folder checked before any work: it can be made (or is there) and takes files (else one named
    error); nothing is created."""
    from deepmark.core.util.atomic import writable_folder

    return writable_folder(path)


def _output_file(path: str | Path | None) -> None:
    """Check the folder of an output file before any work (``path`` None: no such output)."""
    if path is not None:
        _output_folder(Path(path).expanduser().parent)


def _report(errors) -> None:
    for error in errors:
        print(f"error: {error}", file=sys.stderr)


def _params_from_args(args, base: PostprocessParams | None = None) -> PostprocessParams:
    """PostprocessParams: ``base``, then ``--params FILE.json``, then ``--set name=value`` options."""
    from deepmark.core.cli.params import params_from_options

    return params_from_options(args.params, args.set, base)


def _params_for_model(args, info, name: str) -> PostprocessParams:
    """The model's own parameters (``info``: its metadata; None: no model known), then ``--params`` and
    ``--set``; says on stderr which set is used."""
    from deepmark.core.store.presets import model_default_params, model_params_origin

    return _chosen_params(args, model_default_params(info), model_params_origin(info, name))


def _chosen_params(args, base: PostprocessParams, origin: str) -> PostprocessParams:
    """``base`` (described by ``origin``), then ``--params`` and ``--set``; says on stderr which set is used."""
    from deepmark.core.cli.params import describe_choice

    params = _params_from_args(args, base)
    print(f"post-processing: {describe_choice(origin, args.params, args.set)}", file=sys.stderr)
    return params


def _params_for_heads(args, sources: set[tuple[str | None, str | None]]) -> PostprocessParams:
    """Parameters for decoding saved heads: ``--model``'s own when given, else those of the model the heads
    name (``predict --heads`` stores them), else the paper's values; then ``--params`` and ``--set``."""
    from deepmark.core.domain.structures import PostprocessParams
    from deepmark.core.formats.model_file import read_model_info

    if getattr(args, "model", None):
        return _params_for_model(args, read_model_info(args.model), Path(args.model).name)
    if len(sources) == 1:
        model, stored = next(iter(sources))
        if stored is not None:
            base = PostprocessParams.from_mapping(json.loads(stored), PostprocessParams.all_techniques(),
                                                  source=f"the parameters stored with the heads of {model}")
            return _chosen_params(args, base, f"{model}'s own tuned parameters (stored with the heads)")
    why = "the heads come from several models" if len(sources) > 1 else "the heads name no model parameters"
    return _chosen_params(args, PostprocessParams.all_techniques(),
                          f"the paper's values, all four techniques + NMS ({why}; --model M uses M's)")


def _load_heads_folder(folder: str, grouping_name: str | None):
    """All ``*.npz`` raw-heads files of a folder → ({image_id: RawHeads}, grouping name, errors, {(model name,
    its stored parameters as sorted JSON)} of the files)."""
    from deepmark.core.formats.heads_file import load_heads

    paths = sorted(Path(folder).glob("*.npz")) if Path(folder).is_dir() else [Path(folder)]
    heads, errors, groupings, sources = {}, [], set(), set()
    for path in paths:
        try:
            saved = load_heads(path)
        except DeepMarkError as exc:
            errors.append(str(exc))
            continue
        image_id = saved.image_id if saved.image_id >= 0 else _stem_id(path)
        if image_id is None:
            errors.append(f"{path}: no image id stored and the file name is not a number")
            continue
        heads[image_id] = saved.heads
        groupings.add(saved.grouping)
        sources.add((saved.model, None if saved.model_params is None else json.dumps(saved.model_params,
                                                                                     sort_keys=True)))
    if len(groupings) > 1 and grouping_name is None:
        raise DeepMarkError(f"{folder}: heads of several groupings {sorted(groupings)}; pick one with --grouping",
                            path=folder)
    return heads, grouping_name or (groupings.pop() if groupings else "semantic62"), errors, sources


def _stem_id(path: Path) -> int | None:
    try:
        return int(path.stem)
    except ValueError:
        return None


def cmd_eval(args) -> int:
    from deepmark.core.evaluation.evaluate import evaluate_detections
    from deepmark.core.formats.df2 import read_df2_annotations, read_predictions

    _output_file(args.json)
    gt, gt_errors = read_df2_annotations(args.annotations)
    preds, pred_errors = read_predictions(args.predictions)
    _report([*gt_errors, *pred_errors])
    if not gt:
        print(f"error: {args.annotations}: no readable annotation", file=sys.stderr)
        return EXIT_FAILED
    unknown = sorted(set(preds) - set(gt))
    if unknown:
        print(f"warning: predictions for {len(unknown)} image(s) without annotations ignored "
              f"(first: {unknown[:5]})", file=sys.stderr)
    result = evaluate_detections(gt, {i: preds.get(i, []) for i in gt})
    print(result.table())
    if args.json:
        with writing_to(args.json):
            write_text_atomically(args.json, json.dumps(result.to_dict(), indent=1))
    return EXIT_PARTIAL if gt_errors or pred_errors else EXIT_OK


def cmd_decode(args) -> int:
    from deepmark.core.centernet.decode import decode_detections
    from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
    from deepmark.core.formats.df2 import write_results_json

    _params_from_args(args)  # bad options fail before any file is read
    _output_file(args.out)
    heads, grouping_name, errors, sources = _load_heads_folder(args.heads, args.grouping)
    params = _params_for_heads(args, sources)
    taxonomy = load_taxonomy()
    grouping = load_grouping(grouping_name, taxonomy)
    detections = {}
    for image_id, h in sorted(heads.items()):
        try:
            detections[image_id] = decode_detections(h, params, taxonomy, grouping)
        except DeepMarkError as exc:
            errors.append(f"image {image_id}: {exc}")
    _report(errors)
    with writing_to(args.out):
        write_results_json(args.out, detections)
    count = sum(len(d) for d in detections.values())
    print(f"{count} detections on {len(detections)} images → {args.out}")
    return EXIT_PARTIAL if errors else (EXIT_OK if detections else EXIT_FAILED)


def cmd_tune(args) -> int:
    from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
    from deepmark.core.evaluation.tune import DEFAULT_VALUES, grid_search
    from deepmark.core.formats.df2 import read_df2_annotations

    _params_from_args(args)  # bad options fail before any file is read
    values = [DEFAULT_VALUES if args.values is None else _grid_values(args.values)] * len(args.param)
    for out in [*(args.out or []), args.best_params]:
        _output_file(out)
    gt, gt_errors = read_df2_annotations(args.annotations)
    heads, grouping_name, head_errors, sources = _load_heads_folder(args.heads, args.grouping)
    base = _params_for_heads(args, sources)  # the parameters not searched
    _report([*gt_errors, *head_errors])
    taxonomy = load_taxonomy()
    grouping = load_grouping(grouping_name, taxonomy)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\r{done}/{total} grid points, {time.perf_counter() - started:.1f} s", end="", file=sys.stderr)

    result = grid_search(heads, gt, args.param, taxonomy, grouping, base=base, values=values,
                         metric=args.metric, progress=progress, workers=args.workers)
    if not args.quiet:
        print(file=sys.stderr)
    print(f"{result.num_images} images, {result.map_pt.size} grid points, {time.perf_counter() - started:.1f} s")
    print("best " + ", ".join(f"{k} = {v:g}" for k, v in result.best_values().items())
          + f": mAP_pt {result.best_result.map_pt:.4f}, mAP_box {result.best_result.map_box:.4f}")
    for out in args.out or []:
        with writing_to(out):
            result.save(out)
        print(f"wrote {out}")
    if args.best_params:
        with writing_to(args.best_params):
            write_text_atomically(args.best_params, json.dumps(asdict(result.best), indent=1))
        print(f"wrote {args.best_params}")
    return EXIT_PARTIAL if gt_errors or head_errors else EXIT_OK


def _grid_values(text: str) -> list[float]:
    """``--values 0,0.5,1`` → [0.0, 0.5, 1.0]; DeepMarkError naming the value that is not a number."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise DeepMarkError(f"--values {text!r}: expected comma-separated numbers ({exc})") from None


def _split(ids: list[int], tune_fraction: float) -> tuple[list[int], list[int]]:
    """Every k-th image to the tuning split (deterministic, spread over the set), the rest to test."""
    if len(ids) < 2:
        raise DeepMarkError("need at least 2 labelled images with heads (one to tune on, one to test)")
    n_tune = min(len(ids) - 1, max(1, round(len(ids) * tune_fraction)))
    step = len(ids) / n_tune
    tune = sorted({ids[int(k * step)] for k in range(n_tune)})
    return tune, [i for i in ids if i not in set(tune)]


def _run_ablation(gt, heads, grouping_name: str, args) -> None:
    from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
    from deepmark.core.evaluation.ablation import (
        ablation_table,
        describe_params,
        format_ablation,
        technique_settings,
        tune_all_techniques,
    )

    _output_file(getattr(args, "best_params", None))
    taxonomy = load_taxonomy()
    grouping = load_grouping(grouping_name, taxonomy)
    tune_ids, test_ids = _split(sorted(set(gt) & set(heads)), args.tune_fraction)
    values = [round(v, 4) for v in np.arange(0.0, 1.0 + 1e-9, args.step)]
    started = time.perf_counter()
    tuned = tune_all_techniques({i: heads[i] for i in tune_ids}, gt, taxonomy, grouping, values=values,
                                workers=args.workers, progress=lambda msg: print(msg, file=sys.stderr))
    print(f"tuned on {len(tune_ids)} images in {time.perf_counter() - started:.1f} s: {describe_params(tuned)}",
          flush=True)
    rows = ablation_table({i: heads[i] for i in test_ids}, gt, technique_settings(tuned), taxonomy, grouping)
    print(f"evaluated on {len(test_ids)} held-out images:\n")
    print(format_ablation(rows))
    if getattr(args, "best_params", None):
        with writing_to(args.best_params):
            write_text_atomically(args.best_params, json.dumps(asdict(tuned), indent=1))
        print(f"\nwrote the tuned parameters (all four techniques + NMS) to {args.best_params}", file=sys.stderr)


def cmd_model_params(args) -> int:
    from deepmark.core.formats.model_file import read_model_info, set_recommended_params
    from deepmark.core.store.presets import model_default_params, model_params_origin

    storing = args.params or args.set or args.training_data is not None
    if not storing and not args.export:
        raise DeepMarkError("model-params: nothing to do; give --params/--set (store), --training-data, or "
                            "--export FILE (write the model's parameters)")
    if storing:
        if args.export:
            _output_file(args.export)
        params = _params_from_args(args) if (args.params or args.set) else None
        set_recommended_params(args.model, None if params is None else asdict(params), args.training_data)
        if params is not None:
            listed = ", ".join(f"{k}={v}" for k, v in asdict(params).items())
            print(f"{args.model}: recommended post-processing stored ({listed})")
        if args.training_data is not None:
            print(f"{args.model}: trained on: {args.training_data}")
    if args.export:
        info = read_model_info(args.model)
        with writing_to(_output_folder(Path(args.export).expanduser().parent)):
            write_text_atomically(args.export, json.dumps(asdict(model_default_params(info)), indent=1))
        print(f"wrote {args.export}: {model_params_origin(info, Path(args.model).name)}")
    return EXIT_OK


def cmd_ablation(args) -> int:
    from deepmark.core.formats.df2 import read_df2_annotations

    if args.table == 3:
        return _table3(args)
    if args.model or args.refiner:
        raise DeepMarkError("ablation: --model and --refiner belong to --table 3 (Table 1 reads saved heads)")
    gt, gt_errors = read_df2_annotations(args.annotations)
    heads, grouping_name, head_errors, _ = _load_heads_folder(args.source, args.grouping)
    _report([*gt_errors, *head_errors])
    _run_ablation(gt, heads, grouping_name, args)
    return EXIT_PARTIAL if gt_errors or head_errors else EXIT_OK


def _table3(args) -> int:
    from deepmark.core.domain.taxonomy import load_taxonomy
    from deepmark.core.evaluation.ablation import describe_params
    from deepmark.core.experiments.table3 import format_table3, paper_table3
    from deepmark.core.formats.df2 import read_df2_annotations
    from deepmark.core.imaging.read import collect_images
    from deepmark.core.inference.detector import Detector

    _output_file(getattr(args, "best_params", None))
    gt, gt_errors = read_df2_annotations(args.annotations)
    root = Path(args.source)
    paths = collect_images([root / "image" if (root / "image").is_dir() else root])
    images = {int(p.stem): p for p in paths if p.stem.isdigit() and int(p.stem) in gt}
    detector = Detector(args.model)
    refiner = _load_refiner(args.refiner, detector)
    taxonomy = load_taxonomy()
    tune_ids, test_ids = _split(sorted(images), args.tune_fraction)
    values = [round(v, 4) for v in np.arange(0.0, 1.0 + 1e-9, args.step)]
    table = paper_table3(detector, images, gt, tune_ids, test_ids, taxonomy, detector.grouping, refiner,
                         values=values, workers=args.workers, progress=lambda msg: print(msg, file=sys.stderr))
    _report(gt_errors)
    for line in table.skipped:
        print(f"error: {line}", file=sys.stderr)
    print(f"{detector.path.name}: tuned on {table.tune_images} images ({describe_params(table.params)}), "
          f"measured on {table.test_images} held-out images"
          + ("" if refiner else "; no --refiner given, so no refinement row") + ":\n")
    print(format_table3(table))
    if getattr(args, "best_params", None):
        with writing_to(args.best_params):
            write_text_atomically(args.best_params, json.dumps(asdict(table.params), indent=1))
    return EXIT_PARTIAL if gt_errors or table.skipped else EXIT_OK


def cmd_simulate(args) -> int:
    from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
    from deepmark.core.synthetic.simulate import write_simulated_dataset

    taxonomy = load_taxonomy()
    grouping = load_grouping(args.grouping or "semantic62", taxonomy)
    with writing_to(_output_folder(args.out)):
        write_simulated_dataset(args.out, args.n, taxonomy, grouping, seed=args.seed,
                                image_size=(args.size, args.size), noise=args.noise,
                                regression_noise=args.regression_noise)
    print(f"{args.n} labelled images: {Path(args.out) / 'annos'} (DeepFashion2 JSON), "
          f"{Path(args.out) / 'heads'} (raw heads, grouping {grouping.name})")
    return EXIT_OK


def cmd_demo(args) -> int:
    from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
    from deepmark.core.synthetic.simulate import write_simulated_dataset

    taxonomy = load_taxonomy()
    grouping = load_grouping("semantic62", taxonomy)
    out = _output_folder(args.out)
    print(f"Simulating {args.images} labelled images with CenterNet-like heads in {out} ...", flush=True)
    with writing_to(out):
        gt, heads = write_simulated_dataset(out, args.images, taxonomy, grouping, seed=args.seed)
    _run_ablation(gt, heads, grouping.name, args)
    print(f"\nTry: deepmark tune {out / 'annos'} {out / 'heads'} --param sigma_center --param sigma_keypoint")
    return EXIT_OK


def cmd_synth(args) -> int:
    from deepmark.core.synthetic import SynthConfig, generate_dataset

    config = SynthConfig(image_size=(args.width, args.height))
    _output_folder(args.out)
    bar = _bar(args.n, "images", args.quiet)
    with writing_to(args.out):
        generate_dataset(args.out, args.n, seed=args.seed, config=config, workers=args.workers,
                         progress=lambda done, total: bar.update(done - bar.n))
    bar.close()
    print(f"{args.n} images in {Path(args.out) / 'image'}, annotations in {Path(args.out) / 'annos'}")
    return EXIT_OK


def cmd_train(args) -> int:
    from deepmark.core.training.config import load_config
    from deepmark.core.training.train import train

    config = load_config(args.config)
    state = train(config, resume=not args.restart, progress=not args.quiet)
    print(f"finished {state.epoch} epochs ({state.global_step} steps) in {config.output.run_dir}; "
          f"best validation mAP_pt {state.best_map_pt:.4f}")
    return EXIT_OK


def cmd_export(args) -> int:
    from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
    from deepmark.core.formats.model_file import model_info
    from deepmark.core.inference.detector import Detector
    from deepmark.core.network.checkpoint import checkpoint_model, load_checkpoint
    from deepmark.core.training.export import export_onnx, quantize_int8, training_summary

    _output_file(args.out)
    _output_file(args.int8)
    checkpoint = load_checkpoint(args.checkpoint)
    taxonomy = load_taxonomy()
    grouping = load_grouping(checkpoint["grouping"], taxonomy)
    model = checkpoint_model(checkpoint, grouping, taxonomy)
    input_size = tuple(args.input_size) if args.input_size else tuple(checkpoint["input_size"])
    info = model_info(checkpoint["arch"], grouping, taxonomy, input_size, training_summary(checkpoint))
    with writing_to(args.out):
        export_onnx(model.eval(), info, args.out)
    print(f"wrote {args.out}")
    if args.int8:
        if not args.calibration:
            raise DeepMarkError("--int8 needs --calibration FOLDER (DeepFashion2-layout training images)")
        inputs = _calibration_inputs(args.calibration, Detector(args.out), args.calibration_images)
        with writing_to(args.int8):
            quantize_int8(args.out, args.int8, inputs)
        print(f"wrote {args.int8} (static int8, {args.calibration_images} calibration images)")
    return EXIT_OK


def _calibration_inputs(folder: str, detector, count: int):
    """Pre-processed inputs of the first ``count`` readable images of a DF2 folder (or image folder)."""
    from deepmark.core.imaging.preprocess import preprocess
    from deepmark.core.imaging.read import collect_images, read_image

    root = Path(folder)
    images = collect_images([root / "image" if (root / "image").is_dir() else root])
    done = 0
    for path in images:
        if done >= count:
            return
        try:
            picture, _ = preprocess(read_image(path), detector.input_size)
        except DeepMarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            continue
        done += 1
        yield detector.network_input([picture])[0]  # the model's own colour order and normalisation


def cmd_predict(args) -> int:
    from deepmark.core.imaging.read import collect_images
    from deepmark.core.inference.detector import PAPER_SCALES, Detector, TestTimeAugmentation
    from deepmark.core.inference.predict import predict_images

    params = _params_from_args(args)  # bad arguments fail before the model is loaded
    if args.input_size and any(v <= 0 for v in args.input_size):
        raise DeepMarkError(f"--input-size {args.input_size}: both must be positive")
    _output_folder(args.out)
    detector = Detector(args.model)
    multiple = detector.info.input_multiple  # 32, or 128 for an hourglass
    if args.input_size and any(v % multiple for v in args.input_size):
        width, height = args.input_size
        raise DeepMarkError(f"--input-size {width}×{height}: {detector.path.name} takes multiples of {multiple}")
    refiner = _load_refiner(args.refine, detector)
    params = _params_for_model(args, detector.info, detector.path.name)
    images = collect_images(args.inputs)
    if not images:
        print("error: no image found in " + ", ".join(args.inputs), file=sys.stderr)
        return EXIT_FAILED
    tta = TestTimeAugmentation(flip=args.flip, scales=PAPER_SCALES if args.multiscale else (1.0,))
    bar = _bar(len(images), "images", args.quiet)
    with writing_to(args.out, "; the files written before it are complete"):
        summary = predict_images(images, args.out, detector, params, tta, args.heads, input_size=args.input_size,
                                 progress=lambda done, total: bar.update(done - bar.n),
                                 refine=refiner.refine if refiner else None)
    bar.close()
    _report(summary.failed)
    print(f"{summary.detections} detections on {len(summary.written)} images → {args.out}"
          + (f"; {len(summary.failed)} failed" if summary.failed else ""))
    if not summary.written:
        return EXIT_FAILED
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def cmd_train_refiner(args) -> int:
    from deepmark.core.refinement.config import load_refiner_config
    from deepmark.core.refinement.train import train_refiner

    config = load_refiner_config(args.config)
    state = train_refiner(config, resume=not args.restart, progress=not args.quiet)
    print(f"finished {state.epoch} epochs ({state.global_step} steps) in {config.output.run_dir}; best validation "
          f"mAP_pt gain {state.best_gain:+.4f} over {state.base_map_pt:.4f}")
    return EXIT_OK


def cmd_export_refiner(args) -> int:
    from deepmark.core.refinement.export import calibration_batches, export_refiner, quantize_refiner

    _output_file(args.out)
    _output_file(args.int8)
    if args.int8 and not args.calibration:
        raise DeepMarkError("--int8 needs --calibration FOLDER (DeepFashion2-layout training images)")
    with writing_to(args.out):
        export_refiner(args.checkpoint, args.out, args.use_confidence)
    print(f"wrote {args.out}")
    if args.int8:
        with writing_to(args.int8):
            quantize_refiner(args.out, args.int8, calibration_batches(args.out, args.calibration,
                                                                      args.calibration_images))
        print(f"wrote {args.int8} (static int8, garments of {args.calibration_images} calibration images)")
    return EXIT_OK


def _load_refiner(path: str | None, detector):
    """The ``--refine`` / ``--refiner`` refiner (None without the option); says on stderr when it was trained
    behind another detector file than ``detector``'s."""
    if not path:
        return None
    from deepmark.core.refinement.runner import Refiner, other_detector

    refiner = Refiner(path)
    mismatch = other_detector(refiner.info, detector.path)
    if mismatch:
        print(f"warning: {path} was {mismatch}", file=sys.stderr)
    return refiner


def _bar(total: int, unit: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=quiet, dynamic_ncols=True)


def _add_ablation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tune-fraction", type=float, default=0.5, help="share of images used for tuning")
    parser.add_argument("--step", type=float, default=0.1, help="grid step in [0, 1] (the paper uses 0.05)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the grid search")


def _add_params_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", help="JSON file of PostprocessParams fields (e.g. a tune --best-params file); "
                                         "they override the model's own parameters, the default")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="override one parameter, e.g. --set center_rescoring=true --set alpha=0.8")
    parser.add_argument("--grouping", help="keypoint grouping of the heads (default: stored in the files)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepmark", description="DeepMark Studio command line")
    parser.add_argument("--version", action="version", version=f"deepmark {__version__}")
    parser.add_argument("--debug", action="store_true", help="on failure, show the Python traceback too")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("eval", help="DeepFashion2 metrics of predictions against an annotation folder")
    p.add_argument("annotations", help="DF2 annotation folder (annos/*.json or its parent)")
    p.add_argument("predictions", help="official results JSON, or a folder of per-image prediction JSON")
    p.add_argument("--json", help="also write the metrics as JSON here")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("decode", help="decode saved raw heads (*.npz) into a DF2 results JSON")
    p.add_argument("heads", help="folder of raw-heads .npz files (or one file)")
    p.add_argument("--out", required=True, help="results JSON to write")
    p.add_argument("--model", help="use this model's own parameters (default: those stored with the heads)")
    _add_params_options(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("tune", help="grid search post-processing parameters on saved raw heads")
    p.add_argument("annotations", help="DF2 annotation folder of the labelled images")
    p.add_argument("heads", help="folder of raw-heads .npz files of the same images")
    p.add_argument("--param", action="append", required=True,
                   choices=["alpha", "sigma_center", "sigma_keypoint", "gamma"],
                   help="parameter to tune; give it twice for a 2-D grid")
    p.add_argument("--values", help="comma-separated grid values (default 0, 0.05, …, 1)")
    p.add_argument("--metric", default="map_pt", choices=["map_pt", "map_box"])
    p.add_argument("--out", action="append", help="write the table: .csv (table) or .json (everything)")
    p.add_argument("--best-params", help="write the best PostprocessParams as JSON here")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes evaluating grid rows in parallel (default: one per CPU)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--model", help="fixed parameters from this model's own (default: those stored with the heads)")
    _add_params_options(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("ablation", help="DeepMark++ Table 1 (each technique alone and combined) or Table 3 "
                                        "(--table 3: each technique added to the previous), tuned on a split")
    p.add_argument("annotations", help="DF2 annotation folder of the labelled images")
    p.add_argument("source", metavar="HEADS|IMAGES", help="Table 1: folder of raw-heads .npz files of the same "
                                                          "images; Table 3: their image folder (image/ or its parent)")
    p.add_argument("--table", type=int, choices=(1, 3), default=1, help="the paper's table to reproduce (default 1)")
    p.add_argument("--model", help="Table 3: the detector (default: the bundled model)")
    p.add_argument("--refiner", help="Table 3: a landmark refinement model for the last row")
    p.add_argument("--grouping", help="keypoint grouping of the heads (default: stored in the files)")
    p.add_argument("--best-params", help="write the tuned parameters (all four techniques + NMS) as JSON here")
    _add_ablation_options(p)
    p.set_defaults(func=cmd_ablation)

    p = sub.add_parser("model-params", help="store a model's recommended post-processing parameters, or export them")
    p.add_argument("model", help="a DeepMark ONNX model (rewritten in place, weights untouched)")
    p.add_argument("--params", help="JSON file of PostprocessParams fields (e.g. an ablation --best-params file)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override one parameter")
    p.add_argument("--training-data", help="what images the model learned from, in words (e.g. 'synthetic "
                                           "garments'): the app warns when a synthetic-only model meets photographs")
    p.add_argument("--export", metavar="FILE.json", help="write the parameters the model uses (its own, else the "
                                                         "paper's values) to a file for --params")
    p.set_defaults(func=cmd_model_params)

    p = sub.add_parser("simulate", help="labelled scenes + simulated network heads, for trying the tools")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--out", required=True, help="folder to write annos/ and heads/ into")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (multiple of 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.05, help="heatmap background noise")
    p.add_argument("--regression-noise", type=float, default=1.5, help="regression noise, map pixels")
    p.add_argument("--grouping", help="keypoint grouping (default semantic62)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="simulate a labelled set, tune the post-processing, print the ablation")
    p.add_argument("--images", type=int, default=60)
    p.add_argument("--out", default="deepmark-demo", help="folder for the simulated set")
    p.add_argument("--seed", type=int, default=0)
    _add_ablation_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("synth", help="synthetic DeepFashion2-format garments: image/ + annos/")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=320)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes rendering images")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train or resume a detector from a TOML run configuration")
    p.add_argument("config", help="run configuration (see core/training/config.py)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in the run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export-onnx", help="export a training checkpoint as a self-describing ONNX model")
    p.add_argument("checkpoint", help="a .pt checkpoint written by deepmark train")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), help="default input size")
    p.add_argument("--int8", help="also write a static int8 (QDQ) model here")
    p.add_argument("--calibration", help="folder of training images for the int8 calibration")
    p.add_argument("--calibration-images", type=int, default=100)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="DeepFashion2-format predictions for images or folders")
    p.add_argument("inputs", nargs="+", help="image files and/or folders")
    p.add_argument("--out", required=True, help="folder for <image>.json (and heads/<image>.npz)")
    p.add_argument("--model", help="ONNX model or .pt checkpoint (default: the bundled model)")
    p.add_argument("--heads", action="store_true", help="also save raw heads (for tune / the app's cache)")
    p.add_argument("--flip", action="store_true", help="flip test")
    p.add_argument("--multiscale", action="store_true", help="scales 0.85, 0.95, 1.1 (DeepMark++)")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), help="network input (default: the model's)")
    p.add_argument("--refine", metavar="REFINER.onnx", help="refine the decoded landmarks with this refiner "
                                                            "(deepmark export-refiner; default off)")
    p.add_argument("--quiet", action="store_true")
    _add_params_options(p)
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("train-refiner", help="train or resume a landmark refiner (PoseFix-style) from a TOML file")
    p.add_argument("config", help="refiner run configuration (see core/refinement/config.py)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in the run folder")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_train_refiner)

    p = sub.add_parser("export-refiner", help="export a refiner checkpoint as a self-describing ONNX model")
    p.add_argument("checkpoint", help="a .pt checkpoint written by deepmark train-refiner")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--int8", help="also write a static int8 (QDQ) refiner here")
    p.add_argument("--calibration", help="folder of training images (DF2 layout) for the int8 calibration")
    p.add_argument("--calibration-images", type=int, default=50)
    p.add_argument("--use-confidence", action="store_true",
                   help="the refined landmarks' score column is the refiner's confidence (default: the detector's)")
    p.set_defaults(func=cmd_export_refiner)
    add_store_commands(sub)  # project, import, export, status
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (``EXIT_OK``, ``EXIT_PARTIAL``, ``EXIT_FAILED``, 130 when interrupted).
    Every failure is one ``error:`` line on stderr; ``--debug`` lets the exception through with its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as command-line tools do.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed pipe until exit
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: {_failure_line(exc)}", file=sys.stderr)
        return EXIT_FAILED


def _failure_line(exc: Exception) -> str:
    """One line for a command that failed: the message of a DeepMarkError (it names its file), the file and
    reason of an OS error (disk full, read-only or missing folder), else the exception, marked as a bug."""
    from deepmark.core.util.atomic import os_error_text

    if isinstance(exc, DeepMarkError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename}: {os_error_text(exc)}" if exc.filename else os_error_text(exc)
    return (f"unexpected {type(exc).__name__}: {exc} — a bug in deepmark; run again with --debug for the "
            "traceback and report it")


if __name__ == "__main__":
    sys.exit(main())
