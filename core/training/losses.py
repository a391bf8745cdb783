"""CenterNet multi-pose training losses (torch): focal loss on heatmaps, masked L1 on regressions.

Total = hm·L_hm + wh·L_wh + off·L_reg + hp·L_hps + hm_hp·L_hm_hp + off·L_hp_offset with CenterNet's
default weights (hm 1, wh 0.1, off 1, hp 1, hm_hp 1); see centernet-notes §1.3. A stacked hourglass is
trained with intermediate supervision: every stack's loss, averaged over the stacks (``stacked_loss``, as
CenterNet's MultiPoseLoss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Predictions are clamped away from 0 and 1 so the focal loss's logs stay finite (CenterNet's _sigmoid).
_EPS = 1e-4


@dataclass(frozen=True)
class LossWeights:
    hm: float = 1.0
    wh: float = 0.1
    off: float = 1.0
    hp: float = 1.0
    hm_hp: float = 1.0


def clamped_sigmoid(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits).clamp(_EPS, 1 - _EPS)


def focal_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """CornerNet's penalty-reduced focal loss. ``pred`` (B, C, H, W) in (0, 1), ``gt`` same shape in [0, 1]
    with exact 1 at object centers; normalised by the number of centers."""
    pos = gt.eq(1).float()
    neg = 1.0 - pos
    pos_loss = torch.log(pred) * (1 - pred) ** 2 * pos
    neg_loss = torch.log(1 - pred) * pred**2 * (1 - gt) ** 4 * neg
    num_pos = pos.sum()
    total = pos_loss.sum() + neg_loss.sum()
    return -total / num_pos.clamp(min=1.0)


def gather_at(feature: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``feature`` (B, C, H, W), ``index`` (B, M) flat y·W + x → (B, M, C)."""
    batch, channels = feature.shape[:2]
    flat = feature.reshape(batch, channels, -1).permute(0, 2, 1)
    return flat.gather(1, index.unsqueeze(2).expand(-1, -1, channels))


def masked_l1(pred: torch.Tensor, index: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between ``pred`` (B, C, H, W) gathered at ``index`` (B, M) and ``target`` (B, M, C); ``mask`` is
    (B, M) or (B, M, C). Sum over masked elements divided by their count (CenterNet's RegL1Loss /
    RegWeightedL1Loss)."""
    gathered = gather_at(pred, index)
    mask = mask.float()
    if mask.dim() == 2:
        mask = mask.unsqueeze(2).expand_as(gathered)
    loss = (torch.abs(gathered - target) * mask).sum()
    return loss / (mask.sum() + _EPS)


def centernet_loss(
    outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], weights: LossWeights = LossWeights()
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (as floats, for logging). ``outputs`` are the model's raw logits;
    ``batch`` holds the targets of ``deepmark.core.centernet.encode.Targets`` stacked over the batch."""
    hm = focal_loss(clamped_sigmoid(outputs["hm"]), batch["hm"])
    hm_hp = focal_loss(clamped_sigmoid(outputs["hm_hp"]), batch["hm_hp"])
    wh = masked_l1(outputs["wh"], batch["ind"], batch["reg_mask"], batch["wh"])
    reg = masked_l1(outputs["reg"], batch["ind"], batch["reg_mask"], batch["reg"])
    hps = masked_l1(outputs["hps"], batch["ind"], batch["hps_mask"], batch["hps"])
    hp_offset = masked_l1(outputs["hp_offset"], batch["hp_ind"], batch["hp_mask"], batch["hp_offset"])
    total = (weights.hm * hm + weights.wh * wh + weights.off * reg + weights.hp * hps
             + weights.hm_hp * hm_hp + weights.off * hp_offset)
    parts = {"hm": hm, "wh": wh, "reg": reg, "hps": hps, "hm_hp": hm_hp, "hp_offset": hp_offset}
    return total, {name: float(value.detach()) for name, value in parts.items()}


def stacked_loss(
    stacks: list[dict[str, torch.Tensor]], batch: dict[str, torch.Tensor], weights: LossWeights = LossWeights()
) -> tuple[torch.Tensor, dict[str, float]]:
    """Intermediate supervision: ``centernet_loss`` of each stack's raw heads (one dict per stack; one dict
    for a single-stack model), total and parts averaged over the stacks (CenterNet divides every part by
    num_stacks)."""
    total = torch.zeros((), device=batch["hm"].device)
    parts: dict[str, float] = {}
    for outputs in stacks:
        loss, stack_parts = centernet_loss(outputs, batch, weights)
        total = total + loss / len(stacks)
        for name, value in stack_parts.items():
            parts[name] = parts.get(name, 0.0) + value / len(stacks)
    return total, parts
