"""The app's assists as plain functions (``deepmark.core.studio.assisted``): a new item from a box or a click,
which landmarks a heatmap peak backs, and the re-fit of the others after a fix.

Simulated heads with known truth (exact answers) and every category; the store's side of a re-fit (the
re-placed landmarks are not flagged as the person's) on a real project file."""

import numpy as np
import pytest

from deepmark.core.centernet.assist import map_scale, prompted_landmarks
from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import ItemData, Project
from deepmark.core.studio.assisted import (
    BACKED_MAP_PX,
    backing_radius,
    landmark_group,
    peak_backed,
    prompted_item,
    refit_others,
)
from deepmark.core.studio.templates import refit_to_template, template_landmarks
from deepmark.core.synthetic.simulate import random_scene, simulated_heads

TAXONOMY = load_taxonomy()
GROUPING = load_grouping("semantic62", TAXONOMY)
SIZE = (256, 192)
PARAMS = PostprocessParams.all_techniques()
PLAIN = PostprocessParams()  # peaks as they are, no location refinement: a landmark sits on its peak


def _scene(seed: int):
    rng = np.random.default_rng(seed)
    items = random_scene(rng, TAXONOMY, SIZE)
    return items, simulated_heads(items, SIZE, TAXONOMY, GROUPING, rng, 0.0, 0.0)


# -- new items ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("category_id", [c.id for c in TAXONOMY.categories])
def test_without_heads_a_box_gets_the_template_all_visible(category_id):
    category = TAXONOMY.category(category_id)
    box = np.array([20.0, 30.0, 120.0, 170.0])
    item = prompted_item(None, box, category, PARAMS, TAXONOMY, None)
    assert item.source == "template" and not item.confident.any()
    np.testing.assert_array_equal(item.landmarks, template_landmarks(category, box))
    np.testing.assert_array_equal(item.box, box)


def test_without_heads_a_click_is_refused_with_the_way_out():
    with pytest.raises(DeepMarkError, match="needs the model's heatmaps.*draw its box"):
        prompted_item(None, (50.0, 60.0), TAXONOMY.category(1), PARAMS, TAXONOMY, None)


