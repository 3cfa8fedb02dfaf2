"""One placed frame in, the map's objects out: the map node's work without the node.

:class:`MapIntegrator` owns the :class:`~vizion3d_ros.core.fusion.scene.SceneFusion` and what the node
reports about it (first/last-seen stamps per object, merges not yet reported, the dynamic tracks). It
has no executor, no locks and no publishers, so the benchmarks and the offline-equivalence test run
exactly the code the node runs; the node calls it under its lock from the worker thread.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from vizion3d_ros.msg import MapObject3DArray, ObjectMask3DArray

from ...core.camera.transforms import transform_points
from ...core.fusion.dynamic import DynamicDetection, DynamicTracker
from ...core.fusion.extents import _extents
from ...core.fusion.scene import SceneFusion
from ..conversions import MessageFormatError, pointcloud2_to_arrays
from ..drops import FrameRejectedError
from .messages import ObjectsMismatchError, Readout, map_cloud, map_objects_message, point_labels, readout, time_msg
from .params import MapSettings

#: Camera poses kept for save_map's trajectory (GLB frustums, top view); older ones are forgotten.
KEEP_CAMERA_POSES = 500
#: Frames between map_radius passes (each costs a distance per voxel).
RADIUS_EVERY = 5


class MapIntegrator:
    """The live map of one node (see the module docstring). ``settings`` is read at every frame."""

    def __init__(self, settings: MapSettings, world_frame: str | None = None,
                 fusion: SceneFusion | None = None, seen: dict[int, tuple[int, int]] | None = None) -> None:
        self.settings = settings
        self.world_frame = (world_frame or settings.world_frame).strip().lstrip('/')
        self.fusion = fusion or SceneFusion(voxel_size=settings.voxel_size, max_voxels=settings.max_voxels or None,
                                            confirm_frames=settings.confirm_frames)
        self.seen: dict[int, tuple[int, int]] = dict(seen or {})  # instance id -> (first, last) matched stamps
        self.merges: list[tuple[int, int]] = []  # (merged_from, merged_into) since the last message
        self.newest_ns = 0
        self.tracker = DynamicTracker(settings.dynamic_lifetime, settings.dynamic_match_distance)
        self.last_ms = 0.0  # integration time of the last frame
        self._cached: tuple[tuple[int, int], Readout] | None = None
        self.last_merges: dict[int, int] = {}  # merged id -> kept id, by the last frame
        self.last_stride = 1  # rows and columns of the last frame's cloud integrated (integration_stride)
        _extents.compile()  # now (or from numba's disk cache), not on the first frame

    # ------------------------------------------------------------------ frames
    def integrate(self, stamp: int, objects: ObjectMask3DArray, cloud: PointCloud2, pose: np.ndarray,
                  describe: bool = True) -> MapObject3DArray | None:
        """Fuse one frame placed by ``pose`` (world <- cloud frame); FrameRejectedError for a bad one.

        A rejected frame leaves the map as it was: everything is checked before the map is touched.
        Returns the map's objects after it, or None without ``describe`` (nobody listens: the readout of
        every voxel is skipped; merges wait for the next message). :attr:`last_merges` holds the frame's.
        """
        t0 = time.perf_counter()
        s = self.settings
        try:
            arrays = pointcloud2_to_arrays(cloud)
        except MessageFormatError as exc:
            raise FrameRejectedError('bad_cloud', f'points: {exc}') from exc
        n = len(arrays.xyz)
        if (objects.cloud_width or objects.cloud_height) and \
                int(objects.cloud_width) * int(objects.cloud_height) != n:
            raise FrameRejectedError('bad_objects', f'objects describe a {objects.cloud_width}x'
                                     f'{objects.cloud_height} cloud, the cloud has {n} points')
        try:
            labels, meta = point_labels(objects, n)
        except ObjectsMismatchError as exc:
            raise FrameRejectedError('bad_objects', str(exc)) from exc
        xyz, dynamic = split_dynamic(arrays.xyz, labels, meta, pose, s.dynamic_classes)
        rgb = arrays.rgb
        self.last_stride = stride = integration_stride(xyz, arrays.width, arrays.height, s.voxel_size,
                                                       s.integration_stride)
        if stride > 1:
            take = _grid(arrays.width, arrays.height, stride)
            xyz, labels = xyz[take], labels[take]
            rgb = None if rgb is None else rgb[take]
        f = self.fusion
        report = f.add_lifted(xyz, pose, labels, meta, rgb)
        for iid in set(report.assigned.values()):
            self.seen[iid] = (self.seen.get(iid, (stamp, stamp))[0], stamp)
        self.newest_ns = max(self.newest_ns, stamp)
        del f.camera_poses[:-KEEP_CAMERA_POSES]
        if s.map_radius > 0 and f.frames % RADIUS_EVERY == 0:
            f.forget_beyond(pose[:3, 3], s.map_radius)
        for gone in f.prune_tentative(s.forget_tentative_after):
            self.seen.pop(gone, None)
        self.last_merges = {}
        if s.consolidate_every and f.frames % s.consolidate_every == 0:
            self.last_merges = f.consolidate()
            self.note_merges(self.last_merges)
        self.tracker.lifetime_ns = int(s.dynamic_lifetime * 1e9)
        self.tracker.match_distance = s.dynamic_match_distance
        self.tracker.update(stamp, dynamic, f.reserve_id)
        msg = self.message() if describe else None
        self.last_ms = (time.perf_counter() - t0) * 1e3
        return msg

    def note_merges(self, merged: dict[int, int]) -> None:
        """Record merges for the next message and fold the merged objects' stamps into the kept ones."""
        self.merges.extend(sorted(merged.items()))
        for a, b in merged.items():
            if a in self.seen:
                fa, la = self.seen.pop(a)
                fb, lb = self.seen.get(b, (fa, la))
                self.seen[b] = (min(fa, fb), max(la, lb))

    # ------------------------------------------------------------------ outputs
    def header(self, stamp_ns: int | None = None) -> Header:
        """The map's header: world frame, stamp of the newest frame (or ``stamp_ns``)."""
        return Header(frame_id=self.world_frame, stamp=time_msg(self.newest_ns if stamp_ns is None else stamp_ns))

    def message(self, stamp_ns: int | None = None) -> MapObject3DArray:
        """The objects now (map instances and dynamic tracks); reports, and forgets, the pending merges."""
        merges, self.merges = self.merges, []
        return map_objects_message(self.fusion, self.header(stamp_ns), self.seen, merges,
                                   [self.tracker.tracks[i] for i in sorted(self.tracker.tracks)], self._readout())

    def cloud(self) -> PointCloud2:
        """map_points: every voxel with its instance, class and confidence."""
        return map_cloud(self.fusion, self.header(), self._readout())

    def _readout(self) -> Readout:
        """The map's readout, kept until the map changes: map_points reuses the last map_objects' one.

        Every change to the map goes through :meth:`integrate` (which counts a frame) or replaces the
        integrator (load, clear), so the frame count names the map's state.
        """
        key = (self.fusion.frames, len(self.fusion.map))
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, readout(self.fusion))
        return self._cached[1]

    def save(self, out: Path) -> dict:
        """vizion3d-fuse's files into ``out``, summary.json with the world frame and first/last-seen stamps."""
        summary = self.fusion.export(out)
        summary['frames'] = int(self.fusion.frames)
        summary['world_frame'] = self.world_frame
        for r in summary['instances']:
            r['first_seen_ns'], r['last_seen_ns'] = self.seen.get(r['id'], (0, 0))
        (out / 'summary.json').write_text(json.dumps(summary, indent=2))
        return summary

    @classmethod
    def load(cls, folder: Path, settings: MapSettings, world_frame: str | None = None) -> MapIntegrator:
        """A saved map (save_map's or vizion3d-fuse's folder); OSError/ValueError when it is not one."""
        fusion = SceneFusion.load(folder, max_voxels=settings.max_voxels or None,
                                  confirm_frames=settings.confirm_frames)
        if fusion.mode != 'instance':
            raise ValueError(f'{folder} holds a {fusion.mode} map; the live map keeps instance maps')
        seen = {i: v for i, v in _saved_stamps(folder).items() if i in fusion.instances}
        return cls(settings, world_frame, fusion, seen)


