"""Dominant planes (floors, walls, table tops) by RANSAC, vectorised over hypotheses.

Large planes conduct 3D connectivity from an object into everything else that touches them (an
object stands on the floor, the floor meets the wall). Points on them are background for the hidden
part of an object, so the propagation in :mod:`.connectivity` leaves them out.
"""
from __future__ import annotations

import numpy as np


def fit_planes(points: np.ndarray, threshold: float, max_planes: int = 3, min_fraction: float = 0.1,
               hypotheses: int = 256, sample: int = 4000, rng: np.random.Generator | None = None) -> np.ndarray:
    """Up to ``max_planes`` planes ``(n_x, n_y, n_z, d)`` with ``n . p + d = 0`` (unit normal).

    Each plane must hold at least ``min_fraction`` of ``points`` within ``threshold``; planes are found
    greedily on a random subsample, each refined by least squares on its inliers.
    """
    rng = rng or np.random.default_rng(0)
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) > sample:
        pts = pts[rng.choice(len(pts), sample, replace=False)]
    planes = []
    need = max(3, int(min_fraction * len(pts)))
    for _ in range(max_planes):
        if len(pts) < need:
            break
        tri = pts[rng.integers(0, len(pts), size=(hypotheses, 3))]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        norm = np.linalg.norm(n, axis=1)
        ok = norm > 1e-9
        if not ok.any():
            break
        n = n[ok] / norm[ok, None]
        d = -np.einsum('ij,ij->i', n, tri[ok, 0])
        counts = (np.abs(pts @ n.T + d) < threshold).sum(axis=0)
        best = int(np.argmax(counts))
        if counts[best] < need:
            break
        inl = np.abs(pts @ n[best] + d[best]) < threshold
        plane = _refine(pts[inl])
        inl = np.abs(pts @ plane[:3] + plane[3]) < threshold
        if inl.sum() < need:
            break
        planes.append(plane)
        pts = pts[~inl]
    return np.array(planes, dtype=np.float64).reshape(-1, 4)


def _refine(pts: np.ndarray) -> np.ndarray:
    c = pts.mean(axis=0)
    _, _, vt = np.linalg.svd(pts - c, full_matrices=False)
    n = vt[2]
    return np.r_[n, -n @ c]


def near_planes(points: np.ndarray, planes: np.ndarray, threshold: float) -> np.ndarray:
    """True for points within ``threshold`` of any plane."""
    if len(planes) == 0:
        return np.zeros(len(points), bool)
    dist = np.abs(np.asarray(points, dtype=np.float64) @ planes[:, :3].T + planes[:, 3])
    return (dist < threshold).any(axis=1)
