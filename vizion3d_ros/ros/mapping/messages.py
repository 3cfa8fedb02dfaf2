"""The map as ROS messages: map_points (PointCloud2), map_objects (MapObject3DArray), and the frame's labels.

Pure message building from a :class:`~vizion3d_ros.core.fusion.scene.SceneFusion`; the node holds the
lock. Everything over the voxels is vectorised or one compiled pass (:mod:`...core.fusion.extents`), the
per-object part is a loop over the objects only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import Vector3
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from vizion3d_ros.msg import MapObject3D, MapObject3DArray, ObjectMask3DArray

from ...core.fusion.dynamic import DynamicTrack
from ...core.fusion.export import map_layers
from ...core.fusion.extents import label_extents
from ...core.fusion.scene import SceneFusion
from ..conversions import _message_buffer, _with_data, pack_rgb
from ..messages import _point, pose_at, uint32_array

_MAP_FIELDS = (('x', PointField.FLOAT32, '<f4'), ('y', PointField.FLOAT32, '<f4'), ('z', PointField.FLOAT32, '<f4'),
               ('rgb', PointField.FLOAT32, '<u4'), ('instance_id', PointField.UINT32, '<u4'),
               ('class_id', PointField.INT32, '<i4'), ('confidence', PointField.FLOAT32, '<f4'))
MAP_POINT_DTYPE = np.dtype([(n, d) for n, _, d in _MAP_FIELDS])

#: SceneFusion.state's words as MapObject3D's constants (missing: confirmed, in view and not detected lately).
_STATES = {'tentative': MapObject3D.STATE_TENTATIVE, 'confirmed': MapObject3D.STATE_CONFIRMED,
           'missing': MapObject3D.STATE_MISSING}


class ObjectsMismatchError(ValueError):
    """An objects message that does not fit its cloud (indices past it, duplicate or zero ids)."""


def time_msg(ns: int) -> TimeMsg:
    """builtin_interfaces/Time of integer nanoseconds."""
    return TimeMsg(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def point_labels(objects: ObjectMask3DArray, n: int) -> tuple[np.ndarray, dict[int, dict]]:
    """Per-point object id (0 none) over a cloud of ``n`` points, and each id's class, label and confidence."""
    labels = np.zeros(n, np.uint32)
    meta: dict[int, dict] = {}
    for obj in objects.objects:
        oid = int(obj.id)
        if oid == 0 or oid in meta:
            raise ObjectsMismatchError(f'object id {oid} is 0 or appears twice')
        idx = np.frombuffer(obj.point_indices, np.uint32) if len(obj.point_indices) else np.zeros(0, np.uint32)
        if len(idx) and int(idx.max()) >= n:
            raise ObjectsMismatchError(f'object {oid} indexes point {int(idx.max())} of a cloud of {n} points')
        labels[idx] = oid
        conf = float(obj.confidence)
        meta[oid] = {'class_id': int(obj.class_id), 'label': obj.label,
                     'confidence': conf if math.isfinite(conf) else 0.0}
    return labels, meta


@dataclass(frozen=True)
class Readout:
    """What the map says about each voxel now: its best votes and its confirmed instance (one pass)."""

    votes: tuple[np.ndarray, np.ndarray, np.ndarray]  # VoxelMap.best_labels()
    confirmed: np.ndarray  # SceneFusion.voxel_instances(votes)


def readout(fusion: SceneFusion) -> Readout:
    """The map's readout, computed once for both map_objects and map_points."""
    votes = fusion.map.best_labels()
    return Readout(votes, fusion.voxel_instances(votes))


