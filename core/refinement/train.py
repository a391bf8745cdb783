"""Training the refiner: ``deepmark train-refiner CONFIG`` (``deepmark.core.refinement.config``).

1. The detector (``data.detector``, its own stored post-processing, flip / multi-scale as configured) runs
   once over the training and validation images; its detections are kept in the run folder
   (``detections-train.json``, ``detections-val.json``: official results format) and reused on resume.
2. Training detections are matched to the labels (``samples``); their error statistics (``errors.measure``)
   go to ``error-stats.json`` and into the exported model.
3. Adam with a step schedule; loss = L1 of the soft-argmax coordinates (in output-map pixels) on the
   category's labelled landmarks + ``confidence_weight`` × BCE of the confidence against the landmark's
   OKS (exp(−d²/2s²k²), the quantity DeepFashion2's mAP_pt scores).
4. Checkpoints: ``last.pt`` every ``checkpoint_minutes`` and at each epoch end (a resumed run goes on at
   the next batch, same data order); validation at each epoch end: mAP_pt of the validation detections
   refined (at each blend of ``BLENDS``: blend · refined + (1 − blend) · detected) vs. as detected;
   ``best.pt`` = the largest gain, its blend exported with it. ``log.jsonl``: one line per epoch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from deepmark.core.domain.structures import (
    NORMALIZE_MEAN,
    NORMALIZE_STD,
    OUTPUT_STRIDE,
    Detection,
    PostprocessParams,
)
from deepmark.core.domain.taxonomy import Grouping, Taxonomy, load_taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator
from deepmark.core.formats.df2 import read_df2_annotations, read_predictions, write_results_json
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import PAPER_SCALES, Detector, TestTimeAugmentation
from deepmark.core.network.checkpoint import save_checkpoint
from deepmark.core.refinement.config import RefinerConfig
from deepmark.core.refinement.dataset import RefinerDataset, collate
from deepmark.core.refinement.errors import measure
from deepmark.core.refinement.inputs import Normalisation, blended, garment_batch, refined_detections
from deepmark.core.refinement.network import RefinerNet, build_refiner
from deepmark.core.refinement.samples import collect_detections, ground_truth_samples, match_samples
from deepmark.core.store.predictions import file_sha256
from deepmark.core.store.presets import model_default_params
from deepmark.core.training.dataset import _image_index
from deepmark.core.training.train import select_device
from deepmark.core.util.atomic import append_text_atomically, write_text_atomically

log = logging.getLogger("deepmark.train_refiner")
CHECKPOINT_KIND = "deepmark-refiner"
CHECKPOINT_VERSION = 1
BLENDS = (0.25, 0.5, 0.75, 1.0)  # refined-landmark weights tried at validation; the best is exported
DEFAULT_NORMALISATION = Normalisation(tuple(NORMALIZE_MEAN), tuple(NORMALIZE_STD))


class RefinerTrainingError(DeepMarkError):
    """Refiner training cannot go on (no usable data, a checkpoint of another setup, a non-finite loss)."""


@dataclass
class RefinerState:
    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    best_gain: float = -1.0
    base_map_pt: float = 0.0
    best_blend: float = 1.0


@dataclass
class DetectorRun:
    """What the refiner was trained behind: the detector file, its sha256, the TTA and parameters used."""

    name: str
    sha256: str
    flip: bool
    scales: tuple[float, ...]
    params: dict


def _folder_ids(folder: str, split: str) -> tuple[dict, dict[int, Path]]:
    """(ground truth, image files) of a DF2 folder, restricted to ``split`` ("tune": every 2nd labelled
    image, as ``deepmark ablation`` tunes on)."""
    gt, errors = read_df2_annotations(folder)
    for error in errors:
        log.warning("%s", error)
    images = _image_index(Path(folder) / "image")
    ids = sorted(set(gt) & set(images))
    if split == "tune":
        ids = ids[::2]
    return {i: gt[i] for i in ids}, {i: images[i] for i in ids}


def _spread(images: dict[int, Path], count: int) -> dict[int, Path]:
    """``count`` of ``images`` spread evenly over their ids (all when ``count`` is 0 or not smaller)."""
    ids = sorted(images)
    if count == 0 or count >= len(ids):
        return images
    return {ids[int(k * len(ids) / count)]: images[ids[int(k * len(ids) / count)]] for k in range(count)}


def _detections(run_dir: Path, name: str, detector: Detector, images: dict[int, Path], run: DetectorRun,
                progress: bool) -> dict[int, list[Detection]]:
    """The detector's detections on ``images``: read from ``run_dir/detections-<name>.json`` when made before
    by the same detector, else computed and written there."""
    path, stamp = run_dir / f"detections-{name}.json", run_dir / f"detections-{name}.detector.json"
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == asdict(run) | {"scales": list(run.scales)}:
        found, _ = read_predictions(path)
        return {i: found.get(i, []) for i in images}
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        if progress:
            print(f"\rdetector on {name}: {done}/{total} images, {time.monotonic() - started:.0f} s", end="",
                  flush=True)

    params = PostprocessParams(**run.params)
    found = collect_detections(detector, images, params, TestTimeAugmentation(run.flip, run.scales), read_image,
                               progress=report)
    if progress:
        print()
    write_results_json(path, found)
    write_text_atomically(stamp, json.dumps(asdict(run) | {"scales": list(run.scales)}))
    return found


def checkpoint_payload(model: RefinerNet, optimizer, scheduler, state: RefinerState, config: RefinerConfig,
                       grouping: Grouping, stats: dict, run: DetectorRun) -> dict:
    return {"kind": CHECKPOINT_KIND, "version": CHECKPOINT_VERSION, "model": model.state_dict(),
            "net": model.config, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "state": asdict(state), "config": config.to_dict(), "grouping": grouping.name,
            "crop_size": list(config.data.crop_size), "error_stats": stats, "detector": asdict(run)}


def load_refiner_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by ``train_refiner``; ModelFileError (CheckpointError) naming the file otherwise."""
    from deepmark.core.network.checkpoint import CheckpointError, read_checkpoint_file

    payload = read_checkpoint_file(path)
    if not isinstance(payload, dict) or payload.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"{path}: not a refiner checkpoint (written by deepmark train-refiner)", path=path)
    return payload


