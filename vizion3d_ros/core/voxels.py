"""Voxel coordinates packed into one int64 key: the index shared by the 3D label propagation and the map.

21 bits per axis (+-1M voxels: a 10 km extent at 1 cm), x in the high bits, so that sorting keys sorts
voxels by x, then y, then z.
"""
from __future__ import annotations

import numpy as np

BITS = 21
BIAS = 1 << (BITS - 1)
AXIS = (1 << BITS) - 1
#: The 26 neighbours of a voxel, as cell offsets.
NEIGHBOURS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                       if (i, j, k) != (0, 0, 0)], np.int64)


def cell_keys(cells: np.ndarray) -> np.ndarray:
    """Keys of integer voxel cells ``(..., 3)`` (each within +-2**20)."""
    c = cells + BIAS
    return (c[..., 0] << (2 * BITS)) | (c[..., 1] << BITS) | c[..., 2]


def key_cells(keys: np.ndarray) -> np.ndarray:
    """The cells ``(N, 3)`` int64 of keys: the inverse of :func:`cell_keys`."""
    return np.stack([(keys >> (2 * BITS)) & AXIS, (keys >> BITS) & AXIS, keys & AXIS], axis=1) - BIAS