def map_cloud(fusion: SceneFusion, header: Header, now: Readout | None = None) -> PointCloud2:
    """The map voxels as an unorganised PointCloud2 (fields of :data:`MAP_POINT_DTYPE`), built vectorised.

    ``now``: the map's :func:`readout` when the caller has it for the map as it is.
    """
    layers = map_layers(fusion) if now is None else map_layers(fusion, votes=now.votes, instances=now.confirmed)
    m = fusion.map
    n = len(m)
    data, raw = _message_buffer(MAP_POINT_DTYPE.itemsize * n)
    pts = raw.view(MAP_POINT_DTYPE)
    pos = m.positions
    pts['x'], pts['y'], pts['z'] = pos[:, 0], pos[:, 1], pos[:, 2]
    pts['rgb'] = pack_rgb(m.colors) if n else 0
    pts['instance_id'] = layers.instance
    pts['class_id'] = layers.class_id
    pts['confidence'] = layers.confidence
    del raw, pts
    fields = [PointField(name=name, offset=MAP_POINT_DTYPE.fields[name][1], datatype=dt, count=1)
              for name, dt, _ in _MAP_FIELDS]
    msg = _with_data(PointCloud2, data, height=1, width=int(n), fields=fields, is_bigendian=False,
                     point_step=int(MAP_POINT_DTYPE.itemsize), row_step=int(MAP_POINT_DTYPE.itemsize * n),
                     is_dense=True)
    msg.header = header
    return msg


def object_voxel_labels(fusion: SceneFusion, now: Readout | None = None) -> np.ndarray:
    """Per map voxel, the instance it shows: confirmed ones as the map's readout, tentative ones by best vote."""
    now = readout(fusion) if now is None else now
    confirmed, best = now.confirmed, now.votes[0]
    tentative = np.zeros(max(fusion.instances, default=0) + 1, bool)
    for i, inst in fusion.instances.items():
        tentative[i] = inst.frames < fusion.confirm_frames
    best = np.where((best > 0) & (best < len(tentative)), best, 0)
    return np.where(confirmed > 0, confirmed, np.where(tentative[best], best, 0)).astype(np.int64)


def _box(center: np.ndarray, size: np.ndarray) -> dict:
    sx, sy, sz = (float(v) for v in size)
    return {'bbox_3d_center': pose_at(_point(center)), 'bbox_3d_size': Vector3(x=sx, y=sy, z=sz)}


def map_objects_message(fusion: SceneFusion, header: Header, seen: dict[int, tuple[int, int]],
                        merges: list[tuple[int, int]], tracks: list[DynamicTrack] = (), now: Readout | None = None
                        ) -> MapObject3DArray:
    """Every map instance (and dynamic track) with its stable id, state, geometry and history.

    ``seen`` maps an instance id to the stamps (ns) of its first and last matched frame (absent: 0, e.g.
    a loaded map's); ``merges`` the ``(merged_from, merged_into)`` pairs to report once; ``now`` the map's
    :func:`readout` when the caller has it.
    """
    ext = label_extents(object_voxel_labels(fusion, now), fusion.map.positions,
                        max(fusion.instances, default=0) + 1)
    out = []
    for i in sorted(fusion.instances):
        inst = fusion.instances[i]
        lo, hi = ext.low[i], ext.high[i]
        out.append(MapObject3D(
            id=int(i), class_id=int(inst.class_id), label=inst.label, confidence=float(inst.confidence),
            state=_STATES[fusion.state(inst)], centroid=_point(ext.centroid[i]), **_box((lo + hi) / 2, hi - lo),
            point_count=int(ext.count[i]),
            first_seen=time_msg(seen.get(i, (0, 0))[0]), last_seen=time_msg(seen.get(i, (0, 0))[1]),
            frames_seen=int(inst.frames),
            merged_ids=uint32_array(sorted(inst.merged))))
    for t in tracks:
        out.append(MapObject3D(
            id=int(t.id), class_id=int(t.class_id), label=t.label, confidence=float(t.confidence),
            state=MapObject3D.STATE_DYNAMIC, centroid=_point(t.centroid),
            **_box((t.box_min + t.box_max) / 2, t.box_max - t.box_min), point_count=int(t.points),
            first_seen=time_msg(t.first_ns), last_seen=time_msg(t.last_ns), frames_seen=int(t.frames),
            merged_ids=uint32_array([])))
    return MapObject3DArray(header=header, objects=out, merged_from=uint32_array([a for a, _ in merges]),
                            merged_into=uint32_array([b for _, b in merges]),
                            frames_integrated=int(fusion.frames), map_voxels=int(len(fusion.map)))
