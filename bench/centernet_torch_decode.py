"""CenterNet's ``multi_pose_decode`` in torch, re-written from its description (centernet-notes §1.1),
as the yardstick for ``bench/decode.py``: 3×3 max-pool NMS, per-class then global top-K, regressed
keypoints from the integer center, per-joint top-K heatmap peaks, a K×K distance matrix per joint and
nearest-peak replacement with the three rejection rules. All J joints for every candidate, as CenterNet
does. Imported by ``bench/decode.py --torch``; needs torch, which the project's venv has with the
``train`` or ``test`` extras (``.venv/bin/pip install -e ".[test]"``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _nms(heat: torch.Tensor) -> torch.Tensor:
    pooled = F.max_pool2d(heat, 3, stride=1, padding=1)
    return heat * (pooled == heat).float()


def _topk_channel(scores: torch.Tensor, k: int):
    batch, channels, height, width = scores.shape
    top_scores, top_inds = torch.topk(scores.view(batch, channels, -1), k)
    top_inds = top_inds % (height * width)
    return top_scores, top_inds, torch.div(top_inds, width, rounding_mode="floor").float(), (top_inds % width).float()


def _gather(feat: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    """feat (B, C, H, W), ind (B, K) → (B, K, C)."""
    batch, channels = feat.shape[:2]
    flat = feat.view(batch, channels, -1).permute(0, 2, 1)
    return flat.gather(1, ind.unsqueeze(2).expand(-1, -1, channels))


@torch.no_grad()
def multi_pose_decode(hm, wh, hps, reg, hm_hp, hp_offset, k: int = 100) -> torch.Tensor:
    """Tensors (B, C, H, W) → detections (B, K, 4 + 1 + 2J + 1): box, score, keypoints, class."""
    batch, classes, height, width = hm.shape
    joints = hps.shape[1] // 2
    heat = _nms(hm)
    scores, inds, ys, xs = _topk_channel(heat, k)
    top_scores, top_ind = torch.topk(scores.view(batch, -1), k)
    clses = torch.div(top_ind, k, rounding_mode="floor").float()
    inds = inds.view(batch, -1).gather(1, top_ind)
    ys = ys.view(batch, -1).gather(1, top_ind)
    xs = xs.view(batch, -1).gather(1, top_ind)

    kps = _gather(hps, inds).view(batch, k, joints, 2)
    kps[..., 0] += xs.unsqueeze(2)
    kps[..., 1] += ys.unsqueeze(2)
    offset = _gather(reg, inds)
    cx, cy = xs + offset[..., 0], ys + offset[..., 1]
    size = _gather(wh, inds)
    boxes = torch.stack([cx - size[..., 0] / 2, cy - size[..., 1] / 2, cx + size[..., 0] / 2, cy + size[..., 1] / 2], 2)

    hm_hp = _nms(hm_hp)
    hm_score, hm_inds, hm_ys, hm_xs = _topk_channel(hm_hp, k)  # (B, J, K)
    hp_off = _gather(hp_offset, hm_inds.view(batch, -1)).view(batch, joints, k, 2)
    hm_xs = hm_xs + hp_off[..., 0]
    hm_ys = hm_ys + hp_off[..., 1]
    valid = hm_score > 0.1
    hm_score = torch.where(valid, hm_score, torch.full_like(hm_score, -1))
    hm_xs = torch.where(valid, hm_xs, torch.full_like(hm_xs, -10000))
    hm_ys = torch.where(valid, hm_ys, torch.full_like(hm_ys, -10000))
    peaks = torch.stack([hm_xs, hm_ys], -1)  # (B, J, K, 2)
    reg_kps = kps.permute(0, 2, 1, 3)  # (B, J, K, 2)
    dist = ((reg_kps.unsqueeze(3) - peaks.unsqueeze(2)) ** 2).sum(-1).sqrt()  # (B, J, K, K)
    min_dist, min_ind = dist.min(dim=3)
    chosen_score = hm_score.gather(2, min_ind)
    chosen = peaks.gather(2, min_ind.unsqueeze(-1).expand(-1, -1, -1, 2))
    left, top, right, bottom = (boxes[..., i].unsqueeze(1) for i in range(4))
    reject = (
        (chosen[..., 0] < left) | (chosen[..., 0] > right) | (chosen[..., 1] < top) | (chosen[..., 1] > bottom)
        | (chosen_score < 0.1) | (min_dist > 0.3 * torch.maximum(bottom - top, right - left))
    )
    kps_out = torch.where(reject.unsqueeze(-1), reg_kps, chosen).permute(0, 2, 1, 3).reshape(batch, k, -1)
    return torch.cat([boxes, top_scores.unsqueeze(2), kps_out, clses.unsqueeze(2)], 2)


def centernet_decoders(heads) -> list:
    """One callable per RawHeads of ``heads``: CenterNet's decode of those heads as torch tensors (made once,
    outside the timing), torch's default threads; for ``bench/decode.py`` to time beside its own settings."""
    decoders = []
    for h in heads:
        tensors = {name: torch.from_numpy(np.ascontiguousarray(a))[None] for name, a in h.arrays().items()}
        decoders.append(lambda tensors=tensors: multi_pose_decode(**tensors))
    return decoders
