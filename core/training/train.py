"""Training loop: ``deepmark train CONFIG`` (one TOML per run, see ``deepmark.core.training.config``).

Adam with a step schedule, CenterNet's losses, mixed precision on a CUDA device, a checkpoint at every
epoch end and every ``checkpoint_minutes`` (a resumed run continues mid-epoch at the next batch, with
the same data order), validation mAP with the core decoder + DeepFashion2 evaluator, a progress bar,
and a run folder holding ``config.toml``, ``log.jsonl`` (one line per epoch), ``train.log``,
``last.pt`` and ``best.pt``. Several GPUs or processes: launch with ``torchrun`` (DDP; the data is split
by DistributedSampler, rank 0 writes the run folder).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import Affine, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.errors import DeepMarkError, path_of
from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator, EvaluationResult
from deepmark.core.network import ExportWrapper, build_model
from deepmark.core.network.checkpoint import CHECKPOINT_VERSION, load_checkpoint, save_checkpoint
from deepmark.core.network.initial_weights import format_report, load_initial_weights
from deepmark.core.training.augment import AugmentConfig
from deepmark.core.training.config import RunConfig
from deepmark.core.training.dataset import DF2Dataset, collate
from deepmark.core.training.losses import stacked_loss
from deepmark.core.util.atomic import append_text_atomically, write_text_atomically

log = logging.getLogger("deepmark.train")
LOG_EVERY_STEPS = 25
# Validation keeps low-scored detections too: mAP integrates over the whole ranking.
VALIDATION_PARAMS = PostprocessParams(score_threshold=0.01, candidate_floor=0.01)


class TrainingError(DeepMarkError):
    """A training run cannot start or continue (bad data, incompatible checkpoint, ...)."""


@dataclass
class TrainState:
    """Where a run stands: the next epoch and the batch within it, and the best validation so far."""

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    best_map_pt: float = -1.0


# --------------------------------------------------------------------------------------------------
# Distributed set-up (torchrun sets WORLD_SIZE, RANK, LOCAL_RANK)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world


def select_device(wanted: str) -> torch.device:
    """The torch device for a configuration's ``device`` (auto | cpu | cuda; this process's GPU under
    torchrun); TrainingError when CUDA is asked for and absent."""
    if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainingError("device = 'cuda' but no CUDA device is available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


# --------------------------------------------------------------------------------------------------
# Data


class _SkipBadImages(Dataset):
    """Wraps a DF2Dataset: an unreadable image is logged and replaced by the next readable sample."""

    def __init__(self, dataset: DF2Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        for attempt in range(len(self.dataset)):
            try:
                return self.dataset[(index + attempt) % len(self.dataset)]
            except DeepMarkError as exc:
                log.warning("skipping sample: %s", exc)
        raise TrainingError("no readable training image")


def _to_tensors(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device, non_blocking=True) for k, v in batch.items()
            if isinstance(v, np.ndarray) and v.dtype != object}


def _augment_config(config: RunConfig) -> AugmentConfig:
    a = config.augment
    return AugmentConfig(scale_range=tuple(a.scale), shift=a.shift, flip_probability=a.flip,
                         brightness=a.color, contrast=a.color, saturation=a.color)


# --------------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_dict(model, optimizer, scheduler, state: TrainState, config: RunConfig, grouping_name: str) -> dict:
    """Everything needed to resume, and (``model``, ``arch``, ``grouping``, ``input_size``, ``input_multiple``)
    to infer."""
    module = model.module if hasattr(model, "module") else model
    return {
        "version": CHECKPOINT_VERSION,
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "state": state.__dict__.copy(),
        "config": config.to_dict(),
        "arch": config.model.arch,
        "head_conv": config.model.head_conv,
        "grouping": grouping_name,
        "input_size": list(config.data.input_size),
        "input_multiple": module.input_multiple,
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
    }


# --------------------------------------------------------------------------------------------------
# Validation


@torch.no_grad()
def validate(model, dataset: DF2Dataset, device: torch.device, taxonomy, grouping, limit: int = 0,
             batch_size: int = 8) -> EvaluationResult:
    """Decode the model's outputs on (up to ``limit``) validation images and evaluate them."""
    module = model.module if hasattr(model, "module") else model
    wrapper = ExportWrapper(module).eval()
    indices = list(range(len(dataset)))[: limit or None]
    detections, truth = {}, {}
    for start in range(0, len(indices), batch_size):
        samples = []
        for i in indices[start : start + batch_size]:
            try:
                samples.append((i, dataset[i]))
            except DeepMarkError as exc:
                log.warning("validation: %s", exc)
        if not samples:
            continue
        images = torch.from_numpy(np.stack([s["image"] for _, s in samples])).to(device)
        outputs = [o.float().cpu().numpy() for o in wrapper(images)]
        for k, (index, sample) in enumerate(samples):
            heads = RawHeads(*(out[k] for out in outputs), image_to_map=Affine(sample["image_to_map"]),
                             image_size=tuple(int(v) for v in sample["image_size"]))
            image_id = int(sample["image_id"])
            detections[image_id] = decode_detections(heads, VALIDATION_PARAMS, taxonomy, grouping)
            truth[image_id] = dataset.items(index)
    model.train()
    return DeepFashion2Evaluator(truth, taxonomy).evaluate(detections)


