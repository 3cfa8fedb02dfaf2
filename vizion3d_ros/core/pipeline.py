"""Segment an image and lift its instances onto a point cloud.

The one implementation behind the ROS node, the Python API and the command-line tools.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .camera import PinholeIntrinsics, project_gl
from .geometry import ObjectGeometry, object_geometry
from .lifting import LiftConfig, lift_masks
from .segmentation.base import Segmentation, SegmentationBackend


@dataclass
class LiftedObject:
    """One instance: its 2D detection and the indices of its points in the source cloud."""

    id: int
    class_id: int
    label: str
    confidence: float
    bbox_2d: np.ndarray  # (4,) float32 [x1, y1, x2, y2] pixels
    mask: np.ndarray  # (H, W) bool, full image (a view into the segmentation)
    point_indices: np.ndarray  # (M,) uint32, ascending
    geometry: ObjectGeometry

    def mask_crop(self) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """Tight crop of the mask: ``((x_offset, y_offset, width, height), crop)``; zeros if empty."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        if rows.size == 0:
            return (0, 0, 0, 0), np.zeros((0, 0), bool)
        cols = np.flatnonzero(self.mask[rows[0]:rows[-1] + 1].any(axis=0))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        return (x0, y0, x1 - x0, y1 - y0), self.mask[y0:y1, x0:x1]


@dataclass
class FrameResult:
    """Everything one frame produced; ``timings_ms`` splits the cost by stage."""

    objects: list[LiftedObject]
    segmentation: Segmentation
    num_points: int
    timings_ms: dict[str, float] = field(default_factory=dict)


def lift_segmentation(points_gl: np.ndarray, cam: PinholeIntrinsics, seg: Segmentation,
                      mode: str | None = None, stats_points: np.ndarray | None = None,
                      min_points: int = 0, config: LiftConfig | None = None) -> list[LiftedObject]:
    """Lift every instance of ``seg`` onto ``points_gl`` (OpenGL camera space).

    ``config`` holds the lifting options (default :class:`LiftConfig`, the ``visible`` mode); ``mode``
    overrides its mode. Centroids and boxes are computed on ``stats_points`` (same points, any frame:
    the ROS node passes the cloud in its own frame) or on ``points_gl``. Instances with fewer than
    ``min_points`` points are dropped. Ids are 1-based in descending confidence.
    """
    ranked, groups = lift_groups(points_gl, cam, seg, mode, config)
    return make_objects(ranked, groups, points_gl if stats_points is None else stats_points, min_points)


def lift_groups(points_gl: np.ndarray, cam: PinholeIntrinsics, seg: Segmentation, mode: str | None = None,
                config: LiftConfig | None = None) -> tuple[Segmentation, list[np.ndarray]]:
    """``seg`` sorted by descending confidence, and the point indices of each of its instances."""
    ranked = seg if _is_sorted(seg.scores) else seg.sorted()
    return ranked, lift_masks(points_gl, cam, ranked.masks, ranked.scores, ranked.boxes, mode=mode,
                              projection=project_gl(points_gl, cam), config=config)


def make_objects(seg: Segmentation, groups: list[np.ndarray], stats_points: np.ndarray,
                 min_points: int = 0) -> list[LiftedObject]:
    """One :class:`LiftedObject` per group of ``seg`` (sorted) with at least ``min_points`` points.

    Apart from the lifting so that a caller can time the per-object work (geometry) on its own.
    """
    objects: list[LiftedObject] = []
    for k, idx in enumerate(groups):
        if len(idx) < min_points:
            continue
        objects.append(LiftedObject(
            id=len(objects) + 1, class_id=int(seg.class_ids[k]), label=seg.labels[k],
            confidence=float(seg.scores[k]), bbox_2d=seg.boxes[k], mask=seg.masks[k],
            point_indices=idx, geometry=object_geometry(stats_points, idx)))
    return objects


def _is_sorted(scores: np.ndarray) -> bool:
    return bool(np.all(scores[:-1] >= scores[1:])) if len(scores) > 1 else True


class FramePipeline:
    """Segmentation backend + lifting, with per-stage timings."""

    def __init__(self, backend: SegmentationBackend, lift_mode: str | None = None, min_points: int = 1,
                 lift_config: LiftConfig | None = None):
        self.backend = backend
        self.lift_config = lift_config or LiftConfig()
        self.lift_mode = lift_mode or self.lift_config.mode
        self.min_points = min_points

    def process(self, image_rgb: np.ndarray, cam: PinholeIntrinsics, points_gl: np.ndarray,
                stats_points: np.ndarray | None = None) -> FrameResult:
        """Segment ``image_rgb`` and lift the instances onto ``points_gl``."""
        h, w = image_rgb.shape[:2]
        if (w, h) != (cam.width, cam.height):
            raise ValueError(f'image is {w}x{h} but the camera intrinsics are for '
                             f'{cam.width}x{cam.height}')
        t0 = time.perf_counter()
        seg = self.backend.segment(image_rgb)
        t1 = time.perf_counter()
        ranked, groups = lift_groups(points_gl, cam, seg, self.lift_mode, self.lift_config)
        t2 = time.perf_counter()
        objects = make_objects(ranked, groups, points_gl if stats_points is None else stats_points,
                               self.min_points)
        t3 = time.perf_counter()
        return FrameResult(objects=objects, segmentation=seg, num_points=len(points_gl),
                           timings_ms={'inference': (t1 - t0) * 1e3, 'lifting': (t2 - t1) * 1e3,
                                       'geometry': (t3 - t2) * 1e3})