@pytest.mark.parametrize("seed", range(4))
def test_a_box_on_perfect_heads_puts_the_labelled_landmarks_on_their_labels_visible(seed):
    items, heads = _scene(seed)
    for label in items:
        category = TAXONOMY.category(label.category_id)
        item = prompted_item(heads, label.box, category, PLAIN, TAXONOMY, GROUPING, SIZE)
        assert item.source == "heatmaps"
        labelled = label.landmarks[:, 2] > 0
        assert item.confident[labelled].all()
        # on the label, but for landmarks sharing a map pixel (and so one hp_offset) with another: within it
        error = np.hypot(*(item.landmarks[labelled, :2] - label.landmarks[labelled, :2]).T)
        assert (error < 4 * np.sqrt(2)).all() and np.mean(error < 1e-3) >= 0.9
        # visible where a peak placed the landmark, occluded where it stays on the template
        np.testing.assert_array_equal(item.landmarks[:, 2], np.where(item.confident, 2, 1))
        template = template_landmarks(category, label.box)
        np.testing.assert_allclose(item.landmarks[~item.confident, :2], template[~item.confident, :2], atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_a_click_gives_the_regressed_box_and_the_landmarks_found_there(seed):
    """The wrapper adds visibilities and keeps what ``prompted_landmarks`` finds for a click (its quality is
    tested in tests/core/centernet/test_assist.py)."""
    items, heads = _scene(seed)
    for label in items:
        centre = (label.box[:2] + label.box[2:]) / 2
        item = prompted_item(heads, centre, TAXONOMY.category(label.category_id), PLAIN, TAXONOMY, GROUPING, SIZE)
        found = prompted_landmarks(heads, centre, label.category_id, PLAIN, TAXONOMY, GROUPING)
        inside = (found.box >= 0).all() and (found.box <= [*SIZE, *SIZE]).all()
        if inside:
            np.testing.assert_allclose(item.box, found.box)
        np.testing.assert_array_equal(item.confident, found.confident)
        np.testing.assert_array_equal(item.landmarks[:, 2], np.where(found.confident, 2, 1))
        on_image = ((found.landmarks[:, :2] >= 0) & (found.landmarks[:, :2] <= SIZE)).all(axis=1)
        np.testing.assert_allclose(item.landmarks[on_image, :2], found.landmarks[on_image, :2])


def test_what_is_added_stays_in_the_image():
    items, heads = _scene(0)
    label = items[0]
    category = TAXONOMY.category(label.category_id)
    for prompt in (np.array([-40.0, -30.0, 300.0, 250.0]), np.array([-5.0, 400.0])):
        item = prompted_item(heads, prompt, category, PARAMS, TAXONOMY, GROUPING, SIZE)
        assert (item.box >= 0).all() and (item.box <= [*SIZE, *SIZE]).all()
        assert (item.landmarks[:, 0] >= 0).all() and (item.landmarks[:, 0] <= SIZE[0]).all()
        assert (item.landmarks[:, 1] >= 0).all() and (item.landmarks[:, 1] <= SIZE[1]).all()


# -- peaks backing landmarks ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_labelled_landmarks_on_their_peaks_are_backed_and_moved_ones_are_not(seed):
    items, heads = _scene(seed)
    for label in items:
        backed = peak_backed(heads, GROUPING, TAXONOMY, label.category_id, label.landmarks, label.box, PLAIN)
        labelled = label.landmarks[:, 2] > 0
        assert backed[labelled].all() and not backed[~labelled].any()  # not present: never backed
        moved = label.landmarks.copy()
        radius = backing_radius(heads, label.box, PLAIN)
        moved[:, 0] += 3 * radius  # well off every peak of their own group (others do not count)
        far = peak_backed(heads, GROUPING, TAXONOMY, label.category_id, moved, label.box, PLAIN)
        assert far.sum() <= 0.2 * labelled.sum()


def test_the_backing_radius_allows_for_location_refinement():
    items, heads = _scene(1)
    box = items[0].box
    plain = backing_radius(heads, box, PLAIN)
    assert plain == pytest.approx(BACKED_MAP_PX / map_scale(heads.image_to_map))
    refined = backing_radius(heads, box, PARAMS)
    assert refined == pytest.approx(plain + (1 - PARAMS.gamma) * 0.3 * max(box[2] - box[0], box[3] - box[1]))


def test_landmark_group_is_the_groupings_channel():
    for category in TAXONOMY.categories:
        k = TAXONOMY.category_index(category.id)
        for idx in range(category.num_landmarks):
            assert landmark_group(TAXONOMY, GROUPING, category.id, idx) == GROUPING.category_groups[k][idx]


# -- re-fit -----------------------------------------------------------------------------------------------


def _garment(category, seed: int) -> np.ndarray:
    """(L, 3) a template garment under a random similarity, every landmark visible."""
    rng = np.random.default_rng(seed)
    drawn = np.asarray(category.template, np.float64) * (category.template_aspect, 1.0)
    a = rng.uniform(80, 160) * np.exp(1j * rng.uniform(-0.4, 0.4))
    z = a * (drawn @ np.array([1.0, 1j])) + complex(*rng.uniform(20, 60, 2))
    return np.column_stack([z.real, z.imag, np.full(len(z), 2.0)])


@pytest.mark.parametrize("category_id", [c.id for c in TAXONOMY.categories])
def test_refit_puts_the_others_back_on_the_garment_the_fixed_ones_define(category_id):
    category = TAXONOMY.category(category_id)
    truth = _garment(category, category_id)
    rng = np.random.default_rng(category_id)
    shown = truth.copy()
    shown[:, :2] += rng.normal(0, 15, (len(truth), 2))  # a rough guess everywhere
    fixed = np.zeros(len(truth), bool)
    fixed[rng.choice(len(truth), 3, replace=False)] = True
    shown[fixed] = truth[fixed]  # the user put these right
    new, replaced = refit_others(category, shown, fixed)
    np.testing.assert_allclose(new[:, :2], truth[:, :2], atol=1e-6)
    np.testing.assert_array_equal(new[fixed], shown[fixed])
    np.testing.assert_array_equal(replaced, ~fixed)
    np.testing.assert_array_equal(new[:, 2], shown[:, 2])  # visibilities are kept


def test_refit_leaves_not_present_landmarks_alone_and_never_fits_to_them():
    category = TAXONOMY.category(1)
    truth = _garment(category, 5)
    shown = truth.copy()
    shown[4:, :2] += 10.0
    shown[10] = (0.0, 0.0, 0.0)  # not present, unlabelled: stays at 0, 0
    fixed = np.zeros(len(truth), bool)
    fixed[[0, 1, 2, 10]] = True  # a not-present "fixed" landmark does not count for the fit
    new, replaced = refit_others(category, shown, fixed)
    np.testing.assert_array_equal(new[10], [0.0, 0.0, 0.0])
    assert not replaced[10]
    expected = refit_to_template(category, shown[:, :2], np.isin(np.arange(len(truth)), [0, 1, 2]))
    np.testing.assert_allclose(new[replaced, :2], expected[replaced], atol=1e-9)


@pytest.mark.parametrize("count", [0, 1])
def test_refit_with_fewer_than_two_fixed_changes_nothing(count):
    category = TAXONOMY.category(7)
    shown = _garment(category, 2)
    fixed = np.zeros(len(shown), bool)
    fixed[:count] = True
    new, replaced = refit_others(category, shown, fixed)
    np.testing.assert_array_equal(new, shown)
    assert not replaced.any()


# -- the store keeps who placed what --------------------------------------------------------------------


def test_landmarks_an_assist_placed_are_not_flagged_as_the_persons(tmp_path):
    """A move + re-fit written as one edit: the moved landmark is the person's correction, the re-placed ones
    keep the flag they had; one undo brings every landmark and flag back."""
    from deepmark.core.synthetic import SynthConfig, generate_dataset

    generate_dataset(tmp_path / "df2", 1, seed=3, config=SynthConfig(image_size=(96, 96), max_items=1))
    with Project.create(tmp_path / "p.deepmark", root=tmp_path) as project:
        image = project.images.add(tmp_path / "df2" / "image" / "000001.jpg")
        category = TAXONOMY.category(1)
        landmarks = _garment(category, 1)
        added = project.annotations.add_item(image.id, ItemData(category_id=1, box=np.array([0, 0, 96.0, 96]),
                                                                landmarks=landmarks), origin="predicted")
        aid = added.annotation_id
        project.annotations.set_landmark(aid, 5, x=11.0)  # an earlier correction of the person
        new = project.annotations.get(aid).landmarks.copy()
        new[0, :2] += 4.0  # the person's move now
        placed = np.zeros(len(new), bool)
        placed[[5, 6, 7]] = True  # re-placed by the re-fit (5 was corrected before: it stays corrected)
        new[[5, 6, 7], :2] += 2.0
        before = project.annotations.get(aid)
        receipt = project.annotations.update_item(aid, landmarks=new, placed=placed, action="refit_landmarks")
        after = project.annotations.get(aid)
        np.testing.assert_array_equal(after.landmarks, new)
        assert after.corrected.tolist() == [i in (0, 5) for i in range(len(new))]
        project.history.undo(image.id, edit_id=receipt.edit_id)
        restored = project.annotations.get(aid)
        np.testing.assert_array_equal(restored.landmarks, before.landmarks)
        np.testing.assert_array_equal(restored.corrected, before.corrected)
