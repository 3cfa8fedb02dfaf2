"""Dominant planes (floors, walls, table tops) by RANSAC, vectorised over hypotheses.

Large planes conduct 3D connectivity from an object into everything else that touches them (an
object stands on the floor, the floor meets the wall). Points on them are background for the hidden
part of an object, so the propagation in :mod:`.connectivity` leaves them out.
"""
from __future__ import annotations

import numpy as np


def fit_planes(points: np.ndarray, threshold: float | None = None, max_planes: int = 3,
               min_fraction: float = 0.1, hypotheses: int = 256, sample: int = 4000,
               rng: np.random.Generator | None = None, local: int = 0) -> np.ndarray:
    """Up to ``max_planes`` planes ``(n_x, n_y, n_z, d, tolerance)`` with ``n . p + d = 0`` (unit n).

    Each plane must hold at least ``min_fraction`` of ``points``; planes are found greedily on a random
    subsample and refined by least squares on their inliers. ``threshold`` None adapts each plane's
    inlier ``tolerance`` to the noise of its points (2.5 sigma, 0.5 to 4 cm); a number fixes it.
    ``local`` > 0 says that points near each other in the array are near in space (a raster-ordered
    image grid): each hypothesis then takes its three points within ``local`` places of each other, so
    it lies on one surface with probability ~f rather than f^3 for a plane holding a fraction f.
    """
    rng = rng or np.random.default_rng(0)
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) > sample:
        pts = pts[rng.choice(len(pts), sample, replace=False)]
    pts_h = _homogeneous_rows(pts)
    planes = []
    need = max(3, int(min_fraction * len(pts)))
    search = 0.03 if threshold is None else threshold
    for _ in range(max_planes):
        if len(pts) < need:
            break
        if local > 0 and len(pts) > local:
            first = rng.integers(0, len(pts) - local, size=(hypotheses, 1))
            tri = pts[first + np.concatenate([np.zeros((hypotheses, 1), np.int64),
                                              rng.integers(1, local, size=(hypotheses, 2))], axis=1)]
        else:
            tri = pts[rng.integers(0, len(pts), size=(hypotheses, 3))]
        a = tri[:, 1] - tri[:, 0]
        b = tri[:, 2] - tri[:, 0]
        n = np.stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1], a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                      a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], axis=1)
        norm = np.sqrt(np.einsum('ij,ij->i', n, n))
        ok = norm > 1e-9
        if not ok.any():
            break
        n = n[ok] / norm[ok, None]
        d = -np.einsum('ij,ij->i', n, tri[ok, 0])
        # residuals as (hypotheses, points) so the count runs along contiguous rows, in one product
        # with homogeneous points; float32 halves the memory traffic of this, the largest array
        # here, and is ample for centimetre tolerances
        res = np.concatenate([n, d[:, None]], axis=1).astype(np.float32) @ pts_h
        counts = np.count_nonzero(np.abs(res, out=res) < search, axis=1)
        best = int(np.argmax(counts))
        if counts[best] < need:
            break
        inl = np.abs(pts @ n[best] + d[best]) < search
        plane = _refine(pts[inl])
        res = np.abs(pts @ plane[:3] + plane[3])
        tol = threshold if threshold is not None else \
            float(np.clip(2.5 * 1.4826 * _lower_median(res[res < search]), 0.005, 0.04))
        inl = res < tol
        if inl.sum() < need:
            break
        planes.append(np.r_[plane, tol])
        pts = pts[~inl]
        pts_h = _homogeneous_rows(pts)
    return np.array(planes, dtype=np.float64).reshape(-1, 5)


def _homogeneous_rows(pts: np.ndarray) -> np.ndarray:
    """``(4, N)`` float32: the points' x, y, z and a row of ones."""
    out = np.ones((4, len(pts)), np.float32)
    out[:3] = pts.T
    return out


def _lower_median(a: np.ndarray) -> float:
    """Median by partition (the lower middle element): no full sort on the hot path."""
    m = (a.size - 1) // 2
    return float(np.partition(a, m)[m]) if a.size else 0.0


def _refine(pts: np.ndarray) -> np.ndarray:
    """Least-squares plane: the normal is the scatter matrix's eigenvector of least eigenvalue."""
    c = pts.mean(axis=0)
    q = pts - c
    _, vecs = np.linalg.eigh(q.T @ q)  # ascending eigenvalues; a 3x3 problem instead of an SVD of q
    n = vecs[:, 0]
    return np.r_[n, -n @ c]


def near_planes(points: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """True for points within each plane's own tolerance of any plane."""
    if len(planes) == 0:
        return np.zeros(len(points), bool)
    # a row per plane, (P, N): numpy is slow on arrays whose last axis is a handful long (~25 ns per row
    # for each broadcast or reduction), ~10x slower than the same work along rows of N
    dist = planes[:, :3] @ np.asarray(points, dtype=np.float64).T
    dist += planes[:, 3:4]
    np.abs(dist, out=dist)
    return (dist < planes[:, 4:5]).any(axis=0)
