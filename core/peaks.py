"""Heatmap smoothing and peak finding: DeepMark++ heatmap rescoring and CenterNet's 3×3 max-pool NMS.

A peak is a pixel whose (optionally smoothed) value is >= every 8-connected neighbour: a 3×3 max-pool
with padding that keeps plateaus, as CenterNet's ``heat * (hmax == heat)`` does. OpenCV's separable
filter and dilation do the per-pixel work on all channels at once, stacked into one tall image with a
separator row between channels (zero for the smoothing, -inf for the max-pool) so they never bleed
into each other. Channels whose maximum is below the score floor are skipped.
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


def find_peaks(
    heat: np.ndarray, min_score: float | np.ndarray, sigma: float = 0.0, strict: bool = False
) -> Peaks:
    """All local maxima of ``heat`` (C, H, W) float32, smoothed with σ first, scoring >= ``min_score``
    (> when ``strict``); ``min_score`` is a number or one per channel (C,). A floor <= 0 keeps every
    local maximum of that channel. Grouped by channel, ascending; within a channel in raster order."""
    heat = np.asarray(heat, np.float32)
    num_channels, height, width = heat.shape
    floors = np.broadcast_to(np.asarray(min_score, np.float32), (num_channels,))
    if (floors > 0).any():
        # Smoothing never raises a channel's maximum, so a channel below its floor has no peak.
        channel_max = heat.reshape(num_channels, -1).max(axis=1)
        active = np.flatnonzero((channel_max >= floors) | (floors <= 0))
    else:
        active = np.arange(num_channels)
    stack = np.empty((len(active), height + 1, width), np.float32)
    for slot, channel in enumerate(active):
        stack[slot, :height] = heat[channel]
    stack[:, height] = 0.0  # zero padding between channels for the smoothing
    w = gaussian_weights(sigma)
    if w is not None and len(active):
        flat2d = cv2.sepFilter2D(stack.reshape(-1, width), cv2.CV_32F, w, w, borderType=cv2.BORDER_CONSTANT)
        stack = flat2d.reshape(stack.shape)
    stack[:, height] = -np.inf  # -inf padding for the 3×3 max-pool, as CenterNet's max_pool2d pads
    floor = floors[active, None, None]
    mask = (stack > floor if strict else stack >= floor).reshape(-1)
    flat = stack.reshape(-1)
    if len(active):
        mask &= flat >= cv2.dilate(stack.reshape(-1, width), _KERNEL_3X3).reshape(-1)
    idx = np.flatnonzero(mask)
    slot, rem = np.divmod(idx, (height + 1) * width)
    y, x = np.divmod(rem, width)
    return Peaks(active[slot], y, x, flat[idx])


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
