"""CenterNet training losses, checked against values computed by hand."""

import math

import pytest
import torch

from deepmark.core.training.losses import centernet_loss, focal_loss, gather_at, masked_l1


def test_focal_loss_by_hand():
    # One center (gt 1, pred 0.8) and one negative (gt 0.5, pred 0.3):
    # pos: −log(0.8)·0.2² ; neg: −log(0.7)·0.3²·0.5⁴ ; one positive → divide by 1.
    pred = torch.tensor([[[[0.8, 0.3]]]])
    gt = torch.tensor([[[[1.0, 0.5]]]])
    expected = -(math.log(0.8) * 0.04 + math.log(0.7) * 0.09 * 0.0625)
    assert focal_loss(pred, gt).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_without_centers_is_not_nan():
    loss = focal_loss(torch.full((1, 2, 4, 4), 0.2), torch.zeros(1, 2, 4, 4))
    assert torch.isfinite(loss) and loss.item() > 0


def test_masked_l1_by_hand():
    pred = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)  # channel c at (y, x): 12c + 4y + x
    index = torch.tensor([[5, 11]])  # (y, x) = (1, 1) and (2, 3)
    assert gather_at(pred, index).tolist() == [[[5.0, 17.0], [11.0, 23.0]]]
    target = torch.tensor([[[4.0, 17.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 0]])  # second object masked out
    assert masked_l1(pred, index, mask, target).item() == pytest.approx((1 + 0) / 2, rel=1e-3)


def test_total_loss_has_gradients_and_parts():
    torch.manual_seed(0)
    b, m, g, h, w = 2, 4, 3, 8, 8
    outputs = {name: torch.randn(b, c, h, w, requires_grad=True)
               for name, c in (("hm", 13), ("reg", 2), ("wh", 2), ("hps", 2 * g), ("hm_hp", g), ("hp_offset", 2))}
    batch = {
        "hm": torch.zeros(b, 13, h, w), "hm_hp": torch.zeros(b, g, h, w),
        "ind": torch.randint(0, h * w, (b, m)), "reg_mask": torch.ones(b, m), "wh": torch.rand(b, m, 2) * 5,
        "reg": torch.rand(b, m, 2), "hps": torch.randn(b, m, 2 * g), "hps_mask": torch.ones(b, m, 2 * g),
        "hp_ind": torch.randint(0, h * w, (b, m * g)), "hp_mask": torch.ones(b, m * g),
        "hp_offset": torch.rand(b, m * g, 2),
    }
    batch["hm"][:, 0, 2, 3] = 1.0
    total, parts = centernet_loss(outputs, batch)
    total.backward()
    assert set(parts) == {"hm", "wh", "reg", "hps", "hm_hp", "hp_offset"}
    assert all(outputs[name].grad is not None and outputs[name].grad.abs().sum() > 0 for name in outputs)
