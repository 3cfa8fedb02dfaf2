"""3D label propagation on a voxel hash: which object (or the background) hidden points belong to.

Points the camera cannot see (the sides and back of an object seen by a LiDAR beside the camera)
belong to an object when a chain of nearby points links them to its visible points. Touching surfaces
link too (an object stands on the floor), so every visible surface grows at once, the background's
as well, and each hidden point takes the label of the surface that reaches it first: the floor behind
an object is reached from the visible floor around it before the object gets there.
"""
from __future__ import annotations

import numpy as np

from ..voxels import NEIGHBOURS, cell_keys, key_cells


def propagate_labels(seeds: np.ndarray, seed_labels: np.ndarray, candidates: np.ndarray, voxel: float,
                     max_steps: int = 64) -> np.ndarray:
    """Label of each candidate point (``(C, 3)``): that of the seed region reaching its voxel first.

    Regions hop between 26-neighbouring voxels of size ``voxel`` through candidate voxels.
    ``seed_labels`` are ints >= 0 (use 0 for the background); candidates no seed reaches get -1. A
    candidate voxel reached by several labels in the same hop takes the largest label count, ties the
    smaller label.
    """
    out = np.full(len(candidates), -1, np.int64)
    if len(candidates) == 0 or len(seeds) == 0:
        return out
    inv = 1.0 / float(voxel)
    cand_keys, cand_voxel = np.unique(cell_keys(np.floor(candidates * inv).astype(np.int64)), return_inverse=True)
    voxel_label = np.full(len(cand_keys), -1, np.int64)
    # only seeds near the candidates can reach them
    lo = candidates.min(axis=0) - 2 * voxel
    hi = candidates.max(axis=0) + 2 * voxel
    near = np.all((seeds >= lo) & (seeds <= hi), axis=1)
    seeds, seed_labels = seeds[near], np.asarray(seed_labels)[near]
    if len(seeds) == 0:
        return out
    # a voxel holding seeds of several labels keeps the smallest (objects are numbered from 1, so
    # where an object touches the background its voxel stays background): order by label (a cheap
    # stable sort of small ints), then np.unique's first occurrence is the smallest label
    order = np.argsort(seed_labels, kind='stable')
    seed_keys = cell_keys(np.floor(seeds[order] * inv).astype(np.int64))
    frontier_keys, first = np.unique(seed_keys, return_index=True)
    frontier_labels = seed_labels[order][first]
    # seeds inside candidate voxels claim them right away
    pos = np.minimum(np.searchsorted(cand_keys, frontier_keys), len(cand_keys) - 1)
    own = cand_keys[pos] == frontier_keys
    voxel_label[pos[own]] = frontier_labels[own]
    for _ in range(max_steps):
        neigh = cell_keys(key_cells(frontier_keys)[:, None, :] + NEIGHBOURS[None]).reshape(-1)
        lab = np.repeat(frontier_labels, len(NEIGHBOURS))
        pos = np.minimum(np.searchsorted(cand_keys, neigh), len(cand_keys) - 1)
        hit = (cand_keys[pos] == neigh) & (voxel_label[pos] < 0)
        if not hit.any():
            break
        pos, lab = pos[hit], lab[hit]
        # majority label per newly reached voxel
        pairs, counts = np.unique(np.stack([pos, lab], axis=1), axis=0, return_counts=True)
        order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
        pairs = pairs[order]
        first = np.r_[True, pairs[1:, 0] != pairs[:-1, 0]]
        new_pos, new_lab = pairs[first, 0], pairs[first, 1]
        voxel_label[new_pos] = new_lab
        frontier_keys, frontier_labels = cand_keys[new_pos], new_lab
    out[:] = voxel_label[cand_voxel]
    return out
