"""DeepFashion2 taxonomy: categories, landmarks, flip pairs, skeleton, OKS sigmas, templates, groupings.

Loaded from the JSON resources in ``resources/taxonomy`` (built by ``build_taxonomy.py``).
Landmark indices are 0-based; a category's landmark ``i`` is global landmark ``offset + i`` in the
294-vector, and a grouping maps each global landmark to one network channel (group).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from deepmark.core.errors import TaxonomyError, path_of
from deepmark.core.util.resources import resource_path

NUM_CATEGORIES = 13
NUM_LANDMARKS = 294
GROUPING_NAMES = ("none", "agg81", "semantic62")


@dataclass(frozen=True, eq=False)
class Category:
    """One DeepFashion2 category.

    ``flip_pairs`` (P, 2) and ``skeleton`` (E, 2) hold local 0-based landmark indices;
    ``oks_sigmas`` (L,); ``template`` (L, 2) is the canonical layout normalised to its
    landmarks' bounding box (x multiplied by ``template_aspect`` restores the drawing's proportions).
    """

    id: int
    name: str
    coco_name: str
    offset: int
    landmark_names: tuple[str, ...]
    flip_pairs: np.ndarray
    skeleton: np.ndarray
    oks_sigmas: np.ndarray
    template: np.ndarray
    template_aspect: float

    @property
    def num_landmarks(self) -> int:
        return len(self.landmark_names)

    @property
    def global_indices(self) -> np.ndarray:
        """(L,) int: this category's slots in the 294-vector."""
        return np.arange(self.offset, self.offset + self.num_landmarks)

    @property
    def flip_permutation(self) -> np.ndarray:
        """(L,) int: local index of each landmark's mirror partner (itself when unpaired)."""
        perm = np.arange(self.num_landmarks)
        perm[self.flip_pairs[:, 0]] = self.flip_pairs[:, 1]
        perm[self.flip_pairs[:, 1]] = self.flip_pairs[:, 0]
        return perm


@dataclass(frozen=True, eq=False)
class Taxonomy:
    """The 13 categories and the 294-landmark space."""

    categories: tuple[Category, ...]
    _by_id: dict[int, Category] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {c.id: c for c in self.categories})

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @property
    def num_landmarks(self) -> int:
        return sum(c.num_landmarks for c in self.categories)

    @property
    def category_ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.categories)

    def category(self, category_id: int) -> Category:
        try:
            return self._by_id[int(category_id)]
        except (KeyError, TypeError, ValueError):
            raise TaxonomyError(
                f"unknown category id {category_id!r}; valid ids are {min(self._by_id)}..{max(self._by_id)}"
            ) from None

    def category_index(self, category_id: int) -> int:
        """0-based heatmap channel of a category id."""
        return self.categories.index(self.category(category_id))

    @property
    def oks_sigmas(self) -> np.ndarray:
        """(294,) float64: the official DeepFashion2 OKS sigmas."""
        return np.concatenate([c.oks_sigmas for c in self.categories])

    @property
    def landmark_flip(self) -> np.ndarray:
        """(294,) int: global index of each landmark's mirror partner."""
        return np.concatenate([c.offset + c.flip_permutation for c in self.categories])

    @property
    def landmark_category(self) -> np.ndarray:
        """(294,) int: category id owning each global landmark."""
        return np.concatenate([np.full(c.num_landmarks, c.id) for c in self.categories])


@dataclass(frozen=True, eq=False)
class Grouping:
    """A map from the 294 landmarks to G network channels.

    ``landmark_to_group`` (294,) int in [0, G); ``group_flip`` (G,) int, the mirror group of each group;
    ``category_groups[k]`` (L_k,) int, the group of each landmark of the k-th category.
    """

    name: str
    landmark_to_group: np.ndarray
    group_labels: tuple[str, ...]
    group_flip: np.ndarray
    category_groups: tuple[np.ndarray, ...]

    @property
    def num_groups(self) -> int:
        return len(self.group_labels)

    def head_channels(self, num_classes: int = NUM_CATEGORIES) -> dict[str, int]:
        """Channels of each CenterNet head, in the network's output order."""
        g = self.num_groups
        return {"hm": num_classes, "reg": 2, "wh": 2, "hps": 2 * g, "hm_hp": g, "hp_offset": 2}

    def total_channels(self, num_classes: int = NUM_CATEGORIES) -> int:
        """13 + 2 + 2 + 2G + G + 2: 205 for G = 62, 901 for G = 294."""
        return sum(self.head_channels(num_classes).values())


