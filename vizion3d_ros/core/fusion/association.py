"""Which map instance each of a frame's masks shows: one-to-one, by overlap on the points the camera sees.

The overlap of a mask with a map instance is counted on the frame's own points: each point looks up its
voxel in the map, whose strongest vote names the instance there. So only what the camera sees now can
overlap (occluded parts of an instance are not in the frame), and nothing needs rendering.
"""
from __future__ import annotations

import numpy as np


def overlap_counts(mask_of_point: np.ndarray, instance_of_point: np.ndarray, num_masks: int,
                   instance_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(overlap (M, I), mask sizes (M,), visible instance sizes (I,))`` over the frame's points.

    ``mask_of_point`` is the mask index of each point (-1: none), ``instance_of_point`` the map instance
    its voxel holds (0: none); ``instance_ids`` lists the instances to count (the columns).
    """
    col = np.searchsorted(instance_ids, instance_of_point)
    col = np.minimum(col, max(len(instance_ids) - 1, 0))
    known = (len(instance_ids) > 0) & (instance_of_point > 0)
    if len(instance_ids):
        known &= instance_ids[col] == instance_of_point
    in_mask = mask_of_point >= 0
    both = in_mask & known
    n = len(instance_ids)
    overlap = np.bincount(mask_of_point[both] * n + col[both], minlength=num_masks * n)[:num_masks * n]
    overlap = overlap.reshape(num_masks, n)
    mask_sizes = np.bincount(mask_of_point[in_mask], minlength=num_masks)[:num_masks]
    visible = np.bincount(col[known], minlength=len(instance_ids))[:len(instance_ids)]
    return overlap, mask_sizes, visible


def match_masks(overlap: np.ndarray, mask_sizes: np.ndarray, visible: np.ndarray, same_class: np.ndarray,
                min_iou: float = 0.2, class_penalty: float = 0.1, min_share: float = 0.0) -> list[tuple[int, int]]:
    """One-to-one (mask, instance column) pairs maximising IoU, each pair with IoU >= ``min_iou``.

    IoU is counted on the frame's points (see :func:`overlap_counts`). A pair of different classes
    (``same_class`` False) costs ``class_penalty`` of IoU: a detector's occasional wrong class must not
    split an object, but between two candidates of similar overlap the class decides. Either the mask
    or the instance must lie mostly in the other (``min_share`` of its points): a mask that spreads far
    over other surfaces (a spurious blob over a small object) must not vote for that object.
    """
    from scipy.optimize import linear_sum_assignment

    m, n = overlap.shape
    if m == 0 or n == 0:
        return []
    union = mask_sizes[:, None] + visible[None, :] - overlap
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = np.where(union > 0, overlap / union, 0.0)
    with np.errstate(invalid='ignore', divide='ignore'):
        share = np.maximum(overlap / np.maximum(mask_sizes[:, None], 1), overlap / np.maximum(visible[None, :], 1))
    score = iou - np.where(same_class, 0.0, class_penalty)
    rows, cols = linear_sum_assignment(-score)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= min_iou and share[r, c] >= min_share]
