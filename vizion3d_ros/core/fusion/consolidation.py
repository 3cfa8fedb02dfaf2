"""Finding map instances that are one object: they hold votes in the same voxels.

Association can fail for a frame (a pose error, an object first seen from two sides, a mask split in
two), and then one object gets two ids. Both ids then vote in the same voxels, so the evidence of a
duplicate is in the map itself: the share of the smaller instance's voxels that also hold a vote for
the other. Pairs above ``min_overlap`` whose classes agree are merged (transitively); which of a group
keeps its id is the caller's choice.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def shared_voxels(vote_labels: np.ndarray, vote_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                 np.ndarray]:
    """``(a, b, shared, size)``: every pair of labels ``a < b`` voting together in ``shared`` voxels.

    ``vote_labels`` / ``vote_weights`` are a map's ``(M, k)`` top-k slots (label 0 or weight 0: empty).
    ``size[label]`` is the number of voxels holding a vote for the label (indexed by label value).
    """
    lab = np.where(vote_weights > 0, vote_labels, 0).astype(np.int64)
    top = int(lab.max(initial=0))
    size = np.bincount(lab[lab > 0], minlength=top + 1)
    k = lab.shape[1]
    firsts, seconds = np.triu_indices(k, 1)
    a = lab[:, firsts].ravel()
    b = lab[:, seconds].ravel()
    ok = (a > 0) & (b > 0) & (a != b)
    a, b = a[ok], b[ok]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pair, shared = np.unique(lo * (top + 1) + hi, return_counts=True)
    return pair // (top + 1), pair % (top + 1), shared, size


def merge_groups(vote_labels: np.ndarray, vote_weights: np.ndarray, classes: dict[int, int],
                 min_overlap: float = 0.3) -> list[list[int]]:
    """Groups (of two or more labels, each sorted) that are one object.

    Two labels are linked when they share at least ``min_overlap`` of the smaller one's voxels and
    ``classes[label]`` agree; groups are the connected components of the links. Labels missing from
    ``classes`` are never merged.
    """
    a, b, shared, size = shared_voxels(vote_labels, vote_weights)
    if not len(a):
        return []
    cls_a = np.array([classes.get(int(x), -2) for x in a])
    cls_b = np.array([classes.get(int(x), -3) for x in b])
    smaller = np.minimum(size[a], size[b])
    link = (cls_a == cls_b) & (shared >= min_overlap * smaller)
    if not link.any():
        return []
    nodes, inverse = np.unique(np.concatenate([a[link], b[link]]), return_inverse=True)
    n = len(nodes)
    half = int(link.sum())
    graph = coo_matrix((np.ones(half), (inverse[:half], inverse[half:])), shape=(n, n))
    count, component = connected_components(graph, directed=False)
    return [sorted(int(x) for x in nodes[component == c]) for c in range(count)]
