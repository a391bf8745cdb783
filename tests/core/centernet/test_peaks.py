"""``find_peaks`` only smooths and pools the rows that can hold a peak: it must find exactly what a
plain dense 3×3 smoothing (zero padding) and 3×3 max-pool (-inf padding) over every pixel finds."""

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmark.core.centernet.peaks import find_peaks, gaussian_weights


def dense_peaks(heat: np.ndarray, floors: np.ndarray, sigma: float, strict: bool) -> set:
    """Every pixel, one channel at a time, with explicit padding: the definition, not the fast path. The
    smoothing is the same float32 OpenCV filter, so that near-ties round the same way."""
    found = set()
    w = gaussian_weights(sigma)
    for c, channel in enumerate(heat):
        height, width = channel.shape
        if w is not None:
            channel = cv2.sepFilter2D(np.pad(channel, 1), cv2.CV_32F, w, w)[1:-1, 1:-1]
        pooled = np.pad(channel, 1, constant_values=-np.inf)
        neighbourhood = np.max([pooled[i : i + height, j : j + width] for i in range(3) for j in range(3)], axis=0)
        above = channel > floors[c] if strict else channel >= floors[c]
        for y, x in zip(*np.nonzero(above & (channel >= neighbourhood)), strict=True):
            found.add((c, int(y), int(x)))
    return found


@st.composite
def heatmaps(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    channels, height, width = draw(st.integers(1, 5)), draw(st.integers(1, 24)), draw(st.sampled_from([1, 7, 8, 16]))
    heat = rng.random((channels, height, width), dtype=np.float32) * draw(st.sampled_from([0.05, 0.3, 1.0]))
    for _ in range(draw(st.integers(0, 6))):  # a few sharp blobs, as a network's peaks
        c, y, x = rng.integers(channels), rng.integers(height), rng.integers(width)
        heat[c, y, x] = rng.uniform(0.2, 1.0)
    if draw(st.booleans()):
        heat = np.round(heat, 1)  # plateaus and ties
    return heat


@settings(max_examples=300, deadline=None)
@given(heat=heatmaps(), sigma=st.sampled_from([0.0, 0.5, 1.0, 2.5]), strict=st.booleans(),
       floor=st.sampled_from([-1.0, 0.0, 0.05, 0.1, 0.3, 0.95]), per_channel=st.booleans())
def test_banded_peaks_equal_dense_peaks(heat, sigma, strict, floor, per_channel):
    floors = np.full(len(heat), floor, np.float32)
    if per_channel:
        floors = (floors + np.linspace(0.0, 0.2, len(heat))).astype(np.float32)
    peaks = find_peaks(heat, floors if per_channel else floor, sigma, strict)
    got = {(int(c), int(y), int(x)) for c, y, x in zip(peaks.channel, peaks.y, peaks.x, strict=True)}
    assert got == dense_peaks(heat, floors, sigma, strict)
    order = np.lexsort((peaks.x, peaks.y, peaks.channel))
    assert np.array_equal(order, np.arange(len(peaks)))  # channel-major, raster order within a channel


def test_peaks_keep_smoothed_scores():
    heat = np.zeros((2, 9, 9), np.float32)
    heat[1, 4, 4] = 1.0
    peaks = find_peaks(heat, 0.1, sigma=1.0)
    w = gaussian_weights(1.0)
    assert list(peaks.channel) == [1] and (peaks.y[0], peaks.x[0]) == (4, 4)
    assert np.isclose(peaks.score[0], w[1] * w[1])


def test_no_hot_row_gives_no_peak():
    peaks = find_peaks(np.full((3, 5, 8), 0.05, np.float32), 0.1, sigma=1.0)
    assert len(peaks) == 0 and peaks.channel.dtype == np.int64
