"""Heatmap smoothing and peak finding: DeepMark++ heatmap rescoring and CenterNet's 3×3 max-pool NMS.

A peak is a pixel whose (optionally smoothed) value is >= every 8-connected neighbour: a 3×3 max-pool
with padding that keeps plateaus, as CenterNet's ``heat * (hmax == heat)`` does. OpenCV's separable
filter and dilation do the per-pixel work on all channels at once, stacked into one tall image with
separator rows (zero for the smoothing, -inf for the max-pool) so channels never bleed into each other;
only the rows near values above the score floor are stacked (see ``find_peaks``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_KERNEL_3X3 = np.ones((3, 3), np.uint8)


@dataclass(frozen=True, eq=False)
class Peaks:
    """Local maxima of a (C, H, W) heatmap (order depends on the producer; see each function).

    ``channel``, ``y``, ``x`` (N,) int64 map pixels; ``score`` (N,) float32 (smoothed when a σ was given).
    """

    channel: np.ndarray
    y: np.ndarray
    x: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.score)

    def take(self, index: np.ndarray) -> Peaks:
        return Peaks(self.channel[index], self.y[index], self.x[index], self.score[index])


def gaussian_weights(sigma: float) -> np.ndarray | None:
    """(3,) normalised 1-D weights of a 3×3 separable Gaussian of σ (map pixels); None for σ ≈ 0.

    The 2-D kernel is their outer product and sums to 1, so smoothing never raises a heatmap's maximum.
    """
    if sigma < 1e-3:
        return None
    w = np.exp(-np.array([1.0, 0.0, 1.0]) / (2.0 * sigma * sigma))
    return (w / w.sum()).astype(np.float32)


def smooth_heatmap(heat: np.ndarray, sigma: float) -> np.ndarray:
    """(C, H, W) → (C, H, W) float32: each channel convolved with the 3×3 Gaussian of σ, zero padding.
    Returns ``heat`` itself when σ ≈ 0 (for display; ``find_peaks`` smooths internally)."""
    w = gaussian_weights(sigma)
    if w is None:
        return heat
    out = np.empty(heat.shape, np.float32)
    for c in range(heat.shape[0]):
        cv2.sepFilter2D(np.asarray(heat[c], np.float32), cv2.CV_32F, w, w, dst=out[c],
                        borderType=cv2.BORDER_CONSTANT)
    return out


def _rows_holding(mask: np.ndarray) -> np.ndarray:
    """(C, H, W) bool → (C, H) bool: rows with at least one True. ORs 8 bytes at a time when W allows,
    as numpy's reduction along a short last axis is several times slower than a full pass."""
    num_channels, height, width = mask.shape
    if width % 8:
        return mask.any(axis=2)
    words = np.ascontiguousarray(mask).view(np.uint64).reshape(num_channels * height, width // 8)
    found = words[:, 0].copy()
    for k in range(1, words.shape[1]):
        found |= words[:, k]
    return (found != 0).reshape(num_channels, height)


def _dilate_rows(hot: np.ndarray, reach: int) -> np.ndarray:
    """(C, H) uint8 → (C, H) uint8: each hot row spread to ``reach`` rows either side, within its channel."""
    if reach == 0:
        return hot
    # cv2 sees (C, H) as an image, so a (1, 2r+1) kernel spreads along H and never across channels
    return cv2.dilate(hot, np.ones((1, 2 * reach + 1), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)


def find_peaks(
    heat: np.ndarray, min_score: float | np.ndarray, sigma: float = 0.0, strict: bool = False
) -> Peaks:
    """All local maxima of ``heat`` (C, H, W) float32, smoothed with σ first, scoring >= ``min_score``
    (> when ``strict``); ``min_score`` is a number or one per channel (C,). A floor <= 0 keeps every
    local maximum of that channel. Grouped by channel, ascending; within a channel in raster order.

    Only the rows that can hold a peak are smoothed and max-pooled. The smoothing's weights are >= 0 and
    sum to 1, so a smoothed value >= floor needs a raw value >= floor in its 3×3 window: a peak lies
    within 1 row of a *hot* row (one holding a raw value >= floor; within 0 rows without smoothing).
    Those rows are copied as runs into one tall image, with one more raw row either side when smoothing
    (the vertical filter reads it), and a separator row before each run: zero for the smoothing, like
    the zero padding at the map's edge, then -inf for the max-pool. Every row left out is below the
    floor everywhere, so it can never beat a peak in the max-pool; the outer rows of a run are smoothed
    with a zero in place of the row beyond, which leaves them below the floor as well (floor > 0).
    """
    heat = np.asarray(heat, np.float32)
    num_channels, height, width = heat.shape
    floors = np.broadcast_to(np.asarray(min_score, np.float32), (num_channels,))
    w = gaussian_weights(sigma)
    uniform = floors.min() == floors.max()
    # a number compares about three times as fast as a broadcast (C, 1, 1) array
    hot_pixels = heat >= floors[0] if uniform else heat >= floors[:, None, None]
    hot = _rows_holding(hot_pixels).view(np.uint8)  # (C, H)
    channel, row = np.nonzero(_dilate_rows(hot, 2) if w is not None else hot)
    if len(row) == 0:
        empty = np.zeros(0, np.int64)
        return Peaks(empty, empty, empty, np.zeros(0, np.float32))
    run_start = np.empty(len(row), bool)
    run_start[0] = True
    run_start[1:] = (channel[1:] != channel[:-1]) | (row[1:] != row[:-1] + 1)
    position = np.arange(len(row)) + np.cumsum(run_start)  # stack row of each copied row
    total = len(row) + int(run_start.sum()) + 1  # + a separator before each run and one at the end
    stack = np.zeros((total, width), np.float32)
    # take() on the flat row index copies whole rows, about twice as fast as heat[channel, row]
    stack[position] = heat.reshape(-1, width).take(channel * height + row, axis=0)
    if w is not None:
        stack = cv2.sepFilter2D(stack, cv2.CV_32F, w, w, borderType=cv2.BORDER_CONSTANT)
    separator = np.ones(total, bool)
    separator[position] = False
    stack[separator] = -np.inf
    if uniform:  # one floor: compare with a number, no per-row floor array
        mask = stack > floors[0] if strict else stack >= floors[0]
    else:
        row_floor = np.full((total, 1), np.inf, np.float32)
        row_floor[position, 0] = floors[channel]
        mask = stack > row_floor if strict else stack >= row_floor
    mask &= stack >= cv2.dilate(stack, _KERNEL_3X3)
    idx = np.flatnonzero(mask)
    stack_row, x = np.divmod(idx, width)
    source = np.zeros(total, np.int64)
    source[position] = np.arange(len(row))
    copied = source[stack_row]
    return Peaks(channel[copied].astype(np.int64), row[copied].astype(np.int64), x, stack.reshape(-1)[idx])


def top_k_overall(peaks: Peaks, k: int) -> Peaks:
    """The ``k`` highest-scoring peaks over all channels, best first."""
    if len(peaks) > k:
        idx = np.argpartition(-peaks.score, k - 1)[:k]
    else:
        idx = np.arange(len(peaks))
    idx = idx[np.argsort(-peaks.score[idx], kind="stable")]
    return peaks.take(idx)


def top_k_per_channel(peaks: Peaks, k: int) -> Peaks:
    """At most ``k`` peaks per channel (the best ones). Input and output grouped by channel in
    ascending order (as ``find_peaks`` gives them); within a channel the order is unspecified."""
    counts = np.bincount(peaks.channel) if len(peaks) else np.zeros(0, np.int64)
    heavy = np.flatnonzero(counts > k)
    if len(heavy) == 0:
        return peaks
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    keep = np.ones(len(peaks), bool)
    for channel in heavy:  # one partition per over-full channel, not per peak
        lo, hi = starts[channel], starts[channel] + counts[channel]
        worst = np.argpartition(-peaks.score[lo:hi], k - 1)[k:]
        keep[lo + worst] = False
    return peaks.take(np.flatnonzero(keep))
