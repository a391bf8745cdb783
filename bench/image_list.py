"""Image-list benchmark (a script, not a test): a 100,000-image project in the app's list.

    .venv/bin/python bench/image_list.py [--images 100000] [--runs 5] [--workdir DIR]

1. build a project of N image rows (bulk insert; 10 % new, the rest accepted), one model run with 1-3
   predictions on every 10th image, an item on every 20th and a human correction on every 500th;
2. in a fresh process (offscreen Qt): import, open the project, read the ids of every row (the list
   model knows its length), read the first page and paint the list view once — what a user waits for
   (best of ``--runs``; imports also reported apart);
3. for each filter of the filter bar: the ids of every match (what the list reads when the filter
   changes) and the first page of records, median of ``--runs``;
4. thumbnails: a 4000×3000 JPEG through the reduced-size decode, a full decode for comparison, and a
   disk-cache hit.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OPEN_CHILD = """
import os, sys, time
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
t0 = time.perf_counter()
from PySide6.QtWidgets import QApplication, QListView
from deepmark.app.image_list import ImageListModel, fit_layout
from deepmark.core.store import Project
t1 = time.perf_counter()
app = QApplication([])
project = Project.open(sys.argv[1])
model = ImageListModel()
view = QListView()
view.setUniformItemSizes(True)
view.setModel(model)
model.set_project(project)
fit_layout(view, model.rowCount())  # as the window does
view.resize(320, 800)
view.show()
app.processEvents()
t2 = time.perf_counter()
print(model.rowCount(), t2 - t1, t2 - t0)
model.shutdown()
project.close()
"""


def build_project(path: Path, n: int) -> None:
    from sqlalchemy import insert

    from deepmark.core.domain.structures import Detection
    from deepmark.core.domain.taxonomy import load_taxonomy
    from deepmark.core.store import Project
    from deepmark.core.store.bulk import insert_items, insert_predictions
    from deepmark.core.store.models import Annotation, Image, Landmark, utc_now
    from deepmark.core.store.records import ItemData

    taxonomy = load_taxonomy()
    rng = np.random.default_rng(0)
    project = Project.create(path)
    now = utc_now()
    rows = [{"path": f"images/{k:07d}.jpg", "content_hash": f"{k:064x}", "size_bytes": 50_000, "width": 640,
             "height": 480, "status": "new" if k % 10 == 0 else "accepted", "created_at": now, "updated_at": now,
             "version": 1} for k in range(1, n + 1)]
    for start in range(0, n, 20_000):
        project.write(lambda s, chunk=rows[start : start + 20_000]: s.execute(insert(Image), chunk))
    run = project.model_runs.add("bench run")

    def detection(category: int, score: float) -> Detection:
        count = len(taxonomy.category(category).landmark_names)
        marks = np.column_stack([rng.uniform(0, 600, count), rng.uniform(0, 400, count), rng.uniform(0, 1, count)])
        return Detection(category, score, score, np.array([10.0, 10.0, 300.0, 400.0]), marks, np.zeros(count, bool))

    def predict(session, ids):
        for k in ids:
            dets = [detection(int(rng.integers(1, 14)), float(rng.uniform(0.05, 0.99)))
                    for _ in range(int(rng.integers(1, 4)))]
            insert_predictions(session, run.id, k, dets)

    ids = list(range(10, n + 1, 10))
    for start in range(0, len(ids), 2000):
        project.write(lambda s, chunk=ids[start : start + 2000]: predict(s, chunk))

    def items(session, ids):
        out = []
        for k in ids:
            category = int(rng.integers(1, 14))
            count = len(taxonomy.category(category).landmark_names)
            marks = np.column_stack([np.full(count, 20.0), np.full(count, 30.0), np.full(count, 2.0)])
            out.append((k, 0, ItemData(category_id=category, box=np.array([5.0, 5.0, 200.0, 300.0]),
                                       landmarks=marks), "imported", None))
        insert_items(session, out)

    item_ids = list(range(20, n + 1, 20))
    for start in range(0, len(item_ids), 2000):
        project.write(lambda s, chunk=item_ids[start : start + 2000]: items(s, chunk))

    from sqlalchemy import select, update

    def correct(session):
        chosen = session.scalars(select(Annotation.id).where(Annotation.image_id % 500 == 0)).all()
        session.execute(update(Annotation).where(Annotation.id.in_(chosen)).values(origin="corrected"))
        session.execute(update(Landmark).where(Landmark.annotation_id.in_(chosen), Landmark.idx == 0)
                        .values(corrected=True))
    project.write(correct)
    project.close()


def bench_open(path: Path, runs: int, images: int) -> dict:
    results = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", OPEN_CHILD, str(path)], capture_output=True, text=True,
                             check=True,
                             env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        rows, open_s, total_s = out.stdout.split()
        assert int(rows) == images  # every row known at once
        results.append((float(open_s), float(total_s)))
    return {"open_first_page_s": min(r[0] for r in results), "with_imports_s": min(r[1] for r in results)}


def bench_filters(path: Path, runs: int) -> list[tuple[str, int, float, float]]:
    from deepmark.core.store import Project
    from deepmark.core.store.images import ImageFilter

    filters = [
        ("none", ImageFilter()),
        ("status new", ImageFilter(statuses=("new",))),
        ("needs review", ImageFilter(statuses=("new", "predicted", "in_review"))),
        ("category 7", ImageFilter(category_id=7)),
        ("lowest score < 0.1", ImageFilter(min_score_below=0.1)),
        ("has corrections", ImageFilter(has_corrections=True)),
        ("name contains '12345'", ImageFilter(name_contains="12345")),
        ("name matches nothing", ImageFilter(name_contains="zzz")),
        ("new + category 7 + score < 0.5", ImageFilter(statuses=("new",), category_id=7, min_score_below=0.5)),
    ]
    out = []
    with Project.open(path) as project:
        for name, flt in filters:
            pages, lists = [], []
            for _ in range(runs):
                started = time.perf_counter()
                ids = project.images.ids(filter=flt)
                lists.append(time.perf_counter() - started)
                started = time.perf_counter()
                project.images.get_many(ids[:256])
                pages.append(time.perf_counter() - started)
            out.append((name, len(ids), 1000 * statistics.median(lists), 1000 * statistics.median(pages)))
    return out


def bench_thumbnails(work: Path, runs: int) -> dict:
    import cv2

    from deepmark.core.imaging.read import read_image
    from deepmark.core.studio.thumbnails import ThumbnailCache, make_thumbnail

    rng = np.random.default_rng(1)
    big = (rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    photo = cv2.resize(big, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    path = work / "photo.jpg"
    cv2.imwrite(str(path), photo, [cv2.IMWRITE_JPEG_QUALITY, 92])

    def timed(fn):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)

    cache = ThumbnailCache(work / "thumbs")
    cache.get(path)
    return {"file_mb": path.stat().st_size / 1e6, "reduced_ms": timed(lambda: make_thumbnail(path)),
            "full_ms": timed(lambda: read_image(path)),
            "disk_hit_ms": timed(lambda: ThumbnailCache(work / "thumbs").get(path))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        path = work / "big.deepmark"
        started = time.perf_counter()
        build_project(path, args.images)
        print(f"built {args.images:,} images in {time.perf_counter() - started:.1f} s "
              f"({path.stat().st_size / 1e6:.0f} MB)")
        opened = bench_open(path, args.runs, args.images)
        print(f"open + every row's id + first page painted: {opened['open_first_page_s']:.3f} s "
              f"({opened['with_imports_s']:.3f} s with Python imports)")
        print("| filter | matches | all ids ms | first page ms |\n|---|---|---|---|")
        for name, count, list_ms, page_ms in bench_filters(path, args.runs):
            print(f"| {name} | {count:,} | {list_ms:.1f} | {page_ms:.1f} |")
        thumbs = bench_thumbnails(work, args.runs)
        print(f"thumbnail of a 4000×3000 JPEG ({thumbs['file_mb']:.1f} MB): reduced decode "
              f"{thumbs['reduced_ms']:.1f} ms, full decode {thumbs['full_ms']:.1f} ms, disk-cache hit "
              f"{thumbs['disk_hit_ms']:.2f} ms")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}")


if __name__ == "__main__":
    main()
