"""Build DeepMark Studio's taxonomy resources from the shared DeepFashion2 fact file.

Run once when the source changes (the output is committed)::

    python resources/taxonomy/build_taxonomy.py ../shared/deepfashion2/deepfashion2.json

Writes ``deepfashion2.json`` (categories) and ``groupings/<name>.json`` beside this script.
Every index in the output is 0-based: flip pairs and skeleton links are local to the category,
``landmark_to_group`` and ``group_flip_pairs`` index the 294-vector and the group channels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _category(src: dict) -> dict:
    return {
        "id": src["id"],
        "name": src["name"],
        "coco_name": src["coco_name"],
        "num_landmarks": src["num_landmarks"],
        "offset": src["offset"],
        "landmark_names": src["landmark_names"],
        "flip_pairs": [[a - 1, b - 1] for a, b in src["flip_pairs"]],
        "skeleton": [[a - 1, b - 1] for a, b in src["skeleton"]],
        "oks_sigmas": src["oks_sigmas"],
        "template": src["template"],
        "template_aspect": src["template_aspect"],
    }


def _none_grouping(categories: list[dict]) -> dict:
    """One channel per landmark; labels and flips come straight from the categories."""
    labels, flips = [], []
    for cat in categories:
        off = cat["offset"]
        labels += [f"{cat['name']}: {n}" for n in cat["landmark_names"]]
        flips += [[off + a, off + b] for a, b in cat["flip_pairs"]]
    return {
        "name": "none",
        "num_groups": len(labels),
        "note": "one channel per landmark (DeepMark, 901 output channels)",
        "landmark_to_group": list(range(len(labels))),
        "group_labels": labels,
        "group_flip_pairs": sorted(flips),
    }


def build(source: Path, out_dir: Path = HERE) -> None:
    data = json.loads(source.read_text())
    categories = [_category(c) for c in data["categories"]]
    taxonomy = {
        "about": "DeepFashion2 taxonomy for DeepMark Studio, built by build_taxonomy.py from the shared "
        "fact file. All indices are 0-based. " + data["about"],
        "categories": categories,
    }
    (out_dir / "deepfashion2.json").write_text(json.dumps(taxonomy, indent=1) + "\n")
    groupings_dir = out_dir / "groupings"
    groupings_dir.mkdir(exist_ok=True)
    for name, grouping in data["groupings"].items():
        if name == "none":
            grouping = _none_grouping(categories)
        out = {k: grouping[k] for k in ("name", "num_groups", "note", "landmark_to_group",
                                         "group_labels", "group_flip_pairs")}
        (groupings_dir / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared/deepfashion2/deepfashion2.json")
