"""Bad input to the decoder raises DecodeError naming the problem; never a silent wrong answer."""

from dataclasses import replace

import numpy as np
import pytest

from deepmark.core.centernet.decode import decode_batch, decode_detections
from deepmark.core.domain.structures import Affine, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import load_grouping
from deepmark.core.errors import DecodeError
from deepmark.core.synthetic.simulate import random_scene, simulated_heads


@pytest.fixture
def heads(taxonomy, semantic62):
    rng = np.random.default_rng(2)
    return simulated_heads(random_scene(rng, taxonomy, (128, 128)), (128, 128), taxonomy, semantic62)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: replace(h, hm=h.hm[:12]), r"head 'hm' has shape \(12, 32, 32\), expected \(13, 32, 32\)"),
        (lambda h: replace(h, hps=h.hps[:, :, :31]), "head 'hps' has shape"),
        (lambda h: replace(h, reg=h.reg[0]), r"head 'reg' must be a \(C, H, W\) array"),
        (lambda h: replace(h, wh=np.where(np.arange(32) == 3, np.nan, h.wh).astype(np.float32)), "'wh' contains NaN"),
        (lambda h: replace(h, hm_hp=h.hm_hp + np.float32(np.inf)), "'hm_hp' contains NaN or infinite"),
        (lambda h: replace(h, hm=h.hm * 8 - 4), r"heatmap 'hm' spans .* \(was the sigmoid applied\?\)"),
        (lambda h: replace(h, image_to_map=Affine(np.zeros((2, 3)))), "invertible"),
        (lambda h: RawHeads(*(a[:, :0] for a in h.arrays().values())), "empty output map"),
    ],
)
def test_bad_heads(taxonomy, semantic62, heads, change, message):
    with pytest.raises(DecodeError, match=message):
        decode_detections(change(heads), PostprocessParams(), taxonomy, semantic62)


def test_channels_of_another_grouping(taxonomy, heads):
    agg81 = load_grouping("agg81", taxonomy)
    with pytest.raises(DecodeError, match="grouping 'agg81' \\(81 groups\\)"):
        decode_detections(heads, PostprocessParams(), taxonomy, agg81)


@pytest.mark.parametrize(
    ("field", "value"),
    [("alpha", 1.5), ("gamma", -0.1), ("score_threshold", float("nan")), ("top_k", 0), ("sigma_center", -1.0),
     ("max_detections", 2.5), ("nms_iou", "high")],
)
def test_bad_parameters(field, value):
    with pytest.raises(DecodeError, match=field):
        PostprocessParams(**{field: value})


def test_batches(taxonomy, semantic62, heads):
    batch = {name: np.stack([a, a]) for name, a in heads.arrays().items()}
    split = RawHeads.split_batch(batch, [heads.image_to_map] * 2, [heads.image_size] * 2)
    one = decode_detections(heads, PostprocessParams(), taxonomy, semantic62)
    both = decode_batch(split, PostprocessParams(), taxonomy, semantic62)
    assert [len(d) for d in both] == [len(one)] * 2
    assert all(np.allclose(a.box, b.box) for a, b in zip(one, both[1], strict=True))
    with pytest.raises(DecodeError, match="2 images but 1 transforms"):
        RawHeads.split_batch(batch, [heads.image_to_map], [heads.image_size] * 2)
    with pytest.raises(DecodeError, match="lacks head arrays \\['wh'\\]"):
        RawHeads.split_batch({k: v for k, v in batch.items() if k != "wh"}, [heads.image_to_map] * 2, [(1, 1)] * 2)


@pytest.mark.parametrize("head", ["hm", "reg", "wh", "hps", "hm_hp", "hp_offset"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_one_bad_value_anywhere_in_any_head_is_refused(taxonomy, semantic62, heads, head, bad):
    """The check reads min and max only: a single NaN or ±inf at any place of any head still shows."""
    rng = np.random.default_rng(abs(hash((head, str(bad)))) % 2**32)
    for _ in range(3):
        arr = getattr(heads, head).copy()
        arr[tuple(rng.integers(0, n) for n in arr.shape)] = bad
        with pytest.raises(DecodeError, match=f"head '{head}' contains NaN or infinite values"):
            decode_detections(replace(heads, **{head: arr}), PostprocessParams(), taxonomy, semantic62)
