"""Annotation-store benchmark (a script, not a test): the speed targets of the store.

    .venv/bin/python bench/store.py [--images 10000] [--big 100000] [--edits 300] [--workdir DIR] [--postgres-url URL]

1. import N DeepFashion2 annotation files (``image/`` + ``annos/``, 96×96 synthetic garments, 1-3 items
   each) into a new SQLite project: target ≤ 20 s for 10,000;
2. export them (status accepted, images copied, DF2 JSON + COCO json, train/val split): target ≤ 10 s;
   also with hard links and no COCO, and the JSON alone into a RAM folder (the code's own cost), plus
   the time to create one small file in the work folder at that moment (the disk's share);
3. one landmark correction committed (own transaction + edit log entry), median over ``--edits``:
   target ≤ 5 ms on SQLite (also measured with ``synchronous=FULL``, and on PostgreSQL with a URL);
4. open a project of ``--big`` images (90 % reviewed) and list the first page of "needs review":
   target ≤ 0.5 s, measured in a fresh process (imports excluded, and included).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_dataset(root: Path, n: int, distinct: int = 100) -> None:
    """``n`` DF2 files: ``distinct`` rendered scenes, repeated under new numbers (each image file made
    unique by a trailing byte block after the JPEG end marker, so every image has its own hash)."""
    from deepmark.core.synthetic import SynthConfig, generate_dataset

    seed_dir = root / "seed"
    generate_dataset(seed_dir, distinct, seed=0, config=SynthConfig(image_size=(96, 96), max_items=3))
    (root / "train" / "image").mkdir(parents=True)
    (root / "train" / "annos").mkdir(parents=True)
    images = [(seed_dir / "image" / f"{i:06d}.jpg").read_bytes() for i in range(1, distinct + 1)]
    docs = [json.loads((seed_dir / "annos" / f"{i:06d}.json").read_text()) for i in range(1, distinct + 1)]
    for k in range(1, n + 1):
        src = (k - 1) % distinct
        (root / "train" / "image" / f"{k:06d}.jpg").write_bytes(images[src] + k.to_bytes(4, "big"))
        doc = dict(docs[src], pair_id=k)
        (root / "train" / "annos" / f"{k:06d}.json").write_text(json.dumps(doc))
    shutil.rmtree(seed_dir)


def file_create_ms(folder: Path, count: int = 2000) -> float:
    """Milliseconds to create one small file in ``folder`` right now (the floor of an export's cost)."""
    probe = folder / "probe"
    probe.mkdir()
    started = time.perf_counter()
    for k in range(count):
        (probe / f"{k}.json").write_text("x" * 600)
    elapsed = time.perf_counter() - started
    shutil.rmtree(probe)
    return 1000 * elapsed / count


def bench_import_export(work: Path, n: int) -> dict:
    from deepmark.core.store import Project
    from deepmark.core.store.interchange import export_dataset, import_df2

    make_dataset(work / "df2", n)
    project = Project.create(work / "import.deepmark", root=work)
    started, cpu = time.perf_counter(), time.process_time()
    report = import_df2(project, work / "df2", status="accepted")
    import_s, import_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    assert not report.errors, report.errors[:3]
    started, cpu = time.perf_counter(), time.process_time()
    exported = export_dataset(project, work / "export", val_fraction=0.1)
    export_s, export_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    export_dataset(project, work / "export-nococo", val_fraction=0.1, coco=False, images="hardlink")
    export_light_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as memory:
        started = time.perf_counter()
        export_dataset(project, Path(memory) / "export", val_fraction=0.1, images="none")
        export_memory_s = time.perf_counter() - started
    project.close()
    return {"images": report.images_added, "items": report.items_added, "import_s": import_s,
            "import_cpu_s": import_cpu_s, "export_s": export_s, "export_cpu_s": export_cpu_s,
            "export_hardlink_no_coco_s": export_light_s,
            "export_json_only_in_memory_s": export_memory_s, "exported": sum(exported.images.values()),
            "file_create_ms": file_create_ms(work)}


def bench_edits(work: Path, edits: int, target: str | None = None, synchronous: str = "NORMAL") -> dict:
    import numpy as np

    from deepmark.core.store import ItemData, Project

    image_file = next((work / "df2" / "train" / "image").glob("*.jpg"))
    project = Project.create(target or work / f"edits-{synchronous}.deepmark", root=work, synchronous=synchronous)
    image = project.images.add(image_file)
    landmarks = np.column_stack([np.arange(39.0), np.arange(39.0), np.full(39, 2.0)])
    receipt = project.annotations.add_item(image.id, ItemData(category_id=4, box=np.array([0, 0, 90, 90.0]),
                                                              landmarks=landmarks), origin="predicted")
    version, times = receipt.image_version, []
    for k in range(edits):
        started = time.perf_counter()  # wall time: a commit waits on the disk, not only the CPU
        receipt = project.annotations.set_landmark(receipt.annotation_id, k % 39, x=float(k % 90), y=1.5,
                                                   expected_version=version)
        times.append(time.perf_counter() - started)
        version = receipt.image_version
    project.close()
    return {"median_ms": 1000 * statistics.median(times), "p95_ms": 1000 * float(np.percentile(times, 95))}


OPEN_CHILD = """
import sys, time
t0 = time.perf_counter()
from deepmark.core.store import Project
t1 = time.perf_counter()
project = Project.open(sys.argv[1])
page = project.images.needs_review(limit=50)
t2 = time.perf_counter()
print(len(page), t2 - t1, t2 - t0)
"""


def bench_open(work: Path, n: int) -> dict:
    from sqlalchemy import insert

    from deepmark.core.store import Project
    from deepmark.core.store.models import Image, utc_now

    path = work / "big.deepmark"
    project = Project.create(path, root=work)
    now = utc_now()
    rows = [{"path": f"images/{k:07d}.jpg", "content_hash": f"{k:064x}", "size_bytes": 50_000, "width": 640,
             "height": 480, "status": "accepted" if k % 10 else "new", "created_at": now, "updated_at": now,
             "version": 1} for k in range(n)]
    for start in range(0, n, 20_000):
        project.write(lambda s, chunk=rows[start : start + 20_000]: s.execute(insert(Image), chunk))
    project.close()
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", OPEN_CHILD, str(path)], capture_output=True, text=True,
                             check=True)
        count, open_list, with_imports = out.stdout.split()
        runs.append((float(open_list), float(with_imports)))
    assert int(count) == 50
    return {"images": n, "open_and_list_s": min(r[0] for r in runs), "with_imports_s": min(r[1] for r in runs),
            "db_mb": path.stat().st_size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--edits", type=int, default=300)
    parser.add_argument("--workdir", help="folder to hold the temporary data (default: the system's temp folder)")
    parser.add_argument("--postgres-url", help="also time landmark corrections on this (empty) database")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="deepmark-bench-store-", dir=args.workdir))
    try:
        results = {"import_export": bench_import_export(work, args.images)}
        print(json.dumps(results["import_export"]), flush=True)
        results["edit_sqlite_normal"] = bench_edits(work, args.edits)
        results["edit_sqlite_full"] = bench_edits(work, args.edits, synchronous="FULL")
        if args.postgres_url:
            results["edit_postgresql"] = bench_edits(work, args.edits, target=args.postgres_url)
        print(json.dumps({k: v for k, v in results.items() if k.startswith("edit")}), flush=True)
        results["open"] = bench_open(work, args.big)
        print(json.dumps(results["open"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
