"""A world-frame voxel map whose size follows the scene, not the number of objects in it.

Per voxel: the mean position and colour of the points that fell in it, how many did, a small top-k of
(label, weight) votes and a background weight (evidence that the voxel is no object's, which the caller
adds: :meth:`VoxelMap.add_background`). A label is whatever the caller fuses: a map instance id, or a class
in semantic mode; 0 is "no label" and takes no vote. When a voxel's k vote slots are taken, a new label
replaces the weakest one if it brings more weight, so a voxel keeps its k strongest candidates.

Storage is a compiled open-addressing hash table (voxel key -> row) over dense rows in insertion order:
one pass over a frame's points, no Python per point and no sort of the map. A voxel costs
:attr:`VoxelMap.bytes_per_voxel` bytes (72 for ``top_k`` 4) plus the table's 8-16 bytes (kept at most
half full). ``max_voxels`` bounds a long run: once full, points in new voxels are dropped and counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..jit import array, kernel
from ..voxels import BIAS, BITS, key_cells

_EMPTY = -1


@dataclass(frozen=True)
class IntegrateResult:
    """What one :meth:`VoxelMap.integrate` call did."""

    rows: np.ndarray  # (N,) int64: the map row of each point, -1 if it was dropped
    new_voxels: int
    dropped_full: int  # points in new voxels that did not fit under max_voxels
    dropped_invalid: int  # points without a voxel (not finite, out of range)


class VoxelMap:
    """Voxels of ``voxel_size`` metres holding mean position, mean colour, count and top-``top_k`` votes."""

    def __init__(self, voxel_size: float = 0.01, top_k: int = 4, max_voxels: int | None = None,
                 capacity: int = 1 << 16) -> None:
        if not (np.isfinite(voxel_size) and voxel_size > 0):
            raise ValueError(f'voxel_size must be a positive number of metres, got {voxel_size}')
        if not 1 <= top_k <= 32:
            raise ValueError(f'top_k must be 1 to 32, got {top_k}')
        if max_voxels is not None and max_voxels < 1:
            raise ValueError(f'max_voxels must be positive (or None), got {max_voxels}')
        self.voxel_size = float(voxel_size)
        self.top_k = int(top_k)
        self.max_voxels = max_voxels
        self._size = 0
        self._alloc(max(min(int(capacity), max_voxels or capacity), 16))
        self._table = np.full(self._table_size_for(len(self._keys)), _EMPTY, np.int32)
        for k in (_point_keys, _rows_of, _accumulate, _weaken, _rehash, _merge_duplicate_votes, _best_of_rows,
                  _add_background, _weaken_unlabelled, _pieces):
            k.compile()  # now (or from numba's disk cache), not on the first frame

    # ------------------------------------------------------------------ storage
    def _alloc(self, n: int) -> None:
        self._keys = np.zeros(n, np.int64)
        self._position = np.zeros((n, 3), np.float32)
        self._color = np.zeros((n, 3), np.float32)
        self._count = np.zeros(n, np.uint32)
        self._background = np.zeros(n, np.float32)
        self._vote_label = np.zeros((n, self.top_k), np.int32)
        self._vote_weight = np.zeros((n, self.top_k), np.float32)

    def _columns(self) -> tuple[np.ndarray, ...]:
        """The per-row arrays, in one order (for growing and compacting)."""
        return (self._keys, self._position, self._color, self._count, self._background, self._vote_label,
                self._vote_weight)

    def keep(self, rows: np.ndarray) -> int:
        """Keep only the voxels ``rows`` selects (a bool mask over the rows); returns how many were dropped.

        For a map bounded in space (a radius around the robot on a long run): the kept rows move up,
        in their order, and the hash table is rebuilt. Row numbers change; labels and votes do not.
        """
        rows = np.asarray(rows, bool)
        if rows.shape != (self._size,):
            raise ValueError(f'rows must be a bool mask of the {self._size} voxels, got shape {rows.shape}')
        kept = np.flatnonzero(rows)
        for col in self._columns():
            col[:len(kept)] = col[kept]
            col[len(kept):self._size] = 0
        dropped = self._size - len(kept)
        self._size = len(kept)
        self._table.fill(_EMPTY)
        _rehash(self._keys, self._size, self._table)
        return dropped

    @staticmethod
    def _table_size_for(rows: int) -> int:
        return 1 << max(4, int(2 * rows - 1).bit_length())  # a power of two, at least twice the rows

    def _reserve(self, extra: int) -> None:
        """Room for ``extra`` more rows (grown by half at least) and a table at most half full when all are used."""
        need = self._size + extra
        if self.max_voxels is not None:
            need = min(need, self.max_voxels)
        if need > len(self._keys):
            old = self._columns()
            grown = max(need, len(self._keys) + len(self._keys) // 2)
            self._alloc(grown if self.max_voxels is None else min(grown, self.max_voxels))
            for dst, src in zip(self._columns(), old):
                dst[:self._size] = src[:self._size]
        size = self._table_size_for(len(self._keys))
        if size > len(self._table):
            self._table = np.full(size, _EMPTY, np.int32)
            _rehash(self._keys, self._size, self._table)

    @property
    def bytes_per_voxel(self) -> int:
        """Bytes of one voxel's row (key, position, colour, count, background, votes), without the hash table."""
        return 8 + 12 + 12 + 4 + 4 + 8 * self.top_k

    @property
    def capacity(self) -> int:
        """Rows allocated (grown by half when full, bounded by ``max_voxels``)."""
        return len(self._keys)

    def memory_bytes(self) -> int:
        """Bytes held now: every allocated row and the hash table."""
        return len(self._keys) * self.bytes_per_voxel + self._table.nbytes

    def __len__(self) -> int:
        return self._size

    # ------------------------------------------------------------------ integration
    def integrate(self, points: np.ndarray, colors: np.ndarray | None = None, labels: np.ndarray | None = None,
                  weights: np.ndarray | float = 1.0) -> IntegrateResult:
        """Add world-frame ``points`` ``(N, 3)``, with optional ``colors`` ``(N, 3)`` uint8 and ``labels`` ``(N,)``.

        ``weights`` (a number or ``(N,)``) is each labelled point's vote. Points that are not finite (or
        beyond +-10 km at 1 cm) are dropped, and counted.
        """
        placed = self.insert(points)
        self.accumulate(placed.rows, points, colors, labels, weights)
        return placed

    def insert(self, points: np.ndarray) -> IntegrateResult:
        """The row of each point's voxel, creating the missing voxels (empty: no count, no votes).

        The first half of :meth:`integrate`, for a caller that reads the map at the frame's voxels before
        the frame votes (new voxels read as unlabelled, as a lookup miss would) and then calls
        :meth:`accumulate` with the same rows: one hash probe per point instead of two.
        """
        pts = self._points(points)
        keys = np.empty(len(pts), np.int64)
        invalid = _point_keys(pts, 1.0 / self.voxel_size, keys)
        rows = np.full(len(pts), -1, np.int64)
        start = self._size
        # rows are allocated for the voxels that turn out new, not for every point: probe with the room
        # there is, then grow for the points refused for want of it and probe those again
        size, full = _rows_of(keys, self._table, self._keys, self._size, self._limit(), rows)
        self._size = size
        if full and self._limit() < (self.max_voxels or np.iinfo(np.int64).max):
            todo = np.flatnonzero((rows < 0) & (keys >= 0))
            self._reserve(len(np.unique(keys[todo])))
            again = np.full(len(todo), -1, np.int64)
            size, full = _rows_of(np.ascontiguousarray(keys[todo]), self._table, self._keys, self._size,
                                  self._limit(), again)
            rows[todo] = again
            self._size = size
        return IntegrateResult(rows=rows, new_voxels=int(self._size - start), dropped_full=int(full),
                               dropped_invalid=int(invalid))

    def _limit(self) -> int:
        """Rows that may be in use now: the allocated ones, at most ``max_voxels``."""
        return len(self._keys) if self.max_voxels is None else min(self.max_voxels, len(self._keys))

    def accumulate(self, rows: np.ndarray, points: np.ndarray, colors: np.ndarray | None = None,
                   labels: np.ndarray | None = None, weights: np.ndarray | float = 1.0) -> None:
        """Fold ``points`` into the voxels ``rows`` (from :meth:`insert`; -1: skipped): means, count, votes."""
        pts = self._points(points)
        n = len(pts)
        col = np.zeros((n, 3), np.float32) if colors is None else np.asarray(colors, np.float32)
        lab = np.zeros(n, np.int32) if labels is None else np.asarray(labels, np.int32)
        wgt = np.broadcast_to(np.asarray(weights, np.float32), (n,))
        rows = np.asarray(rows, np.int64)
        if col.shape != (n, 3) or lab.shape != (n,) or rows.shape != (n,):
            raise ValueError(f'colors must be (N, 3), labels and rows (N,) for {n} points, got {col.shape}, '
                             f'{lab.shape} and {rows.shape}')
        if n and rows.max(initial=-1) >= self._size:
            raise ValueError('rows must come from insert() on this map')
        _accumulate(rows, pts, col, lab, np.ascontiguousarray(wgt), self._position, self._color, self._count,
                    self._vote_label, self._vote_weight)

    def restore(self, positions: np.ndarray, colors: np.ndarray, counts: np.ndarray, labels: np.ndarray,
                weights: np.ndarray) -> IntegrateResult:
        """Add saved voxels (one row each: mean position, colour, observation count, one vote) as they were.

        For a map read back from its PLY: each position lies inside its own voxel, so it finds the same key.
        """
        placed = self.insert(positions)
        ok = placed.rows >= 0
        rows = placed.rows[ok]
        self._position[rows] = np.asarray(positions, np.float32)[ok]
        self._color[rows] = np.asarray(colors, np.float32)[ok]
        self._count[rows] = np.asarray(counts, np.uint32)[ok]
        self._vote_label[rows, 0] = np.asarray(labels, np.int32)[ok]
        self._vote_weight[rows, 0] = np.where(self._vote_label[rows, 0] != 0, np.asarray(weights, np.float32)[ok], 0)
        return placed

    @staticmethod
    def _points(points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f'points must be (N, 3), got shape {pts.shape}')
        return pts

    # ------------------------------------------------------------------ reading
    def lookup(self, points: np.ndarray) -> np.ndarray:
        """The map row of each point's voxel, -1 where the map has none."""
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        keys = np.empty(len(pts), np.int64)
        _point_keys(pts, 1.0 / self.voxel_size, keys)
        rows = np.full(len(pts), -1, np.int64)
        _rows_of(keys, self._table, self._keys, self._size, self._size, rows)  # limit = size: nothing inserted
        return rows

    @property
    def keys(self) -> np.ndarray:
        return self._keys[:self._size]

    @property
    def cells(self) -> np.ndarray:
        """Integer voxel coordinates ``(M, 3)`` of the rows."""
        return key_cells(self.keys)

    @property
    def positions(self) -> np.ndarray:
        """Mean position of each voxel's points ``(M, 3)`` float32 (a view)."""
        return self._position[:self._size]

    @property
    def colors(self) -> np.ndarray:
        """Mean colour ``(M, 3)`` uint8."""
        return np.clip(np.rint(self._color[:self._size]), 0, 255).astype(np.uint8)

    @property
    def counts(self) -> np.ndarray:
        return self._count[:self._size]

    @property
    def background(self) -> np.ndarray:
        """Background weight of each voxel (:meth:`add_background`), float32 (a view)."""
        return self._background[:self._size]

    @property
    def votes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, weights)``, each ``(M, top_k)``: a voxel's candidate labels (0 = empty slot) and weights."""
        return self._vote_label[:self._size], self._vote_weight[:self._size]

    def best_labels(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(label, weight, share)`` per voxel: its strongest label (0: none), weight and share of the votes.

        Of every voxel, or of the voxels ``rows`` (-1: none, all zeros) only. Ties go to the first slot,
        i.e. the label voted for first.
        """
        rows = np.arange(self._size, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, np.int64)
        out = np.zeros(len(rows), np.int32), np.zeros(len(rows), np.float32), np.zeros(len(rows), np.float32)
        _best_of_rows(rows, self._vote_label, self._vote_weight, *out)
        return out

    def weaken(self, rows: np.ndarray, amount: float | np.ndarray) -> None:
        """Take ``amount`` of weight from every vote of the voxels ``rows`` (-1: skipped), down to 0.

        Negative evidence: a voxel seen without a label (background, or a missed detection) makes the
        labels it holds less certain; a vote worn down to nothing frees its slot.
        """
        rows = np.asarray(rows, np.int64)
        _weaken(rows, np.broadcast_to(np.asarray(amount, np.float32), rows.shape).copy(), self._vote_label,
                self._vote_weight)

    def add_background(self, rows: np.ndarray, amount: float = 1.0) -> None:
        """Add ``amount`` to the background weight of the voxel of each of ``rows`` (-1: skipped; repeats add up).

        Unlike :meth:`weaken`, which can only wear down votes a voxel already holds, this is remembered
        for the voxel itself: evidence gathered before a label's first vote still counts against it.
        """
        rows = self._own_rows(rows)
        _add_background(rows, np.float32(amount), self._background)

    def weaken_unlabelled(self, rows: np.ndarray, labels: np.ndarray, held: np.ndarray, skip: np.ndarray,
                          amount: float, background: float = 0.0) -> None:
        """A frame's negative evidence in one pass: :meth:`weaken` and :meth:`add_background` of its unlabelled points.

        Each point ``i`` without a label (``labels[i] == 0``) whose voxel (``rows[i]``; -1: skipped) holds a
        label ``held[i]`` that ``skip`` (one bool per label value) does not mark takes ``amount`` from every
        vote of the voxel and adds ``background`` to its background weight. No temporaries of the frame's size.
        """
        n = len(rows)
        if len(labels) != n or len(held) != n:
            raise ValueError(f'rows, labels and held must have the same length, got {n}, {len(labels)}, {len(held)}')
        refused = _weaken_unlabelled(np.ascontiguousarray(rows, np.int64), np.ascontiguousarray(labels, np.int32),
                                     np.ascontiguousarray(held, np.int32), np.ascontiguousarray(skip, np.bool_),
                                     np.float32(amount), np.float32(background), self._size, self._vote_label,
                                     self._vote_weight, self._background)
        if refused:
            raise ValueError(f'{refused} rows past the map ({self._size} rows) were left out: rows must come from it')

    def _own_rows(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` as int64, refused if one is past the map's rows (the kernels skip negative ones, check no more)."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        if rows.max(initial=-1) >= self._size:
            raise ValueError(f'rows must be -1 or rows of this map (0 to {self._size - 1})')
        return rows

    def pieces(self, labels: np.ndarray) -> np.ndarray:
        """The connected piece of each voxel: voxels of one label (``labels``, one per row; 0 = none) that touch.

        Two voxels touch when their cells are among each other's 26 neighbours. Returns, per row, the row
        number of its piece's representative (the same for every voxel of a piece), -1 for label 0.
        """
        labels = np.ascontiguousarray(labels, np.int32)
        if labels.shape != (self._size,):
            raise ValueError(f'labels must have one entry per voxel ({self._size}), got shape {labels.shape}')
        offsets = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                            if (i, j, k) > (0, 0, 0)], np.int64)  # half of the 26: each pair is seen once
        steps = (offsets[:, 0] << (2 * BITS)) + (offsets[:, 1] << BITS) + offsets[:, 2]
        parent = np.empty(self._size, np.int64)
        _pieces(labels, self._keys, self._size, self._table, steps, parent)
        return parent

    def forget_labels(self, labels: np.ndarray) -> int:
        """Drop every vote for ``labels`` (instances removed from the map); returns how many votes went.

        The slots become empty (weight 0), free for the next label a voxel sees.
        """
        labels = np.asarray(labels, np.int32)
        if not len(labels) or self._size == 0:
            return 0
        lab, w = self._vote_label[:self._size], self._vote_weight[:self._size]
        hit = np.isin(lab, labels) & (w > 0)
        lab[hit] = 0
        w[hit] = 0.0
        return int(hit.sum())

    def relabel(self, mapping: dict[int, int]) -> None:
        """Rename labels (e.g. instances merged into one): votes for the same new label are added up."""
        if not mapping or self._size == 0:
            return
        lab, w = self._vote_label[:self._size], self._vote_weight[:self._size]
        src = np.array(list(mapping), np.int32)
        dst = np.array([mapping[k] for k in mapping], np.int32)
        order = np.argsort(src)
        pos = np.searchsorted(src[order], lab)
        hit = src[order][np.minimum(pos, len(src) - 1)] == lab
        lab[hit] = dst[order][pos[hit]]
        _merge_duplicate_votes(lab, w)


def _sig_point_keys():
    from numba import types

    return types.int64(array('float64', 2), types.float64, array('int64', 1, True))


@kernel(_sig_point_keys)
def _point_keys(pts, inv_voxel, keys):  # pragma: no cover - compiled
    """Each point's voxel key (:func:`~vizion3d_ros.core.voxels.cell_keys`) into ``keys``; returns how many have none.

    -1 marks a point without one (not finite, out of range). One pass and no temporaries: in numpy the
    floor, the range test and the packing took ~20 ms for a VGA frame.
    """
    invalid = 0
    for i in range(pts.shape[0]):
        key = np.int64(0)
        for a in range(3):
            c = np.floor(pts[i, a] * inv_voxel)
            if not (abs(c) < BIAS - 1):  # also False for NaN
                key = np.int64(-1)
                break
            key = (key << BITS) | (np.int64(c) + BIAS)
        keys[i] = key
        invalid += key < 0
    return invalid


def _sig_rows_of():
    from numba import types

    i8 = types.int64
    return types.UniTuple(types.int64, 2)(array('int64', 1), array('int32', 1, True), array('int64', 1, True),
                                          i8, i8, array('int64', 1, True))


@kernel(_sig_rows_of)
def _rows_of(keys, table, row_keys, size, limit, rows):  # pragma: no cover - compiled
    """The row of each key (-1 keys skipped), inserting new keys while fewer than ``limit`` rows are in use.

    Open addressing with linear probing over a power-of-two ``table`` of row numbers (-1 = empty), hashed
    by Fibonacci multiplication. ``limit == size`` makes it a pure lookup. Returns ``(rows in use, keys
    refused for want of room)``; a refused key's row stays -1.
    """
    mask = table.size - 1
    refused = 0
    last_key = np.int64(-1)  # neighbouring pixels mostly share a voxel: no probe for a repeated key
    last_row = np.int64(-1)
    for i in range(keys.size):
        key = keys[i]
        if key < 0:
            continue
        if key == last_key:
            if last_row < 0:
                refused += 1
            else:
                rows[i] = last_row
            continue
        last_key = key
        slot = np.int64(((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & np.uint64(mask))
        while True:
            r = table[slot]
            if r == -1 or row_keys[r] == key:
                break
            slot = (slot + 1) & mask
        if r == -1:
            if size >= limit:
                refused += 1
                last_row = -1
                continue
            r = size
            size += 1
            table[slot] = r
            row_keys[r] = key
        rows[i] = r
        last_row = r
    return size, refused


def _sig_accumulate():
    from numba import types

    return types.void(array('int64', 1), array('float64', 2), array('float32', 2), array('int32', 1),
                      array('float32', 1), array('float32', 2, True), array('float32', 2, True),
                      array('uint32', 1, True), array('int32', 2, True), array('float32', 2, True))


@kernel(_sig_accumulate)
def _accumulate(rows, pts, col, lab, wgt, position, color, count, vote_label, vote_weight):  # pragma: no cover
    """Fold each point (row -1: skipped) into its voxel: running means, count and top-k votes.

    A label already among the voxel's votes gains the weight; a new one takes an empty slot, or the
    weakest one's if it weighs more; label 0 does not vote.
    """
    k = vote_label.shape[1]
    for i in range(rows.size):
        r = rows[i]
        if r < 0:
            continue
        c = count[r] + 1
        count[r] = c
        inv = np.float32(1.0) / np.float32(c)
        for a in range(3):
            position[r, a] += (np.float32(pts[i, a]) - position[r, a]) * inv
            color[r, a] += (col[i, a] - color[r, a]) * inv
        label = lab[i]
        if label == 0:
            continue
        w = wgt[i]
        found = -1
        empty = -1
        weakest = 0
        for j in range(k):
            if vote_weight[r, j] > 0 and vote_label[r, j] == label:
                found = j
                break
            if vote_weight[r, j] <= 0:
                if empty < 0:
                    empty = j
            elif vote_weight[r, j] < vote_weight[r, weakest] or vote_weight[r, weakest] <= 0:
                weakest = j
        if found >= 0:
            vote_weight[r, found] += w
        elif empty >= 0:
            vote_label[r, empty] = label
            vote_weight[r, empty] = w
        elif w > vote_weight[r, weakest]:
            vote_label[r, weakest] = label
            vote_weight[r, weakest] = w


def _sig_rehash():
    from numba import types

    return types.void(array('int64', 1), types.int64, array('int32', 1, True))


@kernel(_sig_rehash)
def _rehash(row_keys, size, table):  # pragma: no cover - compiled
    """Fill an empty table with the first ``size`` rows."""
    mask = table.size - 1
    for r in range(size):
        slot = np.int64(((np.uint64(row_keys[r]) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32))
                        & np.uint64(mask))
        while table[slot] != -1:
            slot = (slot + 1) & mask
        table[slot] = r


def _sig_merge():
    from numba import types

    return types.void(array('int32', 2, True), array('float32', 2, True))


@kernel(_sig_merge)
def _merge_duplicate_votes(labels, weights):  # pragma: no cover - compiled
    """Within each row, add the weight of repeated labels into their first slot and empty the others."""
    n, k = labels.shape
    for r in range(n):
        for a in range(k):
            if weights[r, a] <= 0:
                continue
            for b in range(a + 1, k):
                if weights[r, b] > 0 and labels[r, b] == labels[r, a]:
                    weights[r, a] += weights[r, b]
                    weights[r, b] = 0
                    labels[r, b] = 0


def _sig_weaken():
    from numba import types

    return types.void(array('int64', 1), array('float32', 1), array('int32', 2, True), array('float32', 2, True))


@kernel(_sig_weaken)
def _weaken(rows, amount, labels, weights):  # pragma: no cover - compiled
    """Subtract ``amount[i]`` from every vote of row ``rows[i]``; a vote at or below 0 is emptied."""
    k = labels.shape[1]
    for i in range(rows.size):
        r = rows[i]
        if r < 0:
            continue
        for j in range(k):
            if weights[r, j] > 0:
                w = weights[r, j] - amount[i]
                if w <= 0:
                    weights[r, j] = 0
                    labels[r, j] = 0
                else:
                    weights[r, j] = w


def _sig_best():
    from numba import types

    return types.void(array('int64', 1, True), array('int32', 2, True), array('float32', 2, True),
                      array('int32', 1, True), array('float32', 1, True), array('float32', 1, True))


@kernel(_sig_best)
def _best_of_rows(rows, labels, weights, best, top, share):  # pragma: no cover - compiled
    """Per row (-1: left at 0): the strongest label (the first slot on a tie), its weight and share of the votes.

    One pass without the (N, k) gathers and temporaries numpy needs (~20 ms for a VGA frame's rows).
    """
    k = labels.shape[1]
    for i in range(rows.size):
        r = rows[i]
        if r < 0:
            continue
        b = 0
        total = np.float32(0.0)
        for j in range(k):
            w = weights[r, j]
            if w > 0:
                total += w
            if w > weights[r, b]:
                b = j
        if weights[r, b] > 0:
            best[i] = labels[r, b]
            top[i] = weights[r, b]
            share[i] = weights[r, b] / total


def _sig_add_background():
    from numba import types

    return types.void(array('int64', 1), types.float32, array('float32', 1, True))


@kernel(_sig_add_background)
def _add_background(rows, amount, background):  # pragma: no cover - compiled
    """Add ``amount`` to ``background[rows[i]]`` for every ``rows[i] >= 0``."""
    for i in range(rows.size):
        r = rows[i]
        if r >= 0:
            background[r] += amount


def _sig_weaken_unlabelled():
    from numba import types

    def c(dtype, ndim, writable=False):  # C-contiguous: a few % of a VGA frame's 2-3 ms here
        return array(dtype, ndim, writable, layout='C')

    return types.int64(c('int64', 1), c('int32', 1), c('int32', 1), c('bool_', 1), types.float32, types.float32,
                       types.int64, c('int32', 2, True), c('float32', 2, True), c('float32', 1, True))


@kernel(_sig_weaken_unlabelled)
def _weaken_unlabelled(rows, labels, held, skip, amount, background, size, vote_label, vote_weight,
                       background_weight):  # pragma: no cover - compiled
    """:func:`_weaken` and :func:`_add_background` of the unlabelled points whose held label ``skip`` does not mark.

    Consecutive such points in one voxel (neighbouring pixels mostly are) are applied at once: n times
    ``amount`` taken at once, clipped at 0, is the same as n times one. Returns how many points had a row
    at or past ``size`` (left alone).
    """
    k = vote_label.shape[1]
    refused = 0
    cur = np.int64(-1)
    n = 0
    for i in range(rows.size + 1):
        r = np.int64(-1)
        if i < rows.size:
            r = rows[i]
            if r < 0 or labels[i] != 0:
                continue
            if r >= size:
                refused += 1
                continue
            h = held[i]
            if 0 <= h < skip.size and skip[h]:
                continue
            if r == cur:
                n += 1
                continue
        if cur >= 0:  # the run of row cur ends: apply it
            if amount > 0:
                take = amount * np.float32(n)
                for j in range(k):
                    if vote_weight[cur, j] > 0:
                        w = vote_weight[cur, j] - take
                        if w <= 0:
                            vote_weight[cur, j] = 0
                            vote_label[cur, j] = 0
                        else:
                            vote_weight[cur, j] = w
            background_weight[cur] += background * np.float32(n)
        cur = r
        n = 1
    return refused


def _sig_pieces():
    from numba import types

    return types.void(array('int32', 1), array('int64', 1), types.int64, array('int32', 1), array('int64', 1),
                      array('int64', 1, True))


@kernel(_sig_pieces)
def _pieces(labels, row_keys, size, table, steps, parent):  # pragma: no cover - compiled
    """Union-find over the rows: a labelled row joins each neighbour (key + ``steps[j]``) of the same label.

    ``parent`` ends as each row's piece representative (the smallest row of the piece), -1 for label 0.
    """
    mask = table.size - 1
    for r in range(size):
        parent[r] = r if labels[r] > 0 else -1
    for r in range(size):
        lab = labels[r]
        if lab <= 0:
            continue
        for j in range(steps.size):
            key = row_keys[r] + steps[j]
            slot = np.int64(((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & np.uint64(mask))
            n = -1
            while True:
                t = table[slot]
                if t == -1:
                    break
                if row_keys[t] == key:
                    n = t
                    break
                slot = (slot + 1) & mask
            if n < 0 or n >= size or labels[n] != lab:
                continue
            a = r  # the roots of both, halving the paths on the way
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            b = n
            while parent[b] != b:
                parent[b] = parent[parent[b]]
                b = parent[b]
            if a < b:
                parent[b] = a
            elif b < a:
                parent[a] = b
    for r in range(size):
        if parent[r] >= 0:
            a = r
            while parent[a] != a:
                a = parent[a]
            parent[r] = a
