"""Benchmark of ``deepmark.core.centernet.decode`` (a script, not a test): median and p95 decode time per image.

    .venv/bin/python bench/decode.py [--runs 200] [--torch] [--heads DIR] [--cold] [--kinds scene noise model]

Maps of 64×64 and 128×128 (inputs 256² and 512²), 13 classes, the ``semantic62`` grouping (62 groups),
K = 100. Two kinds of heads:
- *scene*: simulated network output for 1–5 garments (``deepmark.core.synthetic.simulate``: Gaussian peaks at 0.9,
  background noise up to 0.05, regressions off by up to ±1.5 map px), a new scene every 10 runs;
- *noise*: every head uniform random in [0, 1] (the worst case: thousands of peaks per channel).
Settings: the baseline (score threshold 0.1), each DeepMark++ technique alone, all four + NMS, and the
CenterNet-equivalent setting (score floor 0, all K candidates), timed interleaved run by run. The rows
leave out the heads check (shapes, finite values, heatmap range), which the decoder runs once per heads
object; the row "baseline + heads check" pays it on every run, so the check's cost is measured in the same
loop. With ``--torch``, CenterNet's own ``multi_pose_decode`` (re-implemented in
``bench/centernet_torch_decode.py``) is one more setting of the same interleaved loop, on the same heads,
so every ratio to it is between measurements of the same moments.
With ``--heads DIR``, a third kind: real network outputs saved by ``deepmark predict --heads``.
Caches: by default each timed decode follows an untimed decode of the same heads and setting (warm, as
in a quick run of slider moves); with ``--cold`` a 32 MiB write evicts the CPU caches before each
timed decode instead (as after the canvas repaint that comes between two slider moves).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from deepmark.core.centernet import decode as decode_module
from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.formats.heads_file import load_heads
from deepmark.core.synthetic.simulate import random_scene, simulated_heads

SETTINGS = {
    "baseline": PostprocessParams(),
    "(1) center rescoring": PostprocessParams(center_rescoring=True),
    "(2) heatmap rescoring": PostprocessParams(heatmap_rescoring=True),
    "(3) location refinement": PostprocessParams(location_refinement=True),
    "(4) keypoint rescoring": PostprocessParams(keypoint_rescoring=True),
    "all four + NMS": PostprocessParams.all_techniques(),
    "CenterNet-equivalent": PostprocessParams.centernet(),
}


def make_heads(kind: str, input_size: int, count: int, taxonomy, grouping) -> list[RawHeads]:
    rng = np.random.default_rng(input_size)
    size = (input_size, input_size)
    out = []
    for _ in range(count):
        scene = simulated_heads(random_scene(rng, taxonomy, size), size, taxonomy, grouping, rng,
                                noise=0.05, regression_noise=1.5)
        if kind == "noise":
            scene = RawHeads(*(rng.random(a.shape, dtype=np.float32) for a in scene.arrays().values()),
                             scene.image_to_map, scene.image_size)
        out.append(scene)
    return out


def decoders(heads: list[RawHeads], settings: dict[str, PostprocessParams], taxonomy, grouping,
             torch_yardstick: bool) -> dict[str, list]:
    """Setting name → one callable per heads: each DeepMark setting's decode, the baseline with the heads
    check paid every time, and (``torch_yardstick``) CenterNet's torch decode."""
    out = {name: [lambda h=h, params=params: decode_detections(h, params, taxonomy, grouping) for h in heads]
           for name, params in settings.items()}

    def checked(h: RawHeads) -> None:
        decode_module._validated.pop(h, None)  # as for heads never seen: the check runs again
        decode_detections(h, settings["baseline"], taxonomy, grouping)

    out["baseline + heads check"] = [lambda h=h: checked(h) for h in heads]
    if torch_yardstick:
        from centernet_torch_decode import centernet_decoders

        out["CenterNet torch multi_pose_decode"] = centernet_decoders(heads)
    return out


def time_settings(calls: dict[str, list], runs: int, cold: bool = False) -> dict[str, list[float]]:
    """Milliseconds per decode for each setting, the settings interleaved run by run (same heads, same
    moment): a slow spell of the machine then hits every setting alike, so their ratios hold.

    Warm (default): each timed decode follows an untimed decode of the same heads with the same
    setting, so that the heads and the setting's working arrays are in the CPU caches for every setting
    alike. (Timing a setting right after a different one measures the other setting's cache footprint
    instead: the baseline ran 0.04 ms slower right after the CenterNet-equivalent setting, which evicts
    the most.) Cold: a 32 MiB write evicts the caches before each timed decode, for every setting alike.
    """
    for per_heads in calls.values():  # the heads check is cached per heads object; warm it and the caches up
        for call in per_heads:
            call()
    evict = np.zeros(32 << 20, np.uint8) if cold else None
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for i in range(runs):
        for name in names[i % len(names):] + names[: i % len(names)]:  # no setting always runs first
            call = calls[name][i % len(calls[name])]
            if evict is not None:
                evict += 1
            else:
                call()
            start = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def summary(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), float(np.percentile(times, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--torch", action="store_true", help="also time CenterNet's torch decode")
    parser.add_argument("--heads", help="also time saved raw heads (*.npz) of a real model")
    parser.add_argument("--cold", action="store_true", help="evict the CPU caches before each timed decode")
    parser.add_argument("--kinds", nargs="+", choices=["model", "scene", "noise"], default=["model", "scene", "noise"],
                        help="which heads to time (model needs --heads)")
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    grouping = load_grouping("semantic62", taxonomy)
    caches = "cold caches" if args.cold else "warm caches"
    print(f"# decode benchmark, {platform.processor() or platform.machine()}, {args.runs} runs per cell, {caches}")
    print("| heads | map | setting | median ms | p95 ms |")
    print("|---|---|---|---|---|")
    cases = [(kind, size) for kind in ("scene", "noise") if kind in args.kinds for size in (256, 512)]
    if args.heads and "model" in args.kinds:
        cases.insert(0, ("model", 0))
    for kind, input_size in cases:
        if kind == "model":
            heads = [load_heads(p).heads for p in sorted(Path(args.heads).glob("*.npz"))[:50]]
            side = heads[0].map_size[0]
        else:
            heads = make_heads(kind, input_size, max(1, args.runs // 10), taxonomy, grouping)
            side = input_size // 4
        times = time_settings(decoders(heads, SETTINGS, taxonomy, grouping, args.torch), args.runs, cold=args.cold)
        for name, values in times.items():
            med, p95 = summary(values)
            print(f"| {kind} | {side}×{side} | {name} | {med:.2f} | {p95:.2f} |", flush=True)
        baseline = summary(times["baseline"])[0]
        added = summary(times["all four + NMS"])[0] / baseline - 1
        print(f"| {kind} | {side}×{side} | *all four + NMS over the baseline* | {added:+.0%} | |", flush=True)
        check = summary(times["baseline + heads check"])[0] - baseline
        print(f"| {kind} | {side}×{side} | *heads check (difference of medians)* | {check:.2f} | |", flush=True)
        if args.torch:
            torch_ms = summary(times["CenterNet torch multi_pose_decode"])[0]
            for name in ("CenterNet-equivalent", "all four + NMS", "baseline + heads check"):
                print(f"| {kind} | {side}×{side} | *torch ÷ {name}, same run* | "
                      f"{torch_ms / summary(times[name])[0]:.1f}× | |", flush=True)


if __name__ == "__main__":
    main()
