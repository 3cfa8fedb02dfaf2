"""Lifting 2D instance masks onto the 3D points that project into them.

Two modes:

* ``naive``: every point whose projection lands in a mask gets that mask's instance; overlapping masks
  share points. This is what most mask-to-cloud nodes do; kept for comparison.
* ``exclusive`` (default): each pixel belongs to at most one instance (the most confident mask that
  covers it), so each point belongs to at most one instance.

Both work on a single projection of the cloud and never loop over points in Python.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .camera import PinholeIntrinsics, Projection, project_gl

LIFT_MODES = ('exclusive', 'naive')


def label_image(masks: np.ndarray, scores: Sequence[float] | np.ndarray,
                boxes: np.ndarray | None = None) -> np.ndarray:
    """Paint instance masks into one int32 image: 0 = none, k + 1 = instance k.

    Where masks overlap the more confident instance wins. ``boxes`` (``[x1, y1, x2, y2]``, pixels)
    restricts each mask's painting to its box, which makes painting cost proportional to box area.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f'masks must be (K, H, W), got shape {masks.shape}')
    k, h, w = masks.shape
    labels = np.zeros((h, w), dtype=np.int32)
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind='stable')  # low -> high: high wins
    for i in order:
        y0, y1, x0, x1 = _box_slice(boxes[i] if boxes is not None else None, h, w)
        region = labels[y0:y1, x0:x1]
        region[masks[i, y0:y1, x0:x1]] = i + 1
    return labels


def _box_slice(box: np.ndarray | None, h: int, w: int) -> tuple[int, int, int, int]:
    if box is None:
        return 0, h, 0, w
    x0 = max(int(np.floor(box[0])), 0)
    y0 = max(int(np.floor(box[1])), 0)
    x1 = min(int(np.ceil(box[2])) + 1, w)
    y1 = min(int(np.ceil(box[3])) + 1, h)
    return y0, max(y1, y0), x0, max(x1, x0)


def group_by_label(point_ids: np.ndarray, labels: np.ndarray, num_instances: int) -> list[np.ndarray]:
    """Split ``point_ids`` by ``labels`` (1..num_instances; 0 is dropped) into sorted index arrays."""
    keep = labels > 0
    ids = point_ids[keep]
    lab = labels[keep]
    order = np.argsort(lab, kind='stable')  # stable: indices stay ascending inside each group
    counts = np.bincount(lab, minlength=num_instances + 1)[1:]
    bounds = np.cumsum(counts)[:-1]
    return np.split(ids[order].astype(np.uint32, copy=False), bounds) if num_instances else []


def lift_masks(points_gl: np.ndarray, cam: PinholeIntrinsics, masks: np.ndarray,
               scores: Sequence[float] | np.ndarray, boxes: np.ndarray | None = None,
               mode: str = 'exclusive', projection: Projection | None = None) -> list[np.ndarray]:
    """Return, per instance, the ascending uint32 indices of the points whose projection is in its mask.

    ``points_gl`` is ``(N, 3)`` in OpenGL camera space; ``masks`` is ``(K, H, W)`` boolean at the
    camera's image size. A precomputed ``projection`` of the same points may be passed to share it.
    """
    if mode not in LIFT_MODES:
        raise ValueError(f'unknown lifting mode {mode!r}; expected one of {LIFT_MODES}')
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3 or masks.shape[1:] != (cam.height, cam.width):
        raise ValueError(f'masks must be (K, {cam.height}, {cam.width}) for this camera, got {masks.shape}')
    k = masks.shape[0]
    if k == 0:
        return []
    proj = projection if projection is not None else project_gl(points_gl, cam)
    point_ids = proj.indices
    if mode == 'exclusive':
        labels = label_image(masks, scores, boxes)[proj.v, proj.u]
        return group_by_label(point_ids, labels, k)
    flat = proj.v.astype(np.int64) * cam.width + proj.u
    return [point_ids[masks[i].reshape(-1)[flat]].astype(np.uint32) for i in range(k)]