def _array(values, dtype, shape_tail: tuple[int, ...], what: str, path: Path | None = None) -> np.ndarray:
    arr = np.asarray(values if values else np.zeros((0, *shape_tail)), dtype=dtype)
    if arr.shape[1:] != shape_tail:
        raise TaxonomyError(f"{what}: expected shape (N, {', '.join(map(str, shape_tail))}), got {arr.shape}",
                            path=path)
    return arr


def _parse_category(raw: dict, source: Path) -> Category:
    try:
        names = tuple(raw["landmark_names"])
        n = len(names)
        cat = Category(
            id=int(raw["id"]),
            name=str(raw["name"]),
            coco_name=str(raw["coco_name"]),
            offset=int(raw["offset"]),
            landmark_names=names,
            flip_pairs=_array(raw["flip_pairs"], np.int64, (2,), f"{source}: flip_pairs", source),
            skeleton=_array(raw["skeleton"], np.int64, (2,), f"{source}: skeleton", source),
            oks_sigmas=np.asarray(raw["oks_sigmas"], dtype=np.float64),
            template=_array(raw["template"], np.float64, (2,), f"{source}: template", source),
            template_aspect=float(raw["template_aspect"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TaxonomyError(f"{source}: malformed category entry ({exc!r})", path=source) from None
    for what, arr in (("oks_sigmas", cat.oks_sigmas), ("template", cat.template)):
        if len(arr) != n:
            raise TaxonomyError(f"{source}: category {cat.id} has {n} landmarks but {len(arr)} {what}", path=source)
    for what, arr in (("flip_pairs", cat.flip_pairs), ("skeleton", cat.skeleton)):
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise TaxonomyError(f"{source}: category {cat.id} {what} index outside 0..{n - 1}", path=source)
    return cat


def _check_layout(categories: list[Category], source: Path) -> None:
    ids = [c.id for c in categories]
    if ids != list(range(1, len(ids) + 1)):
        raise TaxonomyError(f"{source}: category ids must be 1..N in order, got {ids}", path=source)
    expected = 0
    for c in categories:
        if c.offset != expected:
            raise TaxonomyError(f"{source}: category {c.id} offset {c.offset}, expected {expected}", path=source)
        expected += c.num_landmarks


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load the taxonomy JSON (default: the bundled DeepFashion2 resource).

    Raises TaxonomyError naming the file when it is missing or inconsistent.
    """
    source = Path(path) if path is not None else resource_path("taxonomy", "deepfashion2.json")
    if path is None:
        return _default_taxonomy(source)
    return _read_taxonomy(source)


@lru_cache(maxsize=1)
def _default_taxonomy(source: Path) -> Taxonomy:
    return _read_taxonomy(source)


def _read_json(source: Path) -> dict:
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaxonomyError(f"{source}: file not found", path=source) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TaxonomyError(f"{source}: cannot read JSON ({exc})", path=source) from None


def _read_taxonomy(source: Path) -> Taxonomy:
    raw = _read_json(source)
    if not isinstance(raw, dict) or not isinstance(raw.get("categories"), list):
        raise TaxonomyError(f"{source}: expected an object with a 'categories' list", path=source)
    categories = [_parse_category(c, source) for c in raw["categories"]]
    _check_layout(categories, source)
    return Taxonomy(tuple(categories))


def load_grouping(name_or_path: str | Path = "semantic62", taxonomy: Taxonomy | None = None) -> Grouping:
    """Load and validate a grouping: a bundled name (``none``, ``agg81``, ``semantic62``) or a JSON path.

    The JSON holds ``landmark_to_group`` (294 ints), optional ``group_labels`` and ``group_flip_pairs``
    (0-based group index pairs). Raises TaxonomyError when a category has two landmarks in one group,
    a group is unused, or flipping landmarks does not flip their groups consistently.
    """
    taxonomy = taxonomy or load_taxonomy()
    if str(name_or_path) in GROUPING_NAMES:
        source = resource_path("taxonomy", "groupings", f"{name_or_path}.json")
    else:
        source = Path(name_or_path)
    raw = _read_json(source)
    if not isinstance(raw, dict) or "landmark_to_group" not in raw:
        raise TaxonomyError(f"{source}: expected an object with 'landmark_to_group'", path=source)
    return build_grouping(
        name=str(raw.get("name", source.stem)),
        landmark_to_group=raw["landmark_to_group"],
        group_flip_pairs=raw.get("group_flip_pairs"),
        group_labels=raw.get("group_labels"),
        taxonomy=taxonomy,
        source=source,
    )


def build_grouping(
    name: str,
    landmark_to_group,
    taxonomy: Taxonomy,
    group_flip_pairs=None,
    group_labels=None,
    source: str | Path = "<grouping>",
) -> Grouping:
    """Validate a landmark → group map and build a Grouping (see ``load_grouping``). ``source`` is named in
    errors; a ``Path`` is the grouping file (also the errors' ``path``)."""
    try:
        l2g = np.asarray(landmark_to_group, dtype=np.int64)
    except (TypeError, ValueError):
        raise TaxonomyError(f"{source}: landmark_to_group must be a list of integers", path=path_of(source)) from None
    if l2g.shape != (taxonomy.num_landmarks,):
        raise TaxonomyError(
            f"{source}: landmark_to_group has {l2g.size} entries, expected {taxonomy.num_landmarks}",
            path=path_of(source),
        )
    if l2g.min() < 0:
        raise TaxonomyError(f"{source}: negative group index {l2g.min()}", path=path_of(source))
    num_groups = int(l2g.max()) + 1
    unused = np.setdiff1d(np.arange(num_groups), l2g)
    if unused.size:
        raise TaxonomyError(f"{source}: groups {unused.tolist()} have no landmark", path=path_of(source))
    _check_one_landmark_per_group(l2g, taxonomy, source)
    group_flip = _group_flip(l2g, num_groups, group_flip_pairs, taxonomy, source)
    labels = tuple(group_labels) if group_labels else tuple(f"group {g}" for g in range(num_groups))
    if len(labels) != num_groups:
        raise TaxonomyError(f"{source}: {len(labels)} group labels for {num_groups} groups", path=path_of(source))
    category_groups = tuple(l2g[c.global_indices] for c in taxonomy.categories)
    return Grouping(name, l2g, labels, group_flip, category_groups)


def _check_one_landmark_per_group(l2g: np.ndarray, taxonomy: Taxonomy, source: str | Path) -> None:
    for cat in taxonomy.categories:
        groups = l2g[cat.global_indices]
        values, counts = np.unique(groups, return_counts=True)
        if (counts > 1).any():
            g = int(values[counts > 1][0])
            members = [cat.landmark_names[i] for i in np.flatnonzero(groups == g)]
            raise TaxonomyError(
                f"{source}: category {cat.id} ({cat.name}) has {len(members)} landmarks in group {g}: "
                f"{members}; a group may hold at most one landmark per category",
                path=path_of(source),
            )


def _group_flip(l2g, num_groups, pairs, taxonomy: Taxonomy, source: str | Path) -> np.ndarray:
    """(G,) mirror group of each group, checked against the landmark flip pairs."""
    derived = np.full(num_groups, -1)
    flip = taxonomy.landmark_flip
    for landmark, partner in enumerate(flip):
        g, h = l2g[landmark], l2g[partner]
        if derived[g] not in (-1, h):
            raise TaxonomyError(
                f"{source}: flips inconsistent: group {g} mirrors to both {derived[g]} and {h} "
                f"(landmark {landmark} ↔ {partner})",
                path=path_of(source),
            )
        derived[g] = h
    if (derived[derived] != np.arange(num_groups)).any():
        raise TaxonomyError(f"{source}: group flip map is not an involution", path=path_of(source))
    if pairs is not None:
        declared = np.arange(num_groups)
        for a, b in pairs:
            declared[a], declared[b] = b, a
        if (declared != derived).any():
            g = int(np.flatnonzero(declared != derived)[0])
            raise TaxonomyError(
                f"{source}: group_flip_pairs say group {g} mirrors to {declared[g]}, "
                f"but its landmarks' flip pairs say {derived[g]}",
                path=path_of(source),
            )
    return derived
