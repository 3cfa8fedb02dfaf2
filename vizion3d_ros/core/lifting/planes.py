"""Dominant planes (floors, walls, table tops) by RANSAC, scored by a compiled kernel.

Large planes conduct 3D connectivity from an object into everything else that touches them (an
object stands on the floor, the floor meets the wall). Points on them are background for the hidden
part of an object, so the propagation in :mod:`.connectivity` leaves them out.
"""
from __future__ import annotations

import numpy as np

from ..jit import array, kernel


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
    # one row per coordinate: the kernel's loops over points then read contiguous memory
    cols = np.ascontiguousarray(pts.T)
    planes = []
    need = max(3, int(min_fraction * len(pts)))
    search = 0.03 if threshold is None else float(threshold)
    fixed = np.nan if threshold is None else float(threshold)
    for _ in range(max_planes):
        n = cols.shape[1]
        if n < need:
            break
        if local > 0 and n > local:
            first = rng.integers(0, n - local, size=(hypotheses, 1))
            tri = first + np.concatenate([np.zeros((hypotheses, 1), np.int64),
                                          rng.integers(1, local, size=(hypotheses, 2))], axis=1)
        else:
            tri = rng.integers(0, n, size=(hypotheses, 3))
        moments = np.empty((4, 3))
        if not _best_hypothesis(cols, tri, search, need, moments):
            break
        # least squares on its points: the normal is the scatter matrix's eigenvector of least eigenvalue
        normal = np.linalg.eigh(moments[1:])[1][:, 0]  # ascending eigenvalues; a 3x3 problem
        plane = np.r_[normal, -normal @ moments[0], 0.0]
        inliers = np.empty(n, np.bool_)
        if _refined_inliers(cols, plane, search, fixed, inliers) < need:
            break
        planes.append(plane)
        cols = np.ascontiguousarray(cols[:, ~inliers])
    return np.array(planes, dtype=np.float64).reshape(-1, 5)


def _sig_best_hypothesis():
    from numba import types

    return types.boolean(array('float64', 2, layout='C'), array('int64', 2), types.float64, types.int64,
                         array('float64', 2, True))


@kernel(_sig_best_hypothesis)
def _best_hypothesis(cols, tri, search, need, moments):  # pragma: no cover - compiled
    """The RANSAC round's winner among the point triples ``tri``: False if none has ``need`` points.

    ``cols`` is ``(3, N)``; a hypothesis scores the points within ``search`` of its plane (the first of
    equal scores wins). Writes the mean (row 0) and the scatter matrix (rows 1-3) of the winner's points.
    """
    x, y, z = cols[0], cols[1], cols[2]
    n_pts = x.size
    best_count = -1
    bx = by = bz = bd = 0.0
    for h in range(tri.shape[0]):
        i, j, k = tri[h, 0], tri[h, 1], tri[h, 2]
        ux, uy, uz = x[j] - x[i], y[j] - y[i], z[j] - z[i]
        vx, vy, vz = x[k] - x[i], y[k] - y[i], z[k] - z[i]
        nx, ny, nz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
        norm = np.sqrt(nx * nx + ny * ny + nz * nz)
        if not norm > 1e-9:  # collinear (or repeated) points
            continue
        nx, ny, nz = nx / norm, ny / norm, nz / norm
        d = -(nx * x[i] + ny * y[i] + nz * z[i])
        count = 0
        for p in range(n_pts):
            count += abs(nx * x[p] + ny * y[p] + nz * z[p] + d) < search
        if count > best_count:
            best_count = count
            bx, by, bz, bd = nx, ny, nz, d
    if best_count < max(need, 1):
        return False
    mx = my = mz = 0.0
    for p in range(n_pts):
        if abs(bx * x[p] + by * y[p] + bz * z[p] + bd) < search:
            mx += x[p]
            my += y[p]
            mz += z[p]
    mx, my, mz = mx / best_count, my / best_count, mz / best_count
    moments[:] = 0.0
    moments[0, 0], moments[0, 1], moments[0, 2] = mx, my, mz
    for p in range(n_pts):
        if abs(bx * x[p] + by * y[p] + bz * z[p] + bd) < search:
            qx, qy, qz = x[p] - mx, y[p] - my, z[p] - mz
            moments[1, 0] += qx * qx
            moments[1, 1] += qx * qy
            moments[1, 2] += qx * qz
            moments[2, 1] += qy * qy
            moments[2, 2] += qy * qz
            moments[3, 2] += qz * qz
    moments[2, 0], moments[3, 0], moments[3, 1] = moments[1, 1], moments[1, 2], moments[2, 2]
    return True


def _sig_refined_inliers():
    from numba import types

    f8 = types.float64
    return types.int64(array('float64', 2, layout='C'), array('float64', 1, True), f8, f8, array('boolean', 1, True))


@kernel(_sig_refined_inliers)
def _refined_inliers(cols, plane, search, fixed, inliers):  # pragma: no cover - compiled
    """Set the refitted ``plane``'s tolerance (``plane[4]``) and ``inliers``; returns their number.

    The tolerance is ``fixed``, or (NaN) 2.5 robust sigmas of the residuals under ``search`` (from
    their lower median), clipped to 0.5-4 cm.
    """
    x, y, z = cols[0], cols[1], cols[2]
    nx, ny, nz, d = plane[0], plane[1], plane[2], plane[3]
    res = np.empty(x.size)
    near = np.empty(x.size)
    m = 0
    for p in range(x.size):
        r = abs(nx * x[p] + ny * y[p] + nz * z[p] + d)
        res[p] = r
        if r < search:
            near[m] = r
            m += 1
    tol = fixed
    if np.isnan(fixed):
        mid = np.partition(near[:m], (m - 1) // 2)[(m - 1) // 2] if m else 0.0
        tol = min(max(2.5 * 1.4826 * mid, 0.005), 0.04)
    plane[4] = tol
    count = 0
    for p in range(x.size):
        inliers[p] = res[p] < tol
        count += inliers[p]
    return count


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
