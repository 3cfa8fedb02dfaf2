"""Labels for the points no mask covered, from their labelled neighbours (sparse labels to the whole scene).

A point takes the label most of its labelled neighbours within ``max_distance`` hold, when at least
``min_neighbors`` of them are there and no other label is as frequent; otherwise it abstains. The
spatial index (scipy's cKDTree) holds the labelled points only, and the unlabelled ones are queried in
batches, so peak memory stays bounded whatever the cloud's size. ``iterations`` > 1 repeats the pass
with the points labelled so far, which carries labels further along surfaces than one radius.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PropagationResult:
    """The labels after propagation and how many points had one before and after.

    ``support`` is, per point, the share of the neighbours' votes its label won (1 for points labelled
    before, 0 for points still without a label): how sure the propagation was.
    """

    labels: np.ndarray
    labelled_before: int
    labelled_after: int
    support: np.ndarray

    @property
    def coverage_before(self) -> float:
        return self.labelled_before / max(len(self.labels), 1)

    @property
    def coverage_after(self) -> float:
        return self.labelled_after / max(len(self.labels), 1)


def propagate(points: np.ndarray, labels: np.ndarray, max_distance: float = 0.05, min_neighbors: int = 3,
              neighbors: int = 16, iterations: int = 1, trusted: np.ndarray | None = None,
              batch: int = 100_000) -> PropagationResult:
    """Label the unlabelled (0) ``points`` ``(N, 3)`` from the labelled ones (``labels`` ``(N,)``, > 0).

    The vote looks at the ``neighbors`` nearest labelled points within ``max_distance``. ``trusted``
    (``(N,)`` bool) limits the voters (e.g. to points near some camera: far labels are noisy); untrusted
    labelled points keep their own label but give none.
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(points, np.float64)
    out = np.asarray(labels).astype(np.int64, copy=True)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(out) != len(pts):
        raise ValueError(f'points must be (N, 3) and labels (N,), got {pts.shape} and {out.shape}')
    if max_distance <= 0 or min_neighbors < 1 or neighbors < min_neighbors:
        raise ValueError('need max_distance > 0 and 1 <= min_neighbors <= neighbors')
    before = int((out > 0).sum())
    support = (out > 0).astype(np.float32)
    voter_ok = np.ones(len(out), bool) if trusted is None else np.asarray(trusted, bool)
    for _ in range(max(int(iterations), 1)):
        voters = np.flatnonzero((out > 0) & voter_ok)
        todo = np.flatnonzero(out == 0)
        if voters.size < min_neighbors or todo.size == 0:
            break
        classes, dense = np.unique(out[voters], return_inverse=True)  # labels as 1..C
        tree = cKDTree(pts[voters])
        got = np.zeros(todo.size, np.int64)
        share = np.zeros(todo.size, np.float32)
        for start in range(0, todo.size, batch):
            q = todo[start:start + batch]
            _, idx = tree.query(pts[q], k=neighbors, distance_upper_bound=max_distance)
            idx = idx.reshape(len(q), -1)
            found = idx < voters.size
            lab = np.where(found, dense[np.minimum(idx, voters.size - 1)] + 1, 0)
            got[start:start + len(q)], share[start:start + len(q)] = _majority(lab, found.sum(axis=1), len(classes),
                                                                               min_neighbors)
        hit = got > 0
        if not hit.any():
            break
        out[todo[hit]] = classes[got[hit] - 1]
        support[todo[hit]] = share[hit]
    return PropagationResult(out, before, int((out > 0).sum()), support)


def _majority(lab: np.ndarray, n_found: np.ndarray, num_classes: int, quorum: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of neighbour labels (1..C, 0 = none): the most frequent one (0 on a tie or below quorum), its share."""
    rows = len(lab)
    counts = np.bincount((np.arange(rows)[:, None] * (num_classes + 1) + lab).ravel(),
                         minlength=rows * (num_classes + 1)).reshape(rows, num_classes + 1)
    counts[:, 0] = 0
    best = np.argmax(counts, axis=1)
    top = counts[np.arange(rows), best]
    counts[np.arange(rows), best] = -1
    tie = counts.max(axis=1) == top
    won = (n_found >= quorum) & ~tie & (top > 0)
    return np.where(won, best, 0), np.where(won, top / np.maximum(n_found, 1), 0.0).astype(np.float32)