# --------------------------------------------------------------------------------------------------
# The run


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _setup_logging(run_dir: Path, rank: int) -> None:
    if rank != 0:
        return
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _say(text: str) -> None:
    """A message for the user before training starts: on stdout and in the run log (train.log)."""
    print(text, flush=True)
    for line in text.splitlines():
        log.info(line)


def _lr_lambda(config: RunConfig):
    steps = sorted(config.train.lr_steps)
    return lambda epoch: config.train.lr_factor ** sum(epoch >= s for s in steps)


def train(config: RunConfig, resume: bool = True, progress: bool = True) -> TrainState:
    """Run (or resume) training as configured; returns the final state."""
    rank, world = _distributed()
    device = select_device(config.train.device)
    run_dir = Path(config.output.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _setup_logging(run_dir, rank)
    taxonomy = load_taxonomy()
    grouping = load_grouping(config.data.grouping, taxonomy)
    _seed_everything(config.train.seed + rank)

    train_set = DF2Dataset(config.data.train, taxonomy, grouping, config.data.input_size,
                           augment=_augment_config(config), max_objects=config.data.max_objects,
                           seed=config.train.seed)
    for error in train_set.errors:
        log.warning("training data: %s", error)
    if len(train_set) == 0:
        raise TrainingError(f"{config.data.train}: no usable training image", path=config.data.train)
    val_set = None
    if config.data.val:
        val_set = DF2Dataset(config.data.val, taxonomy, grouping, config.data.input_size, augment=None,
                             max_objects=config.data.max_objects, seed=config.train.seed)

    try:
        model = build_model(config.model.arch, grouping, taxonomy.num_classes, head_conv=config.model.head_conv)
    except ValueError as exc:
        raise TrainingError(f"{config.source}: {exc}", path=path_of(config.source)) from None
    last = run_dir / "last.pt"
    resuming = resume and last.exists()
    if config.model.init and rank == 0 and resuming:
        _say(f"resuming from {last}: [model] init = {config.model.init} is ignored (the run continues from "
             "its own weights)")
    if config.model.init and not resuming:
        report = load_initial_weights(model, config.model.init)
        if rank == 0:
            _say(format_report(report))
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))
    state = TrainState()
    if resuming:
        payload = load_checkpoint(last)
        if payload["arch"] != config.model.arch or payload["grouping"] != grouping.name:
            raise TrainingError(f"{last}: checkpoint is {payload['arch']}/{payload['grouping']}, "
                                f"config asks {config.model.arch}/{grouping.name}", path=last)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        state = TrainState(**payload["state"])
        log.info("resumed from %s at epoch %d, batch %d", last, state.epoch, state.batch_in_epoch)
    if rank == 0:
        write_text_atomically(run_dir / "config.json", json.dumps(config.to_dict(), indent=1))
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    use_amp = config.train.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    dataset = _SkipBadImages(train_set)
    last_checkpoint = time.monotonic()

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, checkpoint_dict(model, optimizer, scheduler, state, config, grouping.name))

    model.train()
    while state.epoch < config.train.epochs:
        epoch = state.epoch
        train_set.set_epoch(epoch)
        # The epoch's order depends only on (seed, epoch), so a resumed run sees the same batches.
        if world > 1:
            sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                         seed=config.train.seed)
            sampler.set_epoch(epoch)
            order = list(iter(sampler))
        else:
            order = np.random.default_rng([config.train.seed, epoch]).permutation(len(dataset)).tolist()
        steps = math.ceil(len(order) / config.train.batch_size)
        if config.train.max_steps_per_epoch:
            steps = min(steps, config.train.max_steps_per_epoch)
        order = order[state.batch_in_epoch * config.train.batch_size : steps * config.train.batch_size]
        loader = DataLoader(torch.utils.data.Subset(dataset, order), batch_size=config.train.batch_size,
                            shuffle=False, num_workers=config.train.workers, collate_fn=collate,
                            persistent_workers=False)
        bar = _progress(loader, epoch, config, enabled=progress and rank == 0, initial=state.batch_in_epoch,
                        total=steps)
        sums: dict[str, float] = {}
        count = 0
        for batch in bar:
            tensors = _to_tensors(batch, device)
            with torch.autocast(device.type, enabled=use_amp):
                outputs = model(tensors["image"])
                # a stacked hourglass gives one dict per stack in train mode (intermediate supervision)
                stacks = outputs if isinstance(outputs, list) else [outputs]
                loss, parts = stacked_loss([{k: v.float() for k, v in out.items()} for out in stacks], tensors)
            if not torch.isfinite(loss):
                raise TrainingError(f"epoch {epoch}, step {state.global_step}: loss is {loss.item()}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            state.batch_in_epoch += 1
            state.global_step += 1
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{sums['loss'] / count:.3f}")
            if rank == 0 and state.global_step % LOG_EVERY_STEPS == 0:
                log.info("epoch %d, step %d: loss %.4f", epoch, state.global_step, sums["loss"] / count)
            if rank == 0 and time.monotonic() - last_checkpoint > 60 * config.train.checkpoint_minutes:
                checkpoint(last)
                last_checkpoint = time.monotonic()
        scheduler.step()
        state.epoch += 1
        state.batch_in_epoch = 0
        record = {"epoch": epoch, "step": state.global_step, "lr": optimizer.param_groups[0]["lr"],
                  **{k: v / max(count, 1) for k, v in sums.items()}}
        if val_set is not None and rank == 0 and (state.epoch % config.train.val_every == 0
                                                  or state.epoch == config.train.epochs):
            result = validate(model, val_set, device, taxonomy, grouping, limit=config.train.val_images)
            record.update(val_map_pt=result.map_pt, val_map_box=result.map_box)
            log.info("epoch %d: mAP_pt %.4f, mAP_box %.4f", epoch, result.map_pt, result.map_box)
            if result.map_pt > state.best_map_pt:
                state.best_map_pt = result.map_pt
                checkpoint(run_dir / "best.pt")
        if rank == 0:
            checkpoint(last)
            last_checkpoint = time.monotonic()
            append_text_atomically(run_dir / "log.jsonl", json.dumps(record) + "\n")
            log.info("epoch %d done: %s", epoch, record)
    if dist.is_initialized():
        dist.barrier()
    return state


def _progress(loader, epoch: int, config: RunConfig, enabled: bool, initial: int, total: int):
    if not enabled:
        return loader
    from tqdm import tqdm

    return tqdm(loader, desc=f"epoch {epoch + 1}/{config.train.epochs}", initial=initial, total=total,
                unit="batch", dynamic_ncols=True)