def refine_with(model: RefinerNet, image: np.ndarray, detections: list[Detection], grouping: Grouping,
                taxonomy: Taxonomy, crop_size: tuple[int, int], device: torch.device) -> list[Detection]:
    """``detections`` of one image refined by the torch ``model`` (validation; inference uses ONNX)."""
    if not detections:
        return []
    batch = garment_batch(image, detections, grouping, taxonomy, crop_size, DEFAULT_NORMALISATION)
    with torch.no_grad():
        coords, conf = model(torch.from_numpy(batch.image).to(device), torch.from_numpy(batch.pose).to(device))
    return refined_detections(detections, batch, coords.cpu().numpy(), conf.cpu().numpy(), use_confidence=False)


def validate(model: RefinerNet, evaluator: DeepFashion2Evaluator, detections: dict[int, list[Detection]],
             images: dict[int, Path], grouping: Grouping, taxonomy: Taxonomy, crop_size: tuple[int, int],
             device: torch.device) -> dict[float, float]:
    """Blend (``BLENDS``) → mAP_pt of the validation detections after refinement at that blend."""
    model.eval()
    refined = {i: refine_with(model, read_image(images[i]), dets, grouping, taxonomy, crop_size, device)
               for i, dets in detections.items()}
    model.train()
    return {b: evaluator.evaluate({i: blended(detections[i], r, b) for i, r in refined.items()}).map_pt
            for b in BLENDS}


