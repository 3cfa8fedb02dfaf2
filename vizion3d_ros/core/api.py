"""vizion3D-compatible Python API: ``ObjectMaskAnnotation3D().run(ObjectMaskAnnotation3DCommand(...))``.

Same task, names and meaning as vizion3D's ``vizion3d.annotation.ObjectMaskAnnotation3D``, so code
written for it runs here; the work is done by :class:`~.pipeline.FramePipeline` (the implementation the
ROS node uses), so results match the node's.

Point clouds are in OpenGL/viewer camera space by default, as in vizion3D: X right, Y up, Z backward
(the camera looks down -Z), metres. ``cloud_frame='optical'`` takes ROS optical-frame clouds instead
(X right, Y down, Z forward), and ``extrinsic`` (4x4, camera <- cloud) moves clouds that are not in the
camera's frame into it first. Outputs (point coordinates, centroids, boxes, clouds) are always in the
input cloud's own coordinates and point order.

Example::

    import open3d as o3d
    from vizion3d_ros.core.api import ObjectMaskAnnotation3D, ObjectMaskAnnotation3DCommand

    pcd = o3d.io.read_point_cloud('scene.ply')
    result = ObjectMaskAnnotation3D().run(ObjectMaskAnnotation3DCommand(point_cloud=pcd, image_input='scene.jpg'))
    for ann in result.annotations:
        print(f'{ann.label:20s} conf={ann.confidence:.2f} 3D points={len(ann.point_indices)}')

Open3D is optional: it is imported only when a result cloud is built. Without it (or with
``output_format='numpy'``) clouds are ``(N, 6)`` float64 arrays: x, y, z and r, g, b in [0, 1].
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .camera.frames import optical_to_gl
from .camera.intrinsics import IntrinsicsError, derive_intrinsics, intrinsics_from_cloud
from .camera.pinhole import PinholeIntrinsics
from .lifting.geometry import oriented_box
from .lifting.lift import LIFT_MODES, LiftConfig
from .pipeline import FramePipeline
from .render.colors import palette
from .render.frontview import render_front_view
from .segmentation.base import SegmentationBackend
from .segmentation.external import ExternalMasksBackend
from .segmentation.models import DEFAULT_MODEL_URL, ModelUnavailableError, ProgressCallback, is_url, resolve_model

CLOUD_FRAMES = ('opengl', 'optical')
OUTPUT_FORMATS = ('auto', 'open3d', 'numpy')
#: ``model_backend`` value that takes the masks from the command's ``masks`` instead of a model.
EXTERNAL = 'external'

__all__ = ['CLOUD_FRAMES', 'EXTERNAL', 'IntrinsicsError', 'MaskAnnotation3D', 'ModelUnavailableError',
           'ObjectMaskAnnotation3D', 'ObjectMaskAnnotation3DCommand', 'ObjectMaskAnnotation3DConfig',
           'ObjectMaskAnnotation3DResult', 'OrientedBox', 'cached_backend', 'oriented_box']


@dataclass
class ObjectMaskAnnotation3DConfig:
    """Camera intrinsics, detection thresholds and lifting options (vizion3D's ``advanced_config``).

    ``fx, fy, cx, cy`` (pixels) left at None are derived: from the image size with an image
    (``fx = fy = 0.85 * width``, principal point ``(width / 2, height / 2)``, vizion3D's formula), from
    the cloud's angular extent without one. Derived values are a guess: pass calibrated ones for real
    sensors (stereo rigs and clouds not taken from the camera need them).
    """

    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    #: Minimum detection confidence, [0, 1].
    conf_threshold: float = 0.25
    #: Non-maximum-suppression IoU threshold, [0, 1].
    iou_threshold: float = 0.45
    #: Inference size of the model (pixels, longest side).
    imgsz: int = 640
    #: ``auto`` (cuda > mps > cpu), ``cpu``, ``cuda:0``, ...
    device: str = 'auto'
    #: Keep only these classes: ids or names (``['chair', 'person']`` or ``'chair, person'``); None = all.
    classes: Sequence[int | str] | str | None = None
    #: How masks become points: ``visible`` (occlusion-aware, default), ``exclusive`` or ``naive``
    #: (every point projecting into a mask, vizion3D's behaviour); see :mod:`.lifting`.
    lift_mode: str = 'visible'
    #: Every lifting option (tolerances, edge band, hidden-point links, ...); None = the defaults.
    #: ``lift_mode`` wins over ``lift.mode``.
    lift: LiftConfig | None = None
    #: Drop detections with fewer 3D points (0 keeps every detection, as vizion3D does).
    min_points: int = 0
    #: Size of the synthetic front view in point-cloud-only mode (None = derived, width 640).
    render_width: int | None = None
    render_height: int | None = None
    #: Footprint radius (pixels) of each point in the front view; None = from the cloud's density.
    splat_radius: int | None = None

    def __post_init__(self) -> None:
        if self.lift_mode not in LIFT_MODES:
            raise ValueError(f'unknown lift_mode {self.lift_mode!r}; expected one of {LIFT_MODES}')
        for name in ('conf_threshold', 'iou_threshold'):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {value}')


@dataclass
class ObjectMaskAnnotation3DCommand:
    """One annotation request (vizion3D's command, plus frames, external masks and output options).

    ``point_cloud`` is an ``open3d.geometry.PointCloud`` or an ``(N, 3)`` array (``(N, 6)`` with
    colours appended); ``colors`` gives ``(N, 3)`` colours (uint8, or floats in [0, 1]) for arrays.
    ``image_input`` is an image file path, encoded image bytes, an ``(H, W, 3)`` uint8 RGB array, or
    None to segment a front view rendered from the cloud. ``model_backend`` is a checkpoint path or URL
    (loaded once per process), an object with ``segment(image_rgb) -> Segmentation``, or ``'external'``
    to use ``masks``: a label-image path or array (8/16-bit, each non-zero value one instance) or
    ``(K, H, W)`` boolean masks, named by ``mask_labels`` (keyed by label value, or by index for
    ``(K, H, W)`` masks). Giving ``masks`` implies ``'external'``.
    """

    point_cloud: Any
    image_input: str | os.PathLike | bytes | np.ndarray | None = None
    model_backend: str | os.PathLike | SegmentationBackend = DEFAULT_MODEL_URL
    return_object_clouds: bool = True
    return_annotated_cloud: bool = True
    advanced_config: ObjectMaskAnnotation3DConfig = field(default_factory=ObjectMaskAnnotation3DConfig)
    masks: str | os.PathLike | np.ndarray | None = None
    mask_labels: Mapping[int, str] | None = None
    colors: np.ndarray | None = None
    #: ``opengl`` (X right, Y up, Z backward; vizion3D) or ``optical`` (ROS: X right, Y down, Z forward).
    cloud_frame: str = 'opengl'
    #: 4x4 transform camera <- cloud, applied before projection; its target is the camera frame in the
    #: ``cloud_frame`` convention (e.g. the ROS TF ``camera_optical_frame <- lidar`` for ``optical``).
    extrinsic: np.ndarray | None = None
    #: ``auto`` (Open3D clouds when Open3D is installed), ``open3d`` or ``numpy``.
    output_format: str = 'auto'


@dataclass(frozen=True)
class OrientedBox:
    """Box along the principal axes of an object's points: ``rotation`` columns are the box axes."""

    center: np.ndarray  # (3,)
    rotation: np.ndarray  # (3, 3), right-handed, columns by decreasing spread
    extents: np.ndarray  # (3,) full edge lengths along the columns of ``rotation``


@dataclass
class MaskAnnotation3D:
    """One detected object: its 2D detection and its 3D points (in the input cloud's coordinates)."""

    id: int  # 1-based, in descending confidence
    label: str
    class_id: int
    confidence: float
    bbox_2d: list[float]  # [x1, y1, x2, y2] pixels
    mask_2d: np.ndarray  # (H, W) bool, full image
    point_indices: np.ndarray  # (M,) int64, ascending indices into the input cloud
    point_coords: np.ndarray  # (M, 3) float64, input coordinates
    object_cloud: Any  # open3d PointCloud, (M, 6) array, or None
    centroid: np.ndarray  # (3,)
    aabb_min: np.ndarray  # (3,)
    aabb_max: np.ndarray  # (3,)
    obb: OrientedBox
    distance_m: float  # from the camera to the centroid

    @property
    def mask(self) -> np.ndarray:
        """Alias of ``mask_2d`` (what :func:`~.render.overlay` reads)."""
        return self.mask_2d

    @property
    def point_count(self) -> int:
        """Number of 3D points of the object."""
        return int(len(self.point_indices))

    @property
    def aabb_center(self) -> np.ndarray:
        """Centre of the axis-aligned box."""
        return (self.aabb_min + self.aabb_max) / 2.0

    @property
    def aabb_size(self) -> np.ndarray:
        """Edge lengths of the axis-aligned box."""
        return self.aabb_max - self.aabb_min


@dataclass
class ObjectMaskAnnotation3DResult:
    """Annotations (descending confidence), the annotated cloud, and what produced them.

    ``annotated_cloud`` has the input's points in the input's order, each object's points painted in
    its instance colour (the colours of :func:`~.render.overlay`); ``instance_ids`` (0 = none, else the
    annotation's ``id``) and ``annotated_colors`` hold the same as arrays. In ``naive`` lifting a point
    may belong to several objects: the arrays then show the most confident one.
    """

    annotations: list[MaskAnnotation3D]
    annotated_cloud: Any
    backend_used: str
    image: np.ndarray  # the (H, W, 3) RGB image that was segmented (synthesised when no image was given)
    synthesized_image: bool
    camera: PinholeIntrinsics
    instance_ids: np.ndarray  # (N,) int32
    annotated_colors: np.ndarray  # (N, 3) uint8
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


class ObjectMaskAnnotation3D:
    """Runs :class:`ObjectMaskAnnotation3DCommand` s; models stay loaded for the process's lifetime.

    ``log`` receives one-line progress messages (loading, segmenting, lifting) and
    ``download_progress`` the byte counts of a model download (e.g. :func:`.models.print_progress`).
    """

    def __init__(self, log: Callable[[str], None] | None = None,
                 download_progress: ProgressCallback | None = None) -> None:
        self.log = log or (lambda _msg: None)
        self.download_progress = download_progress

    def run(self, command: ObjectMaskAnnotation3DCommand) -> ObjectMaskAnnotation3DResult:
        """Segment the image (or a front view of the cloud) and lift each instance onto the cloud."""
        cfg = command.advanced_config or ObjectMaskAnnotation3DConfig()
        if command.cloud_frame not in CLOUD_FRAMES:
            raise ValueError(f'unknown cloud_frame {command.cloud_frame!r}; expected one of {CLOUD_FRAMES}')
        if command.output_format not in OUTPUT_FORMATS:
            raise ValueError(f'unknown output_format {command.output_format!r}; expected one of {OUTPUT_FORMATS}')
        timings: dict[str, float] = {}
        warnings: list[str] = []
        t0 = time.perf_counter()
        points, colors = _cloud_arrays(command.point_cloud, command.colors)
        points_gl = _to_camera_gl(points, command.cloud_frame, command.extrinsic)
        backend, backend_used = self._backend(command, cfg)
        t1 = time.perf_counter()
        timings['load'] = (t1 - t0) * 1e3
        if command.image_input is not None:
            image = _load_image(command.image_input)
            h, w = image.shape[:2]
            cam = derive_intrinsics(w, h, cfg.fx, cfg.fy, cfg.cx, cfg.cy)
            synthesized = False
        else:
            cam = self._cloud_camera(points_gl, cfg, backend, warnings)
            self.log(f'rendering a {cam.width}x{cam.height} front view of the cloud (no image given)')
            shown = colors if colors is not None else _depth_shading(points_gl)
            image, _ = render_front_view(points_gl, shown, cam, splat_radius=cfg.splat_radius)
            synthesized = True
        t2 = time.perf_counter()
        timings['image'] = (t2 - t1) * 1e3
        self.log(f'segmenting the {cam.width}x{cam.height} image with {backend_used}; '
                 f'lifting onto {len(points)} points ({cfg.lift_mode})')
        frame = FramePipeline(backend, lift_mode=cfg.lift_mode, min_points=cfg.min_points,
                              lift_config=cfg.lift).process(
            image, cam, points_gl, stats_points=points)
        timings.update(frame.timings_ms)
        t3 = time.perf_counter()
        fmt = _resolve_format(command.output_format)
        annotations = []
        for obj in frame.objects:
            idx = obj.point_indices.astype(np.int64)
            coords = points[idx]
            center, rot, extents = oriented_box(coords)
            sub = None
            if command.return_object_clouds:
                sub = _make_cloud(coords, colors[idx] if colors is not None else None, fmt)
            distance = float(np.linalg.norm(points_gl[idx].astype(np.float64).mean(axis=0))) if len(idx) else 0.0
            annotations.append(MaskAnnotation3D(
                id=obj.id, label=obj.label, class_id=obj.class_id, confidence=obj.confidence,
                bbox_2d=[float(v) for v in obj.bbox_2d], mask_2d=obj.mask, point_indices=idx, point_coords=coords,
                object_cloud=sub, centroid=obj.geometry.centroid, aabb_min=obj.geometry.box_min,
                aabb_max=obj.geometry.box_max, obb=OrientedBox(center, rot, extents), distance_m=distance))
        instance_ids, painted = _paint(len(points), colors, annotations)
        annotated = _make_cloud(points, painted, fmt) if command.return_annotated_cloud else None
        timings['outputs'] = (time.perf_counter() - t3) * 1e3
        return ObjectMaskAnnotation3DResult(
            annotations=annotations, annotated_cloud=annotated, backend_used=backend_used, image=image,
            synthesized_image=synthesized, camera=cam, instance_ids=instance_ids, annotated_colors=painted,
            warnings=warnings, timings_ms=timings)

    def _cloud_camera(self, points_gl: np.ndarray, cfg: ObjectMaskAnnotation3DConfig, backend,
                      warnings: list[str]) -> PinholeIntrinsics:
        """Camera of the synthetic front view; external masks fix its size when none is given."""
        width, height = cfg.render_width, cfg.render_height
        if isinstance(backend, ExternalMasksBackend) and width is None and height is None:
            height, width = backend.size
        derived = intrinsics_from_cloud(points_gl, width, height, cfg.fx, cfg.fy, cfg.cx, cfg.cy)
        explicit = None not in (cfg.fx, cfg.fy, cfg.cx, cfg.cy)
        if not derived.reliable and not explicit:
            raise IntrinsicsError(f'cannot derive a camera from the point cloud: {derived.warning}')
        if derived.warning:
            warnings.append(derived.warning)
        return derived.camera

    def _backend(self, command: ObjectMaskAnnotation3DCommand,
                 cfg: ObjectMaskAnnotation3DConfig) -> tuple[SegmentationBackend, str]:
        spec = command.model_backend
        if command.masks is not None:
            if spec not in (EXTERNAL, DEFAULT_MODEL_URL, None, ''):
                raise ValueError(f'masks were given but model_backend is {spec!r}: use one or the other '
                                 f"(model_backend='{EXTERNAL}' with masks)")
            return _external_backend(command.masks, command.mask_labels), EXTERNAL
        if spec == EXTERNAL:
            raise ValueError(f"model_backend='{EXTERNAL}' needs masks (a label image or (K, H, W) masks)")
        if hasattr(spec, 'segment'):
            return spec, str(getattr(spec, 'name', type(spec).__name__))
        if spec is not None and not isinstance(spec, (str, os.PathLike)):
            raise TypeError(f'model_backend must be a path, a URL, {EXTERNAL!r} or a segmentation backend, '
                            f'got {type(spec).__name__}')
        text = str(spec) if spec else DEFAULT_MODEL_URL
        self.log(f'model: {text}' + (' (downloaded once into the cache)' if is_url(text) else ''))
        path = resolve_model(text, progress=self.download_progress)
        return cached_backend(path, cfg, self.log), str(path)


# --------------------------------------------------------------------------------------------------
# Inputs


def _cloud_arrays(cloud: Any, colors: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(N, 3)`` float64 points and ``(N, 3)`` uint8 colours (None when the cloud has none)."""
    if hasattr(cloud, 'points') and hasattr(cloud, 'has_colors'):  # open3d.geometry.PointCloud
        pts = np.asarray(cloud.points, dtype=np.float64)
        if colors is None and cloud.has_colors():
            colors = np.asarray(cloud.colors)
    else:
        arr = np.asarray(cloud)
        if arr.ndim != 2 or arr.shape[1] not in (3, 6):
            raise ValueError(f'point_cloud must be an open3d PointCloud or an (N, 3) / (N, 6) array, '
                             f'got shape {arr.shape}')
        pts = arr[:, :3].astype(np.float64)
        if arr.shape[1] == 6 and colors is None:
            colors = arr[:, 3:]
    if len(pts) == 0:
        raise ValueError('the point cloud is empty')
    if colors is None:
        return pts, None
    colors = np.asarray(colors)
    if colors.shape != pts.shape:
        raise ValueError(f'colors must be (N, 3) for {len(pts)} points, got shape {colors.shape}')
    return pts, _to_uint8(colors)


def _to_uint8(colors: np.ndarray) -> np.ndarray:
    if colors.dtype == np.uint8:
        return colors
    c = np.nan_to_num(colors.astype(np.float64))
    if c.size and c.max() <= 1.0:  # Open3D's [0, 1] floats
        c = c * 255.0
    return np.clip(np.round(c), 0, 255).astype(np.uint8)


def _to_camera_gl(points: np.ndarray, frame: str, extrinsic: np.ndarray | None) -> np.ndarray:
    """The points in the camera's OpenGL space (float32), where the lifting works."""
    pts = points
    if extrinsic is not None:
        t = np.asarray(extrinsic, dtype=np.float64)
        if t.shape != (4, 4) or not np.isfinite(t).all():
            raise ValueError(f'extrinsic must be a finite 4x4 matrix (camera <- cloud), got shape {t.shape}')
        pts = pts @ t[:3, :3].T + t[:3, 3]
    return optical_to_gl(pts) if frame == 'optical' else pts.astype(np.float32)


def _load_image(image_input: str | os.PathLike | bytes | np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from a path, encoded bytes or an array."""
    import cv2

    if isinstance(image_input, np.ndarray):
        img = image_input
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise ValueError(f'image_input array must be (H, W, 3) RGB, got shape {img.shape}')
        return np.ascontiguousarray(_to_uint8(img[:, :, :3]) if img.dtype != np.uint8 else img[:, :, :3])
    if isinstance(image_input, (bytes, bytearray, memoryview)):
        bgr = cv2.imdecode(np.frombuffer(image_input, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError('image_input bytes could not be decoded as an image')
    else:
        path = Path(image_input)
        if not path.is_file():
            raise FileNotFoundError(f'image {str(path)!r} does not exist')
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f'image {str(path)!r} could not be read as an image')
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _depth_shading(points_gl: np.ndarray) -> np.ndarray:
    """Grey levels for a cloud without colours: near bright, far dark (what a segmenter can use)."""
    d = -points_gl[:, 2].astype(np.float64)
    ok = np.isfinite(d) & (d > 0)
    out = np.zeros((len(d), 3), np.uint8)
    if ok.any():
        lo, hi = np.percentile(d[ok], [1, 99])
        g = 235.0 - 175.0 * np.clip((d[ok] - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
        out[ok] = g.astype(np.uint8)[:, None]
    return out


def _external_backend(masks: str | os.PathLike | np.ndarray, labels: Mapping[int, str] | None) -> ExternalMasksBackend:
    if isinstance(masks, (str, os.PathLike)):
        return ExternalMasksBackend.from_png(masks, labels_text=labels)
    arr = np.asarray(masks)
    if arr.ndim == 3 and arr.dtype == bool:
        names = None if labels is None else [labels.get(i, f'instance_{i}') for i in range(len(arr))]
        return ExternalMasksBackend.from_arrays(arr, labels=names)
    return ExternalMasksBackend.from_label_image(arr, labels_text=labels)


_backend_lock = threading.Lock()
_backends: dict[tuple, SegmentationBackend] = {}


def cached_backend(path: str | os.PathLike, cfg: ObjectMaskAnnotation3DConfig,
                   log: Callable[[str], None] | None = None) -> SegmentationBackend:
    """The YOLO backend for the checkpoint ``path`` and ``cfg``'s settings, built once per process.

    :meth:`ObjectMaskAnnotation3D.run` takes its backends from here, so every caller with the same
    checkpoint (resolved path), device, imgsz, thresholds and classes shares one loaded model; a server
    gets the model its requests will use. Ultralytics' predictor is not thread-safe: callers that
    segment from several threads serialise their calls. Raises :class:`ModelUnavailableError` when the
    file cannot be loaded and ``ValueError`` for an unknown class in ``cfg.classes``.
    """
    from .segmentation.ultralytics_backend import UltralyticsBackend, load_model

    path = Path(path)
    try:
        if log is not None:
            log(f'loading model {path.name}')
        names = dict(load_model(path).names)
    except Exception as exc:  # corrupt or foreign files fail deep inside torch/ultralytics
        raise ModelUnavailableError(f'could not load model {str(path)!r}: {exc}') from exc
    classes = _class_ids(cfg.classes, names)
    key = (str(path.resolve()), cfg.device, int(cfg.imgsz), float(cfg.conf_threshold),
           float(cfg.iou_threshold), tuple(classes) if classes is not None else None)
    with _backend_lock:
        backend = _backends.get(key)
        if backend is None:
            backend = UltralyticsBackend(path, device=cfg.device, imgsz=cfg.imgsz, conf_threshold=cfg.conf_threshold,
                                         iou_threshold=cfg.iou_threshold, classes=classes)
            _backends[key] = backend
    return backend


def _class_ids(classes: Sequence[int | str] | str | None, names: dict[int, str]) -> list[int] | None:
    if classes is None:
        return None
    from .segmentation.base import parse_class_filter

    spec = classes if isinstance(classes, str) else ','.join(str(c) for c in classes)
    return parse_class_filter(spec, names)


# --------------------------------------------------------------------------------------------------
# Outputs


def _resolve_format(fmt: str) -> str:
    if fmt == 'numpy':
        return 'numpy'
    try:
        import open3d  # noqa: F401
    except ImportError:
        if fmt == 'open3d':
            raise
        return 'numpy'
    return 'open3d'


def _make_cloud(points: np.ndarray, colors_u8: np.ndarray | None, fmt: str) -> Any:
    """An Open3D cloud, or an ``(N, 6)`` array (xyz, rgb in [0, 1]); white where colours are missing."""
    rgb = np.ones((len(points), 3)) if colors_u8 is None else colors_u8.astype(np.float64) / 255.0
    if fmt == 'numpy':
        return np.hstack([np.asarray(points, np.float64), rgb])
    import open3d as o3d

    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64))
    pcd.colors = o3d.utility.Vector3dVector(rgb)
    return pcd


def _paint(n: int, colors: np.ndarray | None, annotations: list[MaskAnnotation3D]) -> tuple[np.ndarray, np.ndarray]:
    """Per-point instance ids and colours; the most confident instance is painted last (it wins)."""
    ids = np.zeros(n, np.int32)
    painted = np.full((n, 3), 255, np.uint8) if colors is None else colors.copy()
    pal = palette(len(annotations))
    for k in range(len(annotations) - 1, -1, -1):
        ann = annotations[k]
        ids[ann.point_indices] = ann.id
        painted[ann.point_indices] = pal[k]
    return ids, painted
