"""Segment an image and lift its instances onto a point cloud.

The one implementation behind the ROS node, the Python API and the command-line tools.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

import numpy as np

from .camera.pinhole import PinholeIntrinsics, Projection
from .jit import warm_kernels
from .lifting.geometry import ObjectGeometry, object_geometry
from .lifting.lift import LiftConfig, PreparedCloud, lift_masks, prepare_cloud
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
                config: LiftConfig | None = None,
                projection: Projection | PreparedCloud | None = None) -> tuple[Segmentation, list[np.ndarray]]:
    """``seg`` sorted by descending confidence, and the point indices of each of its instances.

    ``projection``: ``project_gl(points_gl, cam)`` or ``prepare_cloud(...)`` when the caller already has it.
    """
    ranked = seg if _is_sorted(seg.scores) else seg.sorted()
    return ranked, lift_masks(points_gl, cam, ranked.masks, ranked.scores, ranked.boxes, mode=mode,
                              projection=projection, config=config)


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
    """Segmentation backend + lifting, with per-stage timings.

    Creating one compiles the lifting's kernels (:func:`~.jit.warm_kernels`), so that no frame does.
    Segmentation runs on the pipeline's own inference thread, so that the caller can prepare the cloud
    (parse it, transform it, project it) while the model runs: see :meth:`start`. Torch, OpenCV and
    numpy release the GIL in their heavy parts, so the two overlap for real, and with a GPU the cloud
    work comes for free.
    """

    def __init__(self, backend: SegmentationBackend, lift_mode: str | None = None, min_points: int = 1,
                 lift_config: LiftConfig | None = None):
        self.backend = backend
        self.lift_config = lift_config or LiftConfig()
        self.lift_mode = lift_mode or self.lift_config.mode
        self.min_points = min_points
        # one thread, kept for the pipeline's life: torch keeps per-thread state (its OpenMP team), so
        # a fresh thread per frame would cost more than it saves. It ends with the pipeline (see close).
        self._inference: ThreadPoolExecutor | None = None
        # the lifting's compiled kernels, now rather than on the first frame (the node builds its
        # pipeline while it activates); loaded from numba's disk cache after the first run, ~1 s before
        warm_kernels()

    def start(self, image_rgb: np.ndarray, cam: PinholeIntrinsics) -> PendingFrame:
        """Start segmenting ``image_rgb`` on the inference thread; returns at once.

        Use the result as a context manager: leaving it waits for the inference, whatever happened
        in between, so a frame rejected while the model runs never overlaps the next one.
        """
        h, w = image_rgb.shape[:2]
        if (w, h) != (cam.width, cam.height):
            raise ValueError(f'image is {w}x{h} but the camera intrinsics are for '
                             f'{cam.width}x{cam.height}')
        if self._inference is None:
            self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix='vizion3d-inference')
        return PendingFrame(self, cam, self._inference.submit(_timed_segment, self.backend, image_rgb))

    def process(self, image_rgb: np.ndarray, cam: PinholeIntrinsics, points_gl: np.ndarray,
                stats_points: np.ndarray | None = None) -> FrameResult:
        """Segment ``image_rgb`` and lift the instances onto ``points_gl`` (projected while the model runs)."""
        with self.start(image_rgb, cam) as frame:
            return frame.finish(points_gl, stats_points)

    def close(self) -> None:
        """End the inference thread (after the inference in progress, if any)."""
        if self._inference is not None:
            self._inference.shutdown(wait=True)
            self._inference = None


def _timed_segment(backend: SegmentationBackend, image_rgb: np.ndarray) -> tuple[Segmentation, float]:
    t0 = time.perf_counter()
    seg = backend.segment(image_rgb)
    return seg, (time.perf_counter() - t0) * 1e3


class PendingFrame:
    """A frame whose segmentation is running; :meth:`finish` lifts it onto the cloud.

    Timings (``FrameResult.timings_ms``): ``inference`` (the backend, on its thread), ``alongside``
    (the caller's work between :meth:`FramePipeline.start` and the masks being needed, the cloud's
    projection and visible surface included: it overlaps the inference), ``lifting`` (after the masks
    are there) and ``geometry``.
    """

    def __init__(self, pipeline: FramePipeline, cam: PinholeIntrinsics, future: Future) -> None:
        self._pipeline = pipeline
        self._cam = cam
        self._future = future
        self._started = time.perf_counter()

    def __enter__(self) -> PendingFrame:
        return self

    def __exit__(self, *exc_info) -> None:
        wait([self._future])  # an exception of the inference itself surfaces in finish(), not here

    def finish(self, points_gl: np.ndarray, stats_points: np.ndarray | None = None) -> FrameResult:
        """Project ``points_gl`` (still alongside the inference), wait for the masks and lift them."""
        p = self._pipeline
        config = replace(p.lift_config, mode=p.lift_mode)
        prepared = prepare_cloud(points_gl, self._cam, config)
        t0 = time.perf_counter()
        seg, inference_ms = self._future.result()
        t1 = time.perf_counter()
        ranked, groups = lift_groups(points_gl, self._cam, seg, None, config, prepared)
        t2 = time.perf_counter()
        objects = make_objects(ranked, groups, points_gl if stats_points is None else stats_points, p.min_points)
        t3 = time.perf_counter()
        return FrameResult(objects=objects, segmentation=seg, num_points=len(points_gl),
                           timings_ms={'inference': inference_ms, 'alongside': (t0 - self._started) * 1e3,
                                       'lifting': (t2 - t1) * 1e3, 'geometry': (t3 - t2) * 1e3})