def refiner_loss(coords: torch.Tensor, confidence: torch.Tensor, batch: dict[str, torch.Tensor],
                 confidence_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 of ``coords`` (B, G, 2) crop pixels against ``batch['target']`` in output-map pixels (÷ stride) over
    the labelled landmarks, + ``confidence_weight`` × BCE of ``confidence`` (B, G) against each landmark's OKS."""
    weight = batch["weight"]
    count = weight.sum().clamp(min=1.0)
    error = (coords - batch["target"]).abs().sum(-1) / OUTPUT_STRIDE
    l1 = (error * weight).sum() / count
    distance2 = ((coords.detach() - batch["target"]) ** 2).sum(-1)
    oks = torch.exp(-distance2 / (2 * batch["oks_scale"].clamp(min=1e-3) ** 2))
    conf = confidence.clamp(1e-4, 1 - 1e-4)
    bce = -(oks * torch.log(conf) + (1 - oks) * torch.log(1 - conf))
    bce = (bce * weight).sum() / count
    return l1 + confidence_weight * bce, {"l1": float(l1.detach()), "confidence_bce": float(bce.detach())}


def train_refiner(config: RefinerConfig, resume: bool = True, progress: bool = True) -> RefinerState:
    """Run (or resume) refiner training as configured (see the module docstring); the final state."""
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    device = select_device(config.train.device)
    run_dir = Path(config.output.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    taxonomy = load_taxonomy()
    detector = Detector(config.data.detector, threads=config.train.threads or None)
    grouping = detector.grouping
    run = DetectorRun(Path(config.data.detector).name, file_sha256(config.data.detector), config.data.flip,
                      PAPER_SCALES if config.data.multiscale else (1.0,), asdict(model_default_params(detector.info)))
    torch.manual_seed(config.train.seed)

    train_gt, train_images = _folder_ids(config.data.train, "all")
    if not train_images:
        raise RefinerTrainingError(f"{config.data.train}: no labelled training image", path=config.data.train)
    detector_images = _spread(train_images, config.data.detector_images)
    train_dets = _detections(run_dir, "train", detector, detector_images, run, progress)
    lmax = max(c.num_landmarks for c in taxonomy.categories)
    detected = match_samples(train_dets, train_gt, lmax)
    stats = measure(detected, taxonomy)
    write_text_atomically(run_dir / "error-stats.json", json.dumps(stats))
    truth = ground_truth_samples(train_gt, lmax)
    crop_size = tuple(config.data.crop_size)
    dataset = RefinerDataset(detected, truth, stats, train_images, grouping, taxonomy, crop_size, config.recipe,
                             config.train.seed)
    if len(dataset) == 0:
        raise RefinerTrainingError(f"{config.data.train}: no training garment (the detector matched no label and "
                                   "[recipe] synthetic_share is 0)", path=config.data.train)
    log.info("%d detector samples, %d synthesised per epoch", len(detected), dataset.num_synthetic)

    val = None
    if config.data.val:
        val_gt, val_images = _folder_ids(config.data.val, config.data.val_split)
        if config.train.val_images:
            keep = sorted(val_images)[: config.train.val_images]
            val_gt, val_images = {i: val_gt[i] for i in keep}, {i: val_images[i] for i in keep}
        val_dets = _detections(run_dir, f"val-{config.data.val_split}", detector, val_images, run, progress)
        evaluator = DeepFashion2Evaluator(val_gt, taxonomy)
        val = (evaluator, val_dets, val_images, evaluator.evaluate(val_dets).map_pt)

    model = RefinerNet(grouping.num_groups, config.model.width_mult, config.model.up_channels,
                       config.model.head_conv).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    steps_sorted = sorted(config.train.lr_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: config.train.lr_factor ** sum(epoch >= s for s in steps_sorted))
    state = RefinerState(base_map_pt=val[3] if val else 0.0)
    last = run_dir / "last.pt"
    if resume and last.exists():
        payload = load_refiner_checkpoint(last)
        if payload["net"] != model.config or payload["crop_size"] != list(crop_size):
            raise RefinerTrainingError(f"{last}: checkpoint is {payload['net']} at crop {payload['crop_size']}, the "
                                       f"configuration asks {model.config} at {list(crop_size)}", path=last)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        state = RefinerState(**payload["state"])
        log.info("resumed from %s at epoch %d, batch %d", last, state.epoch, state.batch_in_epoch)
    write_text_atomically(run_dir / "config.json", json.dumps(config.to_dict(), indent=1))

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, checkpoint_payload(model, optimizer, scheduler, state, config, grouping, stats, run))

    last_checkpoint = time.monotonic()
    batch_size = config.train.batch_size
    model.train()
    while state.epoch < config.train.epochs:
        epoch = state.epoch
        dataset.set_epoch(epoch)
        order = np.random.default_rng([config.train.seed, epoch]).permutation(len(dataset)).tolist()
        steps = math.ceil(len(order) / batch_size)
        if config.train.max_steps_per_epoch:
            steps = min(steps, config.train.max_steps_per_epoch)
        order = order[state.batch_in_epoch * batch_size : steps * batch_size]
        loader = DataLoader(Subset(dataset, order), batch_size=batch_size, shuffle=False,
                            num_workers=config.train.workers, collate_fn=collate)
        sums: dict[str, float] = {}
        count, started = 0, time.monotonic()
        for batch in loader:
            tensors = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
            coords, conf = model(tensors["image"], tensors["pose"])
            loss, parts = refiner_loss(coords, conf, tensors, config.train.confidence_weight)
            if not torch.isfinite(loss):
                raise RefinerTrainingError(f"epoch {epoch}, step {state.global_step}: loss is {loss.item()}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state.batch_in_epoch += 1
            state.global_step += 1
            count += 1
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v
            if progress:
                print(f"\repoch {epoch + 1}/{config.train.epochs}: {state.batch_in_epoch}/{steps} batches, "
                      f"loss {sums['loss'] / count:.3f}, {time.monotonic() - started:.0f} s", end="", flush=True)
            if time.monotonic() - last_checkpoint > 60 * config.train.checkpoint_minutes:
                checkpoint(last)
                last_checkpoint = time.monotonic()
        if progress:
            print()
        scheduler.step()
        state.epoch += 1
        state.batch_in_epoch = 0
        record = {"epoch": epoch, "step": state.global_step, "lr": optimizer.param_groups[0]["lr"],
                  "seconds": round(time.monotonic() - started, 1), **{k: v / max(count, 1) for k, v in sums.items()}}
        if val is not None:
            by_blend = validate(model, val[0], val[1], val[2], grouping, taxonomy, crop_size, device)
            blend = max(by_blend, key=by_blend.get)
            gain = by_blend[blend] - state.base_map_pt
            record.update(val_map_pt=by_blend[1.0], val_base_map_pt=state.base_map_pt, val_gain=gain, val_blend=blend,
                          val_map_pt_by_blend={str(b): v for b, v in by_blend.items()})
            if gain > state.best_gain:
                state.best_gain, state.best_blend = gain, blend
                checkpoint(run_dir / "best.pt")
        checkpoint(last)
        last_checkpoint = time.monotonic()
        append_text_atomically(run_dir / "log.jsonl", json.dumps(record) + "\n")
        if progress:
            print(json.dumps(record), flush=True)
    return state


def refiner_from_checkpoint(payload: dict) -> RefinerNet:
    model = build_refiner(payload["net"])
    model.load_state_dict(payload["model"])
    return model.eval()


