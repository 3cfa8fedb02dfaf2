"""Per-instance voxel count, centroid and axis-aligned box over a labelled map, in one compiled pass.

The live map describes every object in every map_objects message; with numpy that is a bincount per
axis plus ``np.minimum.at`` / ``np.maximum.at`` (unbuffered, ~25 ns an element: ~7 ms for a 300k-voxel
map), here one loop over the voxels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..jit import array, kernel


@dataclass(frozen=True)
class Extents:
    """Per label value (index): voxels, centroid, box corners; a label without voxels has count 0, zeros."""

    count: np.ndarray  # (L,) int64
    centroid: np.ndarray  # (L, 3) float64
    low: np.ndarray  # (L, 3) float64
    high: np.ndarray  # (L, 3) float64


def label_extents(labels: np.ndarray, positions: np.ndarray, num_labels: int) -> Extents:
    """Extents of the voxels of each label ``1 .. num_labels - 1`` (label 0 and labels out of range skipped)."""
    labels = np.ascontiguousarray(labels, np.int64)
    positions = np.asarray(positions, np.float32)
    if positions.shape != (len(labels), 3):
        raise ValueError(f'positions must be ({len(labels)}, 3), got {positions.shape}')
    n = max(int(num_labels), 1)
    count = np.zeros(n, np.int64)
    total = np.zeros((n, 3))
    low = np.full((n, 3), np.inf)
    high = np.full((n, 3), -np.inf)
    _extents(labels, positions, count, total, low, high)
    seen = count > 0
    centroid = np.where(seen[:, None], total / np.maximum(count, 1)[:, None], 0.0)
    return Extents(count, centroid, np.where(seen[:, None], low, 0.0), np.where(seen[:, None], high, 0.0))


def _sig_extents():
    from numba import types

    return types.void(array('int64', 1), array('float32', 2), array('int64', 1, True), array('float64', 2, True),
                      array('float64', 2, True), array('float64', 2, True))


@kernel(_sig_extents)
def _extents(labels, positions, count, total, low, high):  # pragma: no cover - compiled
    """Accumulate each labelled voxel into its label's count, sum, minimum and maximum."""
    n = count.size
    for i in range(labels.size):
        lab = labels[i]
        if lab <= 0 or lab >= n:
            continue
        count[lab] += 1
        for a in range(3):
            v = np.float64(positions[i, a])
            total[lab, a] += v
            if v < low[lab, a]:
                low[lab, a] = v
            if v > high[lab, a]:
                high[lab, a] = v
