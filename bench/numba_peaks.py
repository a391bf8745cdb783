"""Experiment, not part of the product: peak finding as a compiled numba kernel, to measure what the
decode overhead of the four techniques would be without numpy's and OpenCV's per-call and per-row costs.

    .venv/bin/pip install numba          # not a project dependency
    .venv/bin/python bench/numba_peaks.py [--runs 300] [--heads runs/default/val-fp32/heads]

Issue 2 asks for vectorised numpy only, so ``deepmark.core.centernet.peaks.find_peaks`` stays as it is;
this script swaps it for ``find_peaks_compiled`` within its own process, checks both find the same peaks,
and times the baseline against all four techniques + NMS (the warm protocol of ``bench/decode.py``).
Results are in ``docs/benchmarks.md`` (decode section).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numba
import numpy as np
from decode import SETTINGS, make_heads, summary, time_settings  # bench/decode.py, beside this script

import deepmark.core.centernet.decode as core_decode
from deepmark.core.centernet.peaks import Peaks, _rows_holding, find_peaks, gaussian_weights
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.formats.heads_file import load_heads


@numba.njit(cache=True)
def _peaks_kernel(heat, hot_rows, floor, w_side, w_mid, smooth, strict, out_c, out_y, out_x, out_s):
    """The definition of ``find_peaks`` (one floor), loop by loop, given the hot rows (C, H) bool (found
    with numpy, as ``find_peaks`` does); writes the peaks, returns their count."""
    num_channels, height, width = heat.shape
    count = 0
    candidate = np.zeros(height, np.bool_)
    smoothed = np.empty((height, width), np.float32)
    across = np.empty((height, width), np.float32)  # the horizontal pass
    zero = np.float32(0.0)
    for c in range(num_channels):
        hot = hot_rows[c]
        if not hot.any():
            continue
        reach = 1 if smooth else 0
        for y in range(height):
            candidate[y] = False
            for d in range(-reach, reach + 1):
                if 0 <= y + d < height and hot[y + d]:
                    candidate[y] = True
        if smooth:
            for y in range(height):
                if candidate[y] or (y > 0 and candidate[y - 1]) or (y < height - 1 and candidate[y + 1]):
                    for x in range(width):
                        left = heat[c, y, x - 1] if x > 0 else zero
                        right = heat[c, y, x + 1] if x < width - 1 else zero
                        across[y, x] = w_side * left + w_mid * heat[c, y, x] + w_side * right
            for y in range(height):
                if candidate[y]:
                    for x in range(width):
                        up = across[y - 1, x] if y > 0 else zero
                        down = across[y + 1, x] if y < height - 1 else zero
                        smoothed[y, x] = w_side * up + w_mid * across[y, x] + w_side * down
        else:
            for y in range(height):
                if candidate[y]:
                    for x in range(width):
                        smoothed[y, x] = heat[c, y, x]
        for y in range(height):
            if not candidate[y]:
                continue
            for x in range(width):
                value = smoothed[y, x]
                if (strict and not value > floor) or (not strict and not value >= floor):
                    continue
                is_peak = True
                for dy in range(-1, 2):  # rows that are not candidates are below the floor: never higher
                    if 0 <= y + dy < height and candidate[y + dy]:
                        for dx in range(-1, 2):
                            if 0 <= x + dx < width and smoothed[y + dy, x + dx] > value:
                                is_peak = False
                if is_peak:
                    out_c[count], out_y[count], out_x[count], out_s[count] = c, y, x, value
                    count += 1
    return count


def find_peaks_compiled(heat: np.ndarray, min_score, sigma: float = 0.0, strict: bool = False) -> Peaks:
    """Same contract as ``deepmark.core.centernet.peaks.find_peaks`` for one floor over all channels."""
    heat = np.ascontiguousarray(heat, np.float32)
    w = gaussian_weights(sigma)
    out = [np.empty(heat.size, np.int64) for _ in range(3)] + [np.empty(heat.size, np.float32)]
    floor = np.float32(np.max(min_score))
    count = _peaks_kernel(heat, _rows_holding(heat >= floor), floor, np.float32(w[0] if w is not None else 0.0),
                          np.float32(w[1] if w is not None else 1.0), w is not None, strict, *out)
    return Peaks(*(a[:count] for a in out))


def _peak_set(peaks: Peaks) -> set:
    return set(zip(peaks.channel.tolist(), peaks.y.tolist(), peaks.x.tolist(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--heads", default="runs/default/val-fp32/heads", help="saved raw heads of the model")
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    grouping = load_grouping("semantic62", taxonomy)
    start = time.perf_counter()
    find_peaks_compiled(np.zeros((1, 8, 8), np.float32), 0.1, 0.9, True)
    print(f"first call (compiles unless cached): {time.perf_counter() - start:.2f} s")
    cases = [("scene 64×64", make_heads("scene", 256, 20, taxonomy, grouping)),
             ("scene 128×128", make_heads("scene", 512, 20, taxonomy, grouping))]
    saved = sorted(Path(args.heads).glob("*.npz"))[:50]
    if saved:
        cases.insert(0, ("model 64×64", [load_heads(p).heads for p in saved]))
    differences = 0
    for _, heads in cases:
        for h in heads[:10]:
            for sigma in (0.0, 0.9):
                ours = _peak_set(find_peaks(h.hm_hp, 0.1, sigma, True))
                differences += len(ours ^ _peak_set(find_peaks_compiled(h.hm_hp, 0.1, sigma, True)))
    print(f"peaks found by one implementation only: {differences}")
    settings = {name: SETTINGS[name] for name in ("baseline", "all four + NMS")}
    print("| heads | peak finding | baseline ms | all four + NMS ms | added |")
    print("|---|---|---|---|---|")
    for implementation, function in (("numpy + OpenCV", find_peaks), ("numba kernel", find_peaks_compiled)):
        core_decode.find_peaks = function
        for label, heads in cases:
            medians = {k: summary(v)[0] for k, v in time_settings(heads, settings, args.runs, taxonomy,
                                                                     grouping).items()}
            base, full = medians["baseline"], medians["all four + NMS"]
            print(f"| {label} | {implementation} | {base:.2f} | {full:.2f} | {full / base - 1:+.0%} |", flush=True)


if __name__ == "__main__":
    main()
