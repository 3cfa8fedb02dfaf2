"""Labels for the points no mask covered, from their labelled neighbours (sparse labels to the whole scene).

A point takes the label most of its voters hold: the ``neighbors`` nearest labelled points within
``max_distance`` that lie on its own surface. It needs a quorum of ``min_neighbors`` voters and no other
label as frequent; otherwise it abstains. ``iterations`` > 1 repeats the pass with the points labelled so
far, which carries labels along a surface further than one radius; each pass sees only the labels of the
one before (the result does not depend on the order of the points), and after the first only the points
near a label set by the pass before are asked again, so that later passes cost what the moving front costs.

Surface boundaries stop the labels (each gate can be turned off):

- **creases**: every point has a normal (:func:`estimate_normals`), and a voter counts only if its
  normal is within ``max_normal_angle`` of the point's (floor to wall, wall to wall, an object's side to
  the floor). Each cell of ``normal_radius`` fits a plane to the flattest of the eight 2 x 2 x 2 cell
  blocks that hold it, and each point takes the plane nearest to it of its 27 cells, so that a point
  near a crease takes its own side's normal, not a blend of both sides along which labels would creep
  round the edge.
- **steps in depth**: each of the two must lie within ``max_plane_distance`` of the other's tangent
  plane (a shelf above a table top, a picture on a wall).
- **colour** (with ``colors``): their colours must be within ``max_color_distance``.

A point without a normal (fewer than four points around it, points on a line, or no flat block) takes
votes from every neighbour that passes the other gates but gives votes only to points without a normal,
so that a label does not leak through it onto another surface.

The search is compiled: a hash grid of ``max_distance`` cells; a cell gathers the voters of its 27
cells once and votes for each of its unlabelled points; memory is O(N) and the cells are shared out
between threads (the kernels release the GIL).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..jit import array, kernel
from ..voxels import BIAS, BITS

#: A normal needs this many points in its block of cells.
_MIN_NORMAL_POINTS = 4
#: A block whose smallest scatter eigenvalue exceeds this share of the trace is not flat: no normal.
MAX_CURVATURE = 0.25
#: Blocks this close in flatness (smallest eigenvalue over trace) are as flat: the one of more points wins.
_FLAT_TIE = 0.005


@dataclass(frozen=True)
class PropagationResult:
    """The labels after propagation and how many points had one before and after.

    ``support`` is, per point, the share of the neighbours' votes its label won (1 for points labelled
    before, 0 for points still without a label): how sure the propagation was. ``passes`` is how many
    passes ran (fewer than asked once a pass labels nothing).
    """

    labels: np.ndarray
    labelled_before: int
    labelled_after: int
    support: np.ndarray
    passes: int = 1

    @property
    def coverage_before(self) -> float:
        return self.labelled_before / max(len(self.labels), 1)

    @property
    def coverage_after(self) -> float:
        return self.labelled_after / max(len(self.labels), 1)


def propagate(points: np.ndarray, labels: np.ndarray, max_distance: float = 0.05, min_neighbors: int = 3,
              neighbors: int = 16, iterations: int = 1, trusted: np.ndarray | None = None,
              batch: int = 100_000, *, max_normal_angle: float | None = 40.0,
              max_plane_distance: float | None = 0.03, normal_radius: float | None = None,
              normals: np.ndarray | None = None, colors: np.ndarray | None = None,
              max_color_distance: float | None = None, workers: int | None = None) -> PropagationResult:
    """Label the unlabelled (0) ``points`` ``(N, 3)`` from the labelled ones (``labels`` ``(N,)``, > 0).

    The vote looks at the ``neighbors`` nearest labelled points within ``max_distance`` that pass the
    boundary gates (module docstring). ``trusted`` (``(N,)`` bool) limits the voters (e.g. to points near
    some camera: far labels are noisy); untrusted labelled points keep their own label but give none.

    Boundary gates (keyword-only; None turns one off): ``max_normal_angle`` (degrees) between the normals
    of a point and a voter; ``max_plane_distance`` (metres) of each from the other's tangent plane;
    ``max_color_distance`` (RGB, 0-255 scale) between their ``colors`` ``(N, 3)`` (needs ``colors``).
    The normals are estimated over cells of ``normal_radius`` (default ``0.7 * max_distance``) unless
    ``normals`` ``(N, 3)`` gives them (unit vectors, zero rows: none). ``workers`` threads share the work
    (default: the CPUs this process may use, at most 8). ``batch`` is kept for callers of the former
    version: the compiled search holds O(N) memory and needs no batches.
    """
    pts = np.ascontiguousarray(points, np.float64)
    out = np.asarray(labels).astype(np.int64, copy=True)
    if pts.ndim != 2 or pts.shape[1] != 3 or out.shape != (len(pts),):
        raise ValueError(f'points must be (N, 3) and labels (N,), got {pts.shape} and {out.shape}')
    if not max_distance > 0 or min_neighbors < 1 or neighbors < min_neighbors:
        raise ValueError('need max_distance > 0 and 1 <= min_neighbors <= neighbors')
    if max_normal_angle is not None and not 0 < max_normal_angle <= 90:
        raise ValueError(f'max_normal_angle must be in (0, 90] degrees or None, got {max_normal_angle}')
    if max_plane_distance is not None and not max_plane_distance > 0:
        raise ValueError(f'max_plane_distance must be > 0 or None, got {max_plane_distance}')
    if normal_radius is not None and not normal_radius > 0:
        raise ValueError(f'normal_radius must be > 0 or None, got {normal_radius}')
    if max_color_distance is not None and (colors is None or not max_color_distance >= 0):
        raise ValueError('max_color_distance needs colors and must be >= 0')
    n = len(pts)
    before = int((out > 0).sum())
    support = (out > 0).astype(np.float32)
    voter_ok = np.ones(n, bool) if trusted is None else np.asarray(trusted, bool).reshape(n)
    threads = _workers(workers)
    grid = _Grid(pts, float(max_distance))
    gate_normals = max_normal_angle is not None or max_plane_distance is not None
    if gate_normals and normals is None:
        normal = estimate_normals(pts, normal_radius or 0.7 * max_distance, threads)
    elif gate_normals:
        normal = np.ascontiguousarray(normals, np.float32).reshape(n, 3)
    else:
        normal = np.zeros((1, 3), np.float32)
    col = (np.ascontiguousarray(colors, np.float32).reshape(n, 3) if max_color_distance is not None
           else np.zeros((1, 3), np.float32))
    params = (gate_normals, -1.0 if max_normal_angle is None else math.cos(math.radians(max_normal_angle)),
              -1.0 if max_plane_distance is None else float(max_plane_distance), col,
              max_color_distance is not None, float(max_color_distance or 0.0) ** 2, float(max_distance) ** 2,
              int(neighbors), int(min_neighbors))
    cells = np.arange(grid.size, dtype=np.int64)
    passes = 0
    for _ in range(max(int(iterations), 1)):
        if cells.size == 0:
            break
        voter = voter_ok & (out > 0)
        idx, got, share = _vote_pass(grid, cells, pts, out, voter, normal, params, threads)
        passes += 1
        if idx.size == 0:
            break
        out[idx] = got
        support[idx] = share
        cells = grid.cells_near(idx[voter_ok[idx]])
    return PropagationResult(out, before, int((out > 0).sum()), support, passes)


def estimate_normals(points: np.ndarray, radius: float, workers: int | None = None) -> np.ndarray:
    """Unit normals ``(N, 3)`` float32 of ``points`` ``(N, 3)`` from cells of ``radius`` metres; zero rows: none.

    Each cell fits a plane (centroid and smallest principal axis) to the points of the flattest of the
    eight 2 x 2 x 2 cell blocks that hold it: none where no block has 4 points, the points lie on a line,
    or even the flattest block is curved (smallest eigenvalue above :data:`MAX_CURVATURE` of the trace).
    A point takes the plane it lies nearest to among those of its own and its 26 neighbouring cells, so
    that near a crease it takes its own side's normal, not a blend of both sides.
    """
    pts = np.ascontiguousarray(points, np.float64)
    grid = _Grid(pts, float(radius))
    moments = np.zeros((grid.size, 10))
    finite = grid.rows >= 0
    origin = pts[finite].mean(axis=0) if finite.any() else np.zeros(3)
    _cell_moments(pts, grid.rows, origin, moments)
    planes = np.zeros((grid.size, 6))  # normal (zero: none), centroid
    threads = _workers(workers)
    ranges = _chunks(grid.size, threads)
    _in_threads(_cell_planes, [(moments, grid.keys, grid.table, lo, hi, float(_MIN_NORMAL_POINTS), MAX_CURVATURE,
                                origin, planes) for lo, hi in ranges], threads)
    normals = np.zeros((len(pts), 3), np.float32)
    _in_threads(_point_normals, [(pts, grid.start, grid.order, grid.keys, grid.table, lo, hi, planes, normals)
                                 for lo, hi in ranges], threads)
    return normals


class _Grid:
    """A hash grid of ``cell``-metre cells: each point's cell (``rows``, -1: not finite) and each cell's points."""

    def __init__(self, pts: np.ndarray, cell: float) -> None:
        n = len(pts)
        # a table for the cells, not the points, grown as they come: its probes stay in cache
        self.table = np.full(1 << max(10, int(n // 8).bit_length()), -1, np.int32)
        keys = np.zeros(max(n, 1), np.int64)
        self.rows = np.full(n, -1, np.int64)
        size, done = _grid_cells(pts, 1.0 / cell, self.table, keys, self.rows, 0, 0)
        while done < n:
            self.table = np.full(4 * len(self.table), -1, np.int32)
            _fill_table(keys[:size], self.table)
            size, done = _grid_cells(pts, 1.0 / cell, self.table, keys, self.rows, done, size)
        self.size = int(size)
        self.keys = keys[:self.size]
        self.start = np.zeros(self.size + 1, np.int64)
        self.order = np.zeros(n, np.int64)
        _bucket(self.rows, self.start, self.order)
        self._flag = np.zeros(self.size, np.uint8)

    def cells_near(self, idx: np.ndarray) -> np.ndarray:
        """The cells next to (or holding) the points ``idx``: those whose vote they can change."""
        _mark_near(np.ascontiguousarray(idx, np.int64), self.rows, self.keys, self.table, self._flag)
        cells = np.flatnonzero(self._flag)
        self._flag[cells] = 0
        return cells


def _workers(workers: int | None) -> int:
    if workers is not None:
        return max(int(workers), 1)
    try:
        return max(min(len(os.sched_getaffinity(0)), 8), 1)
    except AttributeError:  # not on Linux
        return max(min(os.cpu_count() or 1, 8), 1)


def _in_threads(fn, calls: list[tuple], threads: int) -> list:
    """``fn(*args)`` for each of ``calls`` on ``threads`` threads, in order (the kernels release the GIL)."""
    if threads <= 1 or len(calls) <= 1:
        return [fn(*args) for args in calls]
    with ThreadPoolExecutor(max_workers=min(threads, len(calls))) as pool:
        return list(pool.map(lambda args: fn(*args), calls))


def _chunks(total: int, threads: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` ranges covering ``range(total)``: a few per thread, so that a slow one does not hold up the rest."""
    bounds = np.linspace(0, total, (1 if threads <= 1 else 4 * threads) + 1).astype(np.int64)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def _vote_pass(grid: _Grid, cells: np.ndarray, pts: np.ndarray, labels: np.ndarray, voter: np.ndarray,
               normal: np.ndarray, params: tuple, threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass over the unlabelled points of ``cells``: the points that won a label, their labels and shares."""
    gate_normals, cos_min, plane_tol, col, gate_colors, col_tol2, r2, k, quorum = params
    counts = np.cumsum(grid.start[cells + 1] - grid.start[cells])
    calls = []
    for lo, hi in _chunks(int(counts[-1]), threads):  # cells cut into runs of about as many points
        a, b = np.searchsorted(counts, [lo, hi], side='right')
        if b <= a:
            continue
        m = int(counts[b - 1] - (counts[a - 1] if a else 0))
        calls.append((cells[a:b], grid.start, grid.order, grid.keys, grid.table, pts, labels, voter, normal,
                      gate_normals, cos_min, plane_tol, col, gate_colors, col_tol2, r2, k, quorum,
                      np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.float32)))
    done = _in_threads(_vote, calls, threads)
    idx = np.concatenate([c[-3][:h] for c, h in zip(calls, done)]) if calls else np.zeros(0, np.int64)
    got = np.concatenate([c[-2][:h] for c, h in zip(calls, done)]) if calls else np.zeros(0, np.int64)
    share = np.concatenate([c[-1][:h] for c, h in zip(calls, done)]) if calls else np.zeros(0, np.float32)
    return idx, got, share


# ----------------------------------------------------------------------------- compiled kernels

def _sig_grid_cells():
    from numba import types

    return types.UniTuple(types.int64, 2)(array('float64', 2), types.float64, array('int32', 1, True),
                                          array('int64', 1, True), array('int64', 1, True), types.int64, types.int64)


@kernel(_sig_grid_cells)
def _grid_cells(pts, inv_cell, table, keys, rows, first, size):  # pragma: no cover - compiled
    """Each point's cell row (-1: not finite or out of range) from point ``first`` on, new cells numbered as met.

    Cell keys pack 21 bits per axis (:mod:`~vizion3d_ros.core.voxels`); ``table`` is an open-addressing
    hash table (linear probing, Fibonacci hashing) that already holds ``size`` cells. Returns ``(cells,
    point reached)``: it stops early once the table is half full, to be grown (:func:`_fill_table`).
    """
    mask = table.size - 1
    last_key = np.int64(-1)
    r = np.int64(-1)
    for i in range(first, pts.shape[0]):
        if 2 * size >= table.size:
            return size, i
        key = np.int64(0)
        for a in range(3):
            c = np.floor(pts[i, a] * inv_cell)
            if not (abs(c) < BIAS - 1):  # also False for NaN
                key = np.int64(-1)
                break
            key = (key << BITS) | (np.int64(c) + BIAS)
        if key < 0:
            rows[i] = -1
            continue
        if key == last_key:  # the point before's cell: no probe
            rows[i] = r
            continue
        last_key = key
        slot = np.int64(((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & np.uint64(mask))
        while True:
            r = table[slot]
            if r == -1 or keys[r] == key:
                break
            slot = (slot + 1) & mask
        if r == -1:
            r = size
            size += 1
            table[slot] = r
            keys[r] = key
        rows[i] = r
    return size, pts.shape[0]


def _sig_fill_table():
    from numba import types

    return types.void(array('int64', 1), array('int32', 1, True))


@kernel(_sig_fill_table)
def _fill_table(keys, table):  # pragma: no cover - compiled
    """Insert cell ``r`` under ``keys[r]`` into an empty ``table`` (as :func:`_grid_cells` probes it)."""
    mask = table.size - 1
    for r in range(keys.size):
        slot = np.int64(((np.uint64(keys[r]) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & np.uint64(mask))
        while table[slot] != -1:
            slot = (slot + 1) & mask
        table[slot] = r


def _sig_bucket():
    from numba import types

    return types.void(array('int64', 1), array('int64', 1, True), array('int64', 1, True))


@kernel(_sig_bucket)
def _bucket(rows, start, order):  # pragma: no cover - compiled
    """Counting sort of the points by cell: cell ``c`` holds ``order[start[c]:start[c + 1]]``."""
    for i in range(rows.size):
        if rows[i] >= 0:
            start[rows[i] + 1] += 1
    for c in range(1, start.size):
        start[c] += start[c - 1]
    fill = start[:-1].copy()
    for i in range(rows.size):
        r = rows[i]
        if r >= 0:
            order[fill[r]] = i
            fill[r] += 1


def _sig_mark_near():
    from numba import types

    return types.void(array('int64', 1), array('int64', 1), array('int64', 1), array('int32', 1),
                      array('uint8', 1, True))


@kernel(_sig_mark_near)
def _mark_near(idx, rows, keys, table, flag):  # pragma: no cover - compiled
    """Flag the 27 cells around the cell of each point ``idx``."""
    mask = table.size - 1
    for t in range(idx.size):
        c = rows[idx[t]]
        if c < 0 or flag[c] == 2:
            continue
        key = keys[c]
        for dx in range(-1, 2):
            for dy in range(-1, 2):
                for dz in range(-1, 2):
                    k = key + (np.int64(dx) << (2 * BITS)) + (np.int64(dy) << BITS) + np.int64(dz)
                    slot = np.int64(((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32))
                                    & np.uint64(mask))
                    while True:
                        r = table[slot]
                        if r == -1 or keys[r] == k:
                            break
                        slot = (slot + 1) & mask
                    if r >= 0 and flag[r] == 0:
                        flag[r] = 1
        flag[c] = 2  # done: its other points need not look again


def _sig_cell_moments():
    from numba import types

    return types.void(array('float64', 2), array('int64', 1), array('float64', 1), array('float64', 2, True))


@kernel(_sig_cell_moments)
def _cell_moments(pts, rows, origin, mom):  # pragma: no cover - compiled
    """Per cell: count, sums of x, y, z and of xx, yy, zz, xy, xz, yz (coordinates about ``origin``)."""
    for i in range(pts.shape[0]):
        c = rows[i]
        if c < 0:
            continue
        x, y, z = pts[i, 0] - origin[0], pts[i, 1] - origin[1], pts[i, 2] - origin[2]
        mom[c, 0] += 1.0
        mom[c, 1] += x
        mom[c, 2] += y
        mom[c, 3] += z
        mom[c, 4] += x * x
        mom[c, 5] += y * y
        mom[c, 6] += z * z
        mom[c, 7] += x * y
        mom[c, 8] += x * z
        mom[c, 9] += y * z


def _sig_cell_planes():
    from numba import types

    return types.void(array('float64', 2), array('int64', 1), array('int32', 1), types.int64, types.int64,
                      types.float64, types.float64, array('float64', 1), array('float64', 2, True))


@kernel(_sig_cell_planes)
def _cell_planes(mom, keys, table, lo, hi, min_points, max_curvature, origin, planes):  # pragma: no cover
    """The plane (normal, centroid) of the cells ``lo`` to ``hi`` (:func:`estimate_normals`); zero normal: none.

    Of the eight 2 x 2 x 2 blocks of cells around a cell, the flattest is the one with the smallest
    ``det / (m2 * trace)`` of its scatter (``m2``: the sum of its principal 2 x 2 minors), which is its
    smallest eigenvalue over the trace for a near-planar block; of blocks as flat within
    :data:`_FLAT_TIE`, the one with the most points (two parallel rows at the rim of a patch make a flat
    block too, across the patch, but of fewer points than the rows along it). Its smallest eigenvector
    (trigonometric eigenvalue, then the longest cross product of two rows of ``C - lambda I``) is the normal.
    """
    mask = table.size - 1
    nb = np.empty(27, np.int64)
    s = np.empty(10)
    for c in range(lo, hi):
        key = keys[c]
        m = 0
        for dx in range(-1, 2):
            for dy in range(-1, 2):
                for dz in range(-1, 2):
                    k = key + (np.int64(dx) << (2 * BITS)) + (np.int64(dy) << BITS) + np.int64(dz)
                    slot = np.int64(((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32))
                                    & np.uint64(mask))
                    while True:
                        r = table[slot]
                        if r == -1 or keys[r] == k:
                            break
                        slot = (slot + 1) & mask
                    nb[m] = r
                    m += 1
        best = np.inf
        best_w = 0.0
        a11 = a22 = a33 = a12 = a13 = a23 = 0.0
        cx = cy = cz = 0.0
        for o in range(8):
            ox, oy, oz = o >> 2, (o >> 1) & 1, o & 1
            for a in range(10):
                s[a] = 0.0
            for ax in range(ox, ox + 2):
                for ay in range(oy, oy + 2):
                    for az in range(oz, oz + 2):
                        r = nb[ax * 9 + ay * 3 + az]
                        if r >= 0:
                            for a in range(10):
                                s[a] += mom[r, a]
            w = s[0]
            if w < min_points:
                continue
            mx, my, mz = s[1] / w, s[2] / w, s[3] / w
            c11, c22, c33 = s[4] / w - mx * mx, s[5] / w - my * my, s[6] / w - mz * mz
            c12, c13, c23 = s[7] / w - mx * my, s[8] / w - mx * mz, s[9] / w - my * mz
            tr = c11 + c22 + c33
            m2 = c11 * c22 - c12 * c12 + c11 * c33 - c13 * c13 + c22 * c33 - c23 * c23
            if not (tr > 0) or m2 < 1e-2 * tr * tr:  # nothing, or points on a line: no plane
                continue
            det = c11 * (c22 * c33 - c23 * c23) - c12 * (c12 * c33 - c23 * c13) + c13 * (c12 * c23 - c22 * c13)
            flat = det / (m2 * tr)
            if flat < best - _FLAT_TIE or (flat <= best + _FLAT_TIE and w > best_w):
                best = flat
                best_w = w
                a11, a22, a33, a12, a13, a23 = c11, c22, c33, c12, c13, c23
                cx, cy, cz = mx, my, mz
        if not (best <= max_curvature):
            continue
        q = (a11 + a22 + a33) / 3.0
        p = math.sqrt(((a11 - q) ** 2 + (a22 - q) ** 2 + (a33 - q) ** 2 + 2.0 * (a12 * a12 + a13 * a13 + a23 * a23))
                      / 6.0)
        if not (p > 0):
            continue
        b11, b22, b33, b12, b13, b23 = (a11 - q) / p, (a22 - q) / p, (a33 - q) / p, a12 / p, a13 / p, a23 / p
        half_det = 0.5 * (b11 * (b22 * b33 - b23 * b23) - b12 * (b12 * b33 - b23 * b13)
                          + b13 * (b12 * b23 - b22 * b13))
        lam = q + 2.0 * p * math.cos(math.acos(min(max(half_det, -1.0), 1.0)) / 3.0 + 2.0 * math.pi / 3.0)
        if lam > max_curvature * 3.0 * q:
            continue
        r0x, r0y, r0z = a11 - lam, a12, a13
        r1x, r1y, r1z = a12, a22 - lam, a23
        r2x, r2y, r2z = a13, a23, a33 - lam
        vx, vy, vz = r0y * r1z - r0z * r1y, r0z * r1x - r0x * r1z, r0x * r1y - r0y * r1x
        wx, wy, wz = r0y * r2z - r0z * r2y, r0z * r2x - r0x * r2z, r0x * r2y - r0y * r2x
        ux, uy, uz = r1y * r2z - r1z * r2y, r1z * r2x - r1x * r2z, r1x * r2y - r1y * r2x
        nv, nw, nu = vx * vx + vy * vy + vz * vz, wx * wx + wy * wy + wz * wz, ux * ux + uy * uy + uz * uz
        if nw > nv and nw >= nu:
            vx, vy, vz, nv = wx, wy, wz, nw
        elif nu > nv:
            vx, vy, vz, nv = ux, uy, uz, nu
        if not (nv > 0):
            continue
        inv = 1.0 / math.sqrt(nv)
        planes[c, 0] = vx * inv
        planes[c, 1] = vy * inv
        planes[c, 2] = vz * inv
        planes[c, 3] = cx + origin[0]
        planes[c, 4] = cy + origin[1]
        planes[c, 5] = cz + origin[2]


def _sig_point_normals():
    from numba import types

    return types.void(array('float64', 2), array('int64', 1), array('int64', 1), array('int64', 1),
                      array('int32', 1), types.int64, types.int64, array('float64', 2), array('float32', 2, True))


@kernel(_sig_point_normals)
def _point_normals(pts, start, order, keys, table, lo, hi, planes, normals):  # pragma: no cover - compiled
    """Each point of the cells ``lo`` to ``hi`` takes the normal of the nearest plane of its 27 cells.

    The cell's own plane comes first, so it wins a tie; cells without a plane are skipped.
    """
    mask = table.size - 1
    near = np.empty(27, np.int64)
    for c in range(lo, hi):
        key = keys[c]
        m = 0
        if planes[c, 0] != 0.0 or planes[c, 1] != 0.0 or planes[c, 2] != 0.0:
            near[0] = c
            m = 1
        for dx in range(-1, 2):
            for dy in range(-1, 2):
                for dz in range(-1, 2):
                    if dx == 0 and dy == 0 and dz == 0:
                        continue
                    k = key + (np.int64(dx) << (2 * BITS)) + (np.int64(dy) << BITS) + np.int64(dz)
                    slot = np.int64(((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32))
                                    & np.uint64(mask))
                    while True:
                        r = table[slot]
                        if r == -1 or keys[r] == k:
                            break
                        slot = (slot + 1) & mask
                    if r >= 0 and (planes[r, 0] != 0.0 or planes[r, 1] != 0.0 or planes[r, 2] != 0.0):
                        near[m] = r
                        m += 1
        if m == 0:
            continue
        for t in range(start[c], start[c + 1]):
            i = order[t]
            best = np.inf
            b = -1
            for u in range(m):
                r = near[u]
                off = abs(planes[r, 0] * (pts[i, 0] - planes[r, 3]) + planes[r, 1] * (pts[i, 1] - planes[r, 4])
                          + planes[r, 2] * (pts[i, 2] - planes[r, 5]))
                if off < best:
                    best = off
                    b = r
            normals[i, 0] = planes[b, 0]
            normals[i, 1] = planes[b, 1]
            normals[i, 2] = planes[b, 2]


def _sig_vote():
    from numba import types

    i8, f8, b1 = types.int64, types.float64, types.boolean
    return i8(array('int64', 1), array('int64', 1), array('int64', 1), array('int64', 1), array('int32', 1),
              array('float64', 2), array('int64', 1), array('bool', 1), array('float32', 2),
              b1, f8, f8, array('float32', 2), b1, f8, f8, i8, i8,
              array('int64', 1, True), array('int64', 1, True), array('float32', 1, True))


@kernel(_sig_vote)
def _vote(cells, start, order, keys, table, pts, labels, voter, normal, gate_normals, cos_min, plane_tol,
          col, gate_colors, col_tol2, r2, k, quorum, out_idx, out_label, out_share):  # pragma: no cover - compiled
    """One pass over the unlabelled points of ``cells``; returns how many won a label (written to ``out_*``).

    A cell gathers the voters of its 27 cells once; each of its unlabelled points keeps the ``k`` nearest
    within ``sqrt(r2)`` that pass the gates (sorted insertion) and takes their majority label, given
    ``quorum`` of them and no tie. ``labels`` is not written: a pass sees only the labels of the one before.
    """
    mask = table.size - 1
    cap = 1024
    vx = np.empty((cap, 3))  # the voters of the cell's 27 cells, gathered once for all its points
    vn = np.empty((cap, 3), np.float32)
    vc = np.empty((cap, 3), np.float32)
    vl = np.empty(cap, np.int64)
    best_d = np.empty(k)
    best_l = np.empty(k, np.int64)
    cand = np.empty(k, np.int64)
    votes = np.empty(k, np.int64)
    n_out = 0
    for ci in range(cells.size):
        c = cells[ci]
        todo = False
        for t in range(start[c], start[c + 1]):
            if labels[order[t]] == 0:
                todo = True
                break
        if not todo:
            continue
        key = keys[c]
        m = 0
        for dx in range(-1, 2):
            for dy in range(-1, 2):
                for dz in range(-1, 2):
                    kk = key + (np.int64(dx) << (2 * BITS)) + (np.int64(dy) << BITS) + np.int64(dz)
                    slot = np.int64(((np.uint64(kk) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32))
                                    & np.uint64(mask))
                    while True:
                        r = table[slot]
                        if r == -1 or keys[r] == kk:
                            break
                        slot = (slot + 1) & mask
                    if r < 0:
                        continue
                    for t in range(start[r], start[r + 1]):
                        j = order[t]
                        if labels[j] <= 0 or not voter[j]:
                            continue
                        if m == cap:
                            cap *= 2
                            gx, gn, gc, gl = np.empty((cap, 3)), np.empty((cap, 3), np.float32), \
                                np.empty((cap, 3), np.float32), np.empty(cap, np.int64)
                            gx[:m] = vx[:m]
                            gn[:m] = vn[:m]
                            gc[:m] = vc[:m]
                            gl[:m] = vl[:m]
                            vx, vn, vc, vl = gx, gn, gc, gl
                        for a in range(3):
                            vx[m, a] = pts[j, a]
                        if gate_normals:
                            for a in range(3):
                                vn[m, a] = normal[j, a]
                        if gate_colors:
                            for a in range(3):
                                vc[m, a] = col[j, a]
                        vl[m] = labels[j]
                        m += 1
        if m < quorum:
            continue
        for t in range(start[c], start[c + 1]):
            i = order[t]
            if labels[i] != 0:
                continue
            px, py, pz = pts[i, 0], pts[i, 1], pts[i, 2]
            nix = niy = niz = 0.0
            has_i = False
            if gate_normals:
                nix, niy, niz = normal[i, 0], normal[i, 1], normal[i, 2]
                has_i = nix * nix + niy * niy + niz * niz > 0.5
            found = 0
            for u in range(m):
                dx, dy, dz = vx[u, 0] - px, vx[u, 1] - py, vx[u, 2] - pz
                d2 = dx * dx + dy * dy + dz * dz
                if d2 > r2 or (found == k and d2 >= best_d[k - 1]):
                    continue
                if gate_normals:
                    njx, njy, njz = vn[u, 0], vn[u, 1], vn[u, 2]
                    has_j = njx * njx + njy * njy + njz * njz > 0.5
                    if has_i and not has_j:  # a voter without a normal gives only to points without one
                        continue
                    if has_i and abs(nix * njx + niy * njy + niz * njz) < cos_min:
                        continue
                    if plane_tol >= 0 and ((has_i and abs(nix * dx + niy * dy + niz * dz) > plane_tol)
                                           or (has_j and abs(njx * dx + njy * dy + njz * dz) > plane_tol)):
                        continue
                if gate_colors:
                    e = 0.0
                    for a in range(3):
                        g = vc[u, a] - col[i, a]
                        e += g * g
                    if e > col_tol2:
                        continue
                p = found if found < k else k - 1
                while p > 0 and best_d[p - 1] > d2:
                    best_d[p] = best_d[p - 1]
                    best_l[p] = best_l[p - 1]
                    p -= 1
                best_d[p] = d2
                best_l[p] = vl[u]
                if found < k:
                    found += 1
            if found < quorum:
                continue
            kinds = 0
            for u in range(found):
                f = -1
                for v in range(kinds):
                    if cand[v] == best_l[u]:
                        f = v
                        break
                if f < 0:
                    cand[kinds] = best_l[u]
                    votes[kinds] = 1
                    kinds += 1
                else:
                    votes[f] += 1
            top = 0
            second = 0
            winner = 0
            for v in range(kinds):
                if votes[v] > top:
                    second = top
                    top = votes[v]
                    winner = cand[v]
                elif votes[v] > second:
                    second = votes[v]
            if top > second:
                out_idx[n_out] = i
                out_label[n_out] = winner
                out_share[n_out] = top / found
                n_out += 1
    return n_out