def integration_stride(xyz: np.ndarray, width: int, height: int, voxel_size: float, setting: int) -> int:
    """Every how many rows and columns of an organised cloud the map integrates (1: every point).

    ``setting`` > 0 is used as it is. 0 (auto): as sparse as keeps at least two points per voxel edge,
    from the cloud's own spacing (the median distance between horizontal neighbours on a few rows): a
    VGA camera at 2-3 m samples a 2 cm voxel 4-5 times along each edge, and integrating a quarter of its
    points gives the same voxels at a quarter of the cost. Unorganised clouds always use every point.
    """
    if setting > 0:
        return int(setting) if height > 1 else 1
    if height < 8 or width < 8:
        return 1
    grid = xyz.reshape(height, width, 3)[::max(height // 16, 1)]
    gap = np.linalg.norm(np.diff(grid, axis=1), axis=2)
    gap = gap[np.isfinite(gap) & (gap > 0)]
    if len(gap) < 64:
        return 1
    return int(max(1, min(4, voxel_size / 2.0 // float(np.median(gap)))))


def _grid(width: int, height: int, stride: int) -> np.ndarray:
    """Flat indices of every ``stride``-th row and column of an organised cloud."""
    rows = np.arange(0, height, stride)
    cols = np.arange(0, width, stride)
    return (rows[:, None] * width + cols[None, :]).reshape(-1)


def warm_up() -> None:
    """Run a tiny synthetic sequence through the whole per-frame path once (compiles, imports, first calls).

    The node calls it while it configures, so that no frame pays for the lazy imports (scipy's assignment,
    the rotation helpers), the numba kernels loaded from disk or the first allocations: without it the
    first frame of a run took 0.4-0.7 s.
    """
    from dataclasses import replace

    from vizion3d_ros.msg import ObjectMask3D

    from ..conversions import xyzrgb_to_pointcloud2
    from ..messages import uint32_array

    h, w = 24, 32
    v, u = np.mgrid[0:h, 0:w]
    xyz = np.stack([(u - w / 2) * 0.05, (v - h / 2) * 0.05, np.full((h, w), 2.0)], axis=-1).reshape(-1, 3)
    rgb = np.full((h * w, 3), 128, np.uint8)
    warm = MapIntegrator(replace(MapSettings(), consolidate_every=2, forget_tentative_after=1, map_radius=10.0))
    for k in range(5):
        header = Header(frame_id='warm_up')
        header.stamp.nanosec = k + 1
        cloud = xyzrgb_to_pointcloud2(xyz.astype(np.float32), rgb, header, width=w, height=h)
        objs = [ObjectMask3D(header=header, id=i + 1, class_id=c, label=name, confidence=0.9)
                for i, (c, name) in enumerate(((56, 'chair'), (0, 'person')))]
        objs[0].point_indices = uint32_array(np.flatnonzero(u.reshape(-1) < w // 2))
        objs[1].point_indices = uint32_array(np.flatnonzero(u.reshape(-1) > w - 6))
        msg = ObjectMask3DArray(header=header, cloud_width=w, cloud_height=h, objects=objs)
        pose = np.eye(4)
        pose[0, 3] = 0.01 * k
        warm.integrate(k + 1, msg, cloud, pose)
    warm.cloud()


def split_dynamic(xyz: np.ndarray, labels: np.ndarray, meta: dict[int, dict], pose: np.ndarray,
                  classes: str) -> tuple[np.ndarray, list[DynamicDetection]]:
    """Take the dynamic classes' objects out of a frame, their points too; returns the rest and them.

    ``classes`` is comma-separated labels or class ids. ``labels`` and ``meta`` are changed in place.
    """
    wanted = {c.strip() for c in classes.split(',') if c.strip()}
    moving = [oid for oid, m in meta.items() if m['label'] in wanted or str(m['class_id']) in wanted]
    if not moving:
        return xyz, []
    detections = []
    for oid in moving:
        m = meta.pop(oid)
        pts = np.ascontiguousarray(xyz[labels == oid])
        detections.append(DynamicDetection(m['class_id'], m['label'], m['confidence'], transform_points(pts, pose)))
    gone = np.isin(labels, np.array(moving, labels.dtype))
    labels[gone] = 0
    xyz = xyz.copy()  # the message's buffer is read-only
    xyz[gone] = np.nan  # not integrated at all: a walking person must not leave geometry behind
    return xyz, detections


def _saved_stamps(folder: Path) -> dict[int, tuple[int, int]]:
    """First/last-seen stamps save_map wrote into summary.json (none in vizion3d-fuse's)."""
    try:
        rows = json.loads((Path(folder) / 'summary.json').read_text()).get('instances', [])
        return {int(r['id']): (int(r.get('first_seen_ns', 0)), int(r.get('last_seen_ns', 0))) for r in rows}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
