"""Taxonomy and grouping loading, validation and the network's channel counts."""

import json

import numpy as np
import pytest

from deepmark.core.domain.taxonomy import build_grouping, load_grouping, load_taxonomy
from deepmark.core.errors import TaxonomyError


def test_categories_match_deepfashion2(taxonomy):
    assert taxonomy.num_classes == 13
    assert taxonomy.num_landmarks == 294
    counts = [c.num_landmarks for c in taxonomy.categories]
    assert counts == [25, 33, 31, 39, 15, 15, 10, 14, 8, 29, 37, 19, 19]
    assert taxonomy.category(8).name == "trousers"
    assert taxonomy.category(8).offset == 168  # "the 169th to 182th" of the 294 (evaluation.md)
    assert taxonomy.oks_sigmas.shape == (294,)
    assert all(c.template.shape == (c.num_landmarks, 2) for c in taxonomy.categories)


def test_landmark_flip_is_an_involution_within_categories(taxonomy):
    flip = taxonomy.landmark_flip
    assert (flip[flip] == np.arange(294)).all()
    assert (taxonomy.landmark_category[flip] == taxonomy.landmark_category).all()
    # Mirror pairs share their OKS sigma, except the one known exception (long sleeve dress 15/29).
    sig = taxonomy.oks_sigmas
    differ = np.flatnonzero(~np.isclose(sig, sig[flip]))
    assert set(taxonomy.landmark_category[differ]) <= {11}


@pytest.mark.parametrize(
    ("name", "groups", "channels"), [("semantic62", 62, 205), ("none", 294, 901), ("agg81", 81, 262)]
)
def test_channel_counts(taxonomy, name, groups, channels):
    grouping = load_grouping(name, taxonomy)
    assert grouping.num_groups == groups
    assert grouping.total_channels() == channels
    heads = grouping.head_channels()
    assert heads == {"hm": 13, "reg": 2, "wh": 2, "hps": 2 * groups, "hm_hp": groups, "hp_offset": 2}


def test_group_flip_agrees_with_landmark_flip(taxonomy, semantic62):
    l2g = semantic62.landmark_to_group
    assert (semantic62.group_flip[l2g] == l2g[taxonomy.landmark_flip]).all()


def _grouping_file(tmp_path, l2g, **extra):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"name": "custom", "landmark_to_group": list(map(int, l2g)), **extra}))
    return path


def test_two_landmarks_of_one_category_in_one_group_is_rejected(tmp_path, taxonomy, semantic62):
    l2g = semantic62.landmark_to_group.copy()
    l2g[1] = l2g[0]  # short sleeve top: neck back centre and neck-shoulder corner L together
    with pytest.raises(TaxonomyError, match=r"category 1 .*2 landmarks in group"):
        load_grouping(_grouping_file(tmp_path, l2g), taxonomy)


def test_inconsistent_flips_are_rejected(taxonomy):
    # Collapse the left/right collar corners of short sleeve tops into separate new groups so that
    # group(flip(l)) differs from flip(group(l)) for other categories that share the old groups.
    l2g = np.arange(294)
    l2g[25 + 1] = 1  # long sleeve top corner L joins short sleeve top corner L's group ...
    l2g[25 + 5] = 3  # ... but corner R joins short sleeve top's front neckline centre group
    l2g = np.unique(l2g, return_inverse=True)[1]
    with pytest.raises(TaxonomyError, match="flip"):
        build_grouping("bad", l2g, taxonomy)


def test_declared_group_flip_pairs_must_match(tmp_path, taxonomy, semantic62):
    pairs = [list(map(int, p)) for p in zip(range(0, 2), range(2, 4), strict=True)]
    path = _grouping_file(tmp_path, semantic62.landmark_to_group, group_flip_pairs=pairs)
    with pytest.raises(TaxonomyError, match="group_flip_pairs"):
        load_grouping(path, taxonomy)


@pytest.mark.parametrize(
    ("l2g", "message"),
    [(list(range(293)), "293 entries"), ([-1] + list(range(293)), "negative"), (list(range(0, 588, 2)), "no landmark")],
)
def test_malformed_groupings(tmp_path, taxonomy, l2g, message):
    with pytest.raises(TaxonomyError, match=message):
        load_grouping(_grouping_file(tmp_path, l2g), taxonomy)


def test_unreadable_files_name_the_file(tmp_path, taxonomy):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(TaxonomyError, match="broken.json"):
        load_grouping(bad, taxonomy)
    with pytest.raises(TaxonomyError, match="broken.json"):
        load_taxonomy(bad)
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "missing.json")


def test_unknown_category_id(taxonomy):
    with pytest.raises(TaxonomyError, match="unknown category id 14"):
        taxonomy.category(14)
