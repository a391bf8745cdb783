"""The training checkpoint file (``.pt``): written by ``deepmark.core.training.train``, read here by both
training (resume) and inference (a checkpoint used as a model, run in torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepmark.core.domain.taxonomy import Grouping, Taxonomy, load_grouping
from deepmark.core.formats.model_file import INPUT_MULTIPLE, ModelFileError, ModelInfo, model_info
from deepmark.core.network.factory import build_model
from deepmark.core.network.heads import ExportWrapper
from deepmark.core.util.atomic import write_atomically

CHECKPOINT_VERSION = 1


class CheckpointError(ModelFileError):
    """A checkpoint file cannot be read or is not a DeepMark checkpoint."""


def save_checkpoint(path: Path, payload: dict) -> None:
    write_atomically(path, lambda handle: torch.save(payload, handle), binary=True)


def read_checkpoint_file(path: str | Path) -> object:
    """What a training checkpoint file holds (any of our runs' ``.pt``, on the CPU); CheckpointError names the
    file when it is missing or cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found", path=path) from None
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc})", path=path) from None


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by ``save_checkpoint``; CheckpointError names the file and the problem."""
    payload = read_checkpoint_file(path)
    if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION or "model" not in payload:
        raise CheckpointError(f"{path}: not a DeepMark checkpoint (version {CHECKPOINT_VERSION})", path=path)
    return payload


def checkpoint_info(checkpoint: dict, taxonomy: Taxonomy, training: dict | None = None) -> ModelInfo:
    """What a checkpoint's model is (as an exported model file would describe it). A checkpoint written
    before ``input_multiple`` was recorded is of an architecture whose multiple is 32."""
    grouping = load_grouping(checkpoint["grouping"], taxonomy)
    return model_info(checkpoint["arch"], grouping, taxonomy, checkpoint["input_size"], training,
                      input_multiple=checkpoint.get("input_multiple", INPUT_MULTIPLE))


def checkpoint_model(checkpoint: dict, grouping: Grouping, taxonomy: Taxonomy):
    """The checkpoint's CenterNet (or HourglassNet) with its weights loaded (train mode; call ``.eval()`` to
    infer)."""
    model = build_model(checkpoint["arch"], grouping, taxonomy.num_classes, head_conv=checkpoint.get("head_conv"))
    model.load_state_dict(checkpoint["model"])
    return model


class CheckpointRunner:
    """Runs a checkpoint's model in torch: (N, 3, H, W) float32 batch → the six heads as numpy arrays."""

    def __init__(self, checkpoint: dict, grouping: Grouping, taxonomy: Taxonomy, threads: int | None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.wrapper = ExportWrapper(checkpoint_model(checkpoint, grouping, taxonomy)).eval()

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [o.numpy() for o in self.wrapper(torch.from_numpy(batch))]
