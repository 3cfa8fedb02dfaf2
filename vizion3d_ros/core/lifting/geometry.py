"""Per-object 3D statistics: centroid and axis-aligned box."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObjectGeometry:
    """Centroid and axis-aligned box of an object's points, in the frame of the points given."""

    centroid: np.ndarray  # (3,)
    box_min: np.ndarray  # (3,)
    box_max: np.ndarray  # (3,)
    point_count: int

    @property
    def box_center(self) -> np.ndarray:
        """Centre of the axis-aligned box."""
        return (self.box_min + self.box_max) / 2.0

    @property
    def box_size(self) -> np.ndarray:
        """Edge lengths of the axis-aligned box."""
        return self.box_max - self.box_min

    @classmethod
    def empty(cls) -> ObjectGeometry:
        """Geometry of an object with no points (all zeros)."""
        z = np.zeros(3)
        return cls(centroid=z, box_min=z, box_max=z, point_count=0)


def object_geometry(points: np.ndarray, indices: np.ndarray) -> ObjectGeometry:
    """Statistics of ``points[indices]`` (float64 accumulation; the indices must be finite points).

    The selection is gathered once (see :func:`gather_rows`) and transposed to ``(3, M)``: reductions
    along a contiguous axis are several times faster than down the columns of an ``(M, 3)`` array.
    """
    if len(indices) == 0:
        return ObjectGeometry.empty()
    cols = gather_rows(points, indices).T.copy()
    return ObjectGeometry(centroid=cols.sum(axis=1, dtype=np.float64) / len(indices),
                          box_min=cols.min(axis=1).astype(np.float64), box_max=cols.max(axis=1).astype(np.float64),
                          point_count=int(len(indices)))


def gather_rows(points: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``points[indices]`` for ``(N, C)`` points, fast also when they are a view into wider records.

    A PointCloud2's x, y, z are such a view (rows 16 or 32 bytes apart). numpy gathers those one short
    strided row at a time, ~10x slower than whole contiguous records: so rows are taken as the records
    they start (every row but the last, whose record may end before the stride does) and cut back to
    ``C`` columns, the last row by plain indexing.
    """
    p = np.asarray(points)
    idx = np.asarray(indices)
    if p.ndim != 2 or len(p) < 2 or p.strides[1] != p.itemsize or not p.flags.aligned or idx.dtype.kind != 'u':
        return p[idx]  # (signed indices may count from the end, which the record view would get wrong)
    row, item = p.strides[0], p.itemsize
    if row <= p.shape[1] * item or row % item:
        return p[idx]  # contiguous rows already (or records not a whole number of items apart)
    records = np.lib.stride_tricks.as_strided(p, shape=(len(p) - 1, row // item), strides=(row, item),
                                              writeable=False)
    last = len(p) - 1
    out = np.take(records, np.minimum(idx, last - 1), axis=0)[:, :p.shape[1]]
    at_last = idx == last
    if at_last.any():
        out[at_last] = p[last]
    return out


def oriented_box(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(center, rotation, extents)`` of the box along the principal axes (PCA) of ``(M, 3)`` points.

    Tighter than the axis-aligned box for objects turned in the frame (a chair at 45 degrees).
    ``rotation`` columns are the covariance eigenvectors by decreasing variance, made right-handed;
    ``extents`` the full point spread along them; ``center`` the middle of that spread (not the mean).
    No points gives zeros and the identity.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(pts) == 0:
        return np.zeros(3), np.eye(3), np.zeros(3)
    mean = pts.mean(axis=0)
    centred = pts - mean
    cov = centred.T @ centred / len(pts)
    _, vecs = np.linalg.eigh(cov)  # ascending eigenvalues
    rot = vecs[:, ::-1].copy()
    if np.linalg.det(rot) < 0:
        rot[:, 2] = -rot[:, 2]
    local = centred @ rot
    lo, hi = local.min(axis=0), local.max(axis=0)
    return mean + rot @ ((lo + hi) / 2.0), rot, hi - lo
