"""vizion3d_map_node: fuses vizion3d_node's per-frame objects into a live 3D map with stable object ids.

Inputs (remappable): ``objects`` (vizion3d_ros/ObjectMask3DArray, from vizion3d_node) and ``points``
(sensor_msgs/PointCloud2, the cloud vizion3d_node lifted the objects onto: same stamp and frame). Outputs:
``map_objects`` (vizion3d_ros/MapObject3DArray, after every integrated frame), ``map_points`` (PointCloud2
of the map voxels: x y z rgb instance_id class_id confidence, every ``map_publish_period`` s while somebody
subscribes), ``/diagnostics`` (frames, voxels, drops per reason). Services: ``~/save_map`` (SaveMap: the
files vizion3d-fuse writes, summary.json included), ``~/clear_map`` (ClearMap) and ``~/load_map`` (LoadMap:
such a folder back, ids kept; frames fused after it associate with its objects).

Why this design:

* Pairing by exact stamp: vizion3d_node stamps its objects with the cloud's header, so the pair is exact;
  each object's ``point_indices`` index the cloud's storage order, so the per-point labels are one
  scatter (no lifting, no camera model here). Unpaired messages wait in a small bounded buffer per input;
  the oldest is dropped (and counted, ``unpaired``) when it overflows.
* The pose world <- cloud frame comes from TF at the frame's stamp. The executor is single-threaded and
  also runs the TF listener, so a lookup must never wait there: a paired frame is looked up without a
  timeout, kept pending while TF has not caught up, retried on each callback and on a 50 ms timer, and
  dropped (``no_transform``) after ``tf_timeout``. Non-finite or non-rigid transforms are dropped too.
* Integration (SceneFusion.add_lifted, consolidation, building the map message) runs on a worker thread
  that takes the newest resolved frame from a one-slot mailbox (as vizion3d_node does): a map that falls
  behind skips frames (``superseded``) instead of queueing latency. One lock guards the map against the
  services and the map_points timer, which run on the executor.
* 2 cm voxels by default (vizion3d-fuse: 1 cm). Association counts a mask's overlap with an instance on
  the voxels both fall in, so a voxel must not be much smaller than a pixel's footprint at the objects'
  distance: with 1 cm, views 45 degrees apart and 320 x 240 images, a couch of the test room got a second
  id in its second frame; at 2 cm it keeps one, and a live map has no second pass to consolidate in.
* A plain node (not a lifecycle one, unlike vizion3d_node), to keep this first slice small: it starts
  working at once and shuts down cleanly on SIGINT/SIGTERM (worker stopped and joined first).
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Vector3
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from vizion3d_ros.msg import MapObject3D, MapObject3DArray, ObjectMask3DArray
from vizion3d_ros.srv import ClearMap, LoadMap, SaveMap

from ..core.fusion.export import map_layers
from ..core.fusion.scene import SceneFusion
from .cloud_frames import make_tf_listener, transform_to_matrix
from .conversions import MessageFormatError, _message_buffer, _with_data, pack_rgb, pointcloud2_to_arrays
from .input_qos import InputSubscription
from .latest import LatestSlot
from .messages import _point, pose_at, uint32_array
from .shutdown import run_until_stopped
from .stamps import stamp_ns

#: Why a frame was dropped (keys of the log line ``frame dropped (<key>, ...)`` and ``dropped/<key>``).
MAP_DROP_REASONS = {
    'unpaired': 'an objects message or a cloud without its partner (same stamp) was pushed out of the buffer',
    'no_transform': 'no world <- cloud frame transform in TF at the frame stamp within tf_timeout',
    'bad_transform': 'the TF transform holds NaN/inf or is not rigid',
    'bad_cloud': 'the point cloud cannot be read',
    'bad_objects': 'the objects do not fit the cloud (indices past its size, size mismatch, duplicate ids)',
    'superseded': 'a newer frame replaced it in the mailbox before the worker took it',
    'internal_error': 'an unexpected exception while integrating the frame (a bug: please report it)',
}

#: Parameters: name -> default.
PARAMS = {
    'world_frame': 'odom',
    'voxel_size': 0.02,
    'max_voxels': 2_000_000,
    'confirm_frames': 2,
    'consolidate_every': 10,
    'tf_timeout': 0.5,
    'pair_queue_size': 10,
    'map_publish_period': 1.0,
    'diagnostics_period': 1.0,
    'input_reliability': 'auto',
}

_MAP_FIELDS = (('x', PointField.FLOAT32, '<f4'), ('y', PointField.FLOAT32, '<f4'), ('z', PointField.FLOAT32, '<f4'),
               ('rgb', PointField.FLOAT32, '<u4'), ('instance_id', PointField.UINT32, '<u4'),
               ('class_id', PointField.INT32, '<i4'), ('confidence', PointField.FLOAT32, '<f4'))
MAP_POINT_DTYPE = np.dtype([(n, d) for n, _, d in _MAP_FIELDS])


class FrameDropped(Exception):  # noqa: N818 - a control-flow signal, like StopIteration
    """A frame that cannot be integrated; ``reason`` is one of :data:`MAP_DROP_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def rigid_pose(transform) -> np.ndarray:
    """4x4 of a geometry_msgs/Transform; :class:`FrameDropped` (``bad_transform``) unless finite and rigid."""
    q = transform.rotation
    t = transform.translation
    values = (t.x, t.y, t.z, q.x, q.y, q.z, q.w)
    if not all(math.isfinite(v) for v in values):
        raise FrameDropped('bad_transform', f'transform holds non-finite values {values}')
    norm = math.sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w)
    if abs(norm - 1.0) > 1e-3:
        raise FrameDropped('bad_transform', f'rotation quaternion has norm {norm:.6f}, not 1 (not a rotation)')
    return transform_to_matrix(transform)


def point_labels(objects: ObjectMask3DArray, n: int) -> tuple[np.ndarray, dict[int, dict]]:
    """Per-point object id (0 none) over a cloud of ``n`` points, and each id's class, label and confidence."""
    labels = np.zeros(n, np.uint32)
    meta: dict[int, dict] = {}
    for obj in objects.objects:
        oid = int(obj.id)
        if oid == 0 or oid in meta:
            raise FrameDropped('bad_objects', f'object id {oid} is 0 or appears twice')
        idx = np.frombuffer(obj.point_indices, np.uint32) if len(obj.point_indices) else np.zeros(0, np.uint32)
        if len(idx) and int(idx.max()) >= n:
            raise FrameDropped('bad_objects', f'object {oid} indexes point {int(idx.max())} of a cloud of {n} points')
        labels[idx] = oid
        conf = float(obj.confidence)
        meta[oid] = {'class_id': int(obj.class_id), 'label': obj.label,
                     'confidence': conf if math.isfinite(conf) else 0.0}
    return labels, meta


def map_cloud(fusion: SceneFusion, header: Header) -> PointCloud2:
    """The map voxels as an unorganised PointCloud2 (fields of :data:`MAP_POINT_DTYPE`), built vectorised."""
    layers = map_layers(fusion)
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


def object_voxel_labels(fusion: SceneFusion) -> np.ndarray:
    """Per map voxel, the instance it shows: confirmed ones as the map's readout, tentative ones by best vote."""
    confirmed = fusion.voxel_instances()
    best = fusion.map.best_labels()[0]
    tentative = np.zeros(max(fusion.instances, default=0) + 1, bool)
    for i, inst in fusion.instances.items():
        tentative[i] = inst.frames < fusion.confirm_frames
    best = np.where((best > 0) & (best < len(tentative)), best, 0)
    return np.where(confirmed > 0, confirmed, np.where(tentative[best], best, 0)).astype(np.int64)


#: SceneFusion.state's words as MapObject3D's constants (missing: confirmed, in view and not detected lately).
_STATES = {'tentative': MapObject3D.STATE_TENTATIVE, 'confirmed': MapObject3D.STATE_CONFIRMED,
           'missing': MapObject3D.STATE_MISSING}


def _time_msg(ns: int) -> TimeMsg:
    return TimeMsg(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


class MapNode(Node):
    """The ROS face of :class:`~vizion3d_ros.core.fusion.scene.SceneFusion` (see the module docstring)."""

    def __init__(self, **kwargs) -> None:
        super().__init__('vizion3d_map_node', **kwargs)
        for name, default in PARAMS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMS}
        self.world_frame = str(p['world_frame']).lstrip('/')
        self.voxel_size = float(p['voxel_size'])
        self.max_voxels = int(p['max_voxels'])
        self.confirm_frames = int(p['confirm_frames'])
        self.consolidate_every = max(int(p['consolidate_every']), 0)
        self.tf_timeout = float(p['tf_timeout'])
        self.pair_queue_size = max(int(p['pair_queue_size']), 1)
        if self.voxel_size <= 0 or not math.isfinite(self.voxel_size):
            raise ValueError(f'voxel_size must be > 0, got {self.voxel_size}')

        self.drops: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}
        self.log_interval_s = 5.0
        self._lock = threading.Lock()  # guards the map and what describes it
        self._new_fusion()
        self._objects: OrderedDict[int, ObjectMask3DArray] = OrderedDict()
        self._clouds: OrderedDict[int, PointCloud2] = OrderedDict()
        self._pending: list[tuple[int, ObjectMask3DArray, PointCloud2, float]] = []  # waiting for TF
        self._slot: LatestSlot[tuple] = LatestSlot()

        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._map_pub = self.create_publisher(MapObject3DArray, 'map_objects', qos)
        self._points_pub = self.create_publisher(PointCloud2, 'map_points', qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', QoSProfile(depth=10))
        self._tf_buffer, self._tf_listener = make_tf_listener(self)
        if self._tf_buffer is None:
            self.get_logger().error('tf2_ros is not installed: no frame can be placed in the world; every frame '
                                    'will be dropped (no_transform)')
        mode = str(p['input_reliability'])
        self._subs = [
            InputSubscription(self, ObjectMask3DArray, 'objects', self._on_objects, mode,
                              stamp_of=lambda m: stamp_ns(m.header)),
            InputSubscription(self, PointCloud2, 'points', self._on_cloud, mode,
                              stamp_of=lambda m: stamp_ns(m.header))]
        self.create_timer(1.0, self._refresh_inputs)
        self.create_timer(0.05, self._resolve_pending)
        self.create_timer(max(float(p['map_publish_period']), 0.05), self._publish_map_points)
        self.create_timer(max(float(p['diagnostics_period']), 0.1), self._publish_diagnostics)
        self.create_service(SaveMap, '~/save_map', self._save_map)
        self.create_service(ClearMap, '~/clear_map', self._clear_map)
        self.create_service(LoadMap, '~/load_map', self._load_map)
        self._worker = threading.Thread(target=self._work, name='vizion3d_map_worker', daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'map ready: world_frame {self.world_frame!r}, voxel_size {self.voxel_size:g} m, waiting for objects '
            'and points with the same stamp')

    # ------------------------------------------------------------------ map state (under self._lock)
    def _new_fusion(self) -> None:
        self.fusion = SceneFusion(voxel_size=self.voxel_size, max_voxels=self.max_voxels or None,
                                  confirm_frames=self.confirm_frames)
        self._frame_stamps: list[int] = []  # fusion frame index -> stamp (ns)
        self._merges: list[tuple[int, int]] = []  # since the last map_objects message
        self._newest_ns = 0

    # ------------------------------------------------------------------ executor side (never blocks)
    def _refresh_inputs(self) -> None:
        for sub in self._subs:
            change = sub.refresh()
            if change:
                self.get_logger().info(change)

    def _on_objects(self, msg: ObjectMask3DArray) -> None:
        self._pair(stamp_ns(msg.header), msg, self._objects, self._clouds, objects_first=True)

    def _on_cloud(self, msg: PointCloud2) -> None:
        self._pair(stamp_ns(msg.header), msg, self._clouds, self._objects, objects_first=False)

    def _pair(self, stamp: int, msg, mine: OrderedDict, theirs: OrderedDict, objects_first: bool) -> None:
        other = theirs.pop(stamp, None)
        if other is None:
            mine[stamp] = msg
            while len(mine) > self.pair_queue_size:
                mine.popitem(last=False)
                self._drop('unpaired', 'no partner with the same stamp arrived in time')
        else:
            objects, cloud = (msg, other) if objects_first else (other, msg)
            self._pending.append((stamp, objects, cloud, time.monotonic()))
        self._resolve_pending()

    def _resolve_pending(self) -> None:
        if not self._pending:
            return
        from rclpy.time import Time
        now = time.monotonic()
        keep = []
        for item in self._pending:
            stamp, objects, cloud, since = item
            source = cloud.header.frame_id.lstrip('/')
            try:
                if self._tf_buffer is None:
                    raise FrameDropped('no_transform', 'tf2_ros is not installed')
                if source == self.world_frame:
                    pose = np.eye(4)
                elif self._tf_buffer.can_transform(self.world_frame, source, Time(nanoseconds=stamp)):
                    tf = self._tf_buffer.lookup_transform(self.world_frame, source, Time(nanoseconds=stamp))
                    pose = rigid_pose(tf.transform)
                elif now - since < self.tf_timeout:
                    keep.append(item)
                    continue
                else:
                    raise FrameDropped('no_transform', f'no TF {self.world_frame!r} <- {source!r} at '
                                       f'{stamp / 1e9:.3f} within tf_timeout {self.tf_timeout:g} s')
            except FrameDropped as exc:
                self._drop(exc.reason, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - tf2 raises LookupException, ExtrapolationException, ...
                self._drop('no_transform', f'{type(exc).__name__}: {exc}')
                continue
            self._slot.put((stamp, objects, cloud, pose))
        self._pending = keep

    # ------------------------------------------------------------------ worker thread
    def _work(self) -> None:
        while not self._slot.closed and self.context.ok():
            frame = self._slot.take(timeout=0.5)
            if frame is None:
                continue
            try:
                msg = self._integrate(*frame)
            except FrameDropped as exc:
                self._drop(exc.reason, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a bad frame must never kill the node
                self._drop('internal_error', f'{type(exc).__name__}: {exc}')
                continue
            try:
                self._map_pub.publish(msg)
            except Exception:  # noqa: BLE001 - shutting down
                return

    def _integrate(self, stamp: int, objects: ObjectMask3DArray, cloud: PointCloud2, pose: np.ndarray
                   ) -> MapObject3DArray:
        try:
            arrays = pointcloud2_to_arrays(cloud)
        except MessageFormatError as exc:
            raise FrameDropped('bad_cloud', f'points: {exc}') from exc
        n = len(arrays.xyz)
        if (objects.cloud_width or objects.cloud_height) and \
                int(objects.cloud_width) * int(objects.cloud_height) != n:
            raise FrameDropped('bad_objects', f'objects describe a {objects.cloud_width}x{objects.cloud_height} '
                               f'cloud, the cloud has {n} points')
        labels, meta = point_labels(objects, n)
        with self._lock:
            self.fusion.add_lifted(arrays.xyz, pose, labels, meta, arrays.rgb)
            self._frame_stamps.append(stamp)
            self._newest_ns = max(self._newest_ns, stamp)
            if self.consolidate_every and self.fusion.frames % self.consolidate_every == 0:
                merged = self.fusion.consolidate()
                if merged:
                    self.get_logger().info('merged ' + ', '.join(f'{a} -> {b}' for a, b in sorted(merged.items())))
                self._merges.extend(sorted(merged.items()))
            return self._map_message()

    def _map_message(self) -> MapObject3DArray:
        """The map as a MapObject3DArray (caller holds the lock); consumes the merges since the last one."""
        f = self.fusion
        header = Header(frame_id=self.world_frame, stamp=_time_msg(self._newest_ns))
        labels = object_voxel_labels(f)
        pos = f.map.positions.astype(np.float64)
        top = max(f.instances, default=0) + 1
        sel = labels > 0
        lab = labels[sel]
        p = pos[sel]
        counts = np.bincount(lab, minlength=top)
        sums = np.stack([np.bincount(lab, p[:, k], minlength=top) for k in range(3)], axis=1)
        lo = np.full((top, 3), np.inf)
        hi = np.full((top, 3), -np.inf)
        np.minimum.at(lo, lab, p)
        np.maximum.at(hi, lab, p)
        stamps = self._frame_stamps
        out = []
        for i in sorted(f.instances):
            inst = f.instances[i]
            c = int(counts[i])
            centroid = sums[i] / c if c else np.zeros(3)
            center = (lo[i] + hi[i]) / 2 if c else np.zeros(3)
            size = (hi[i] - lo[i]) if c else np.zeros(3)
            sx, sy, sz = size.tolist()
            first = stamps[inst.first_frame] if 0 <= inst.first_frame < len(stamps) else 0
            last = stamps[inst.last_frame] if 0 <= inst.last_frame < len(stamps) else 0
            out.append(MapObject3D(
                id=int(i), class_id=int(inst.class_id), label=inst.label, confidence=float(inst.confidence),
                state=_STATES[f.state(inst)],
                centroid=_point(centroid), bbox_3d_center=pose_at(_point(center)),
                bbox_3d_size=Vector3(x=sx, y=sy, z=sz), point_count=c,
                first_seen=_time_msg(first), last_seen=_time_msg(last), frames_seen=int(inst.frames),
                merged_ids=uint32_array(sorted(inst.merged))))
        merges, self._merges = self._merges, []
        return MapObject3DArray(header=header, objects=out, merged_from=uint32_array([a for a, _ in merges]),
                                merged_into=uint32_array([b for _, b in merges]),
                                frames_integrated=int(f.frames), map_voxels=int(len(f.map)))

    # ------------------------------------------------------------------ outputs, services
    def _publish_map_points(self) -> None:
        if self._points_pub.get_subscription_count() == 0:
            return
        with self._lock:
            header = Header(frame_id=self.world_frame, stamp=_time_msg(self._newest_ns))
            msg = map_cloud(self.fusion, header)
        self._points_pub.publish(msg)

    def _save_map(self, request: SaveMap.Request, response: SaveMap.Response) -> SaveMap.Response:
        out = Path(request.path).expanduser()
        try:
            with self._lock:
                summary = self.fusion.export(out)
                summary['frames'] = int(self.fusion.frames)
                summary['world_frame'] = self.world_frame
                stamps = self._frame_stamps
                for r in summary['instances']:
                    for key in ('first_frame', 'last_frame'):
                        k = r[key]
                        r[key.replace('frame', 'seen_ns')] = stamps[k] if 0 <= k < len(stamps) else 0
            (out / 'summary.json').write_text(json.dumps(summary, indent=2))
        except Exception as exc:  # noqa: BLE001 - an unwritable path, a full disk: answer, do not die
            response.success = False
            response.message = f'could not save the map into {out}: {type(exc).__name__}: {exc}'
            self.get_logger().error(response.message)
            return response
        files = sorted(str(p) for p in out.rglob('*') if p.is_file())
        response.success = True
        response.files = files
        response.message = (f'saved {summary["voxels"]} voxels and {len(summary["instances"])} confirmed objects '
                            f'into {out}')
        self.get_logger().info(response.message)
        return response

    def _clear_map(self, request: ClearMap.Request, response: ClearMap.Response) -> ClearMap.Response:
        with self._lock:
            voxels, objects = len(self.fusion.map), len(self.fusion.instances)
            self._new_fusion()
            self._newest_ns = self.get_clock().now().nanoseconds  # the empty map's stamp: when it was cleared
            empty = self._map_message()
            self._newest_ns = 0
        self._map_pub.publish(empty)  # subscribers see the map empty now, not at the next frame
        response.success = True
        response.voxels_cleared, response.objects_cleared = int(voxels), int(objects)
        response.message = f'cleared {voxels} voxels and {objects} objects'
        self.get_logger().info(response.message)
        return response

    def _load_map(self, request: LoadMap.Request, response: LoadMap.Response) -> LoadMap.Response:
        """Replace the map with a saved one (save_map's or vizion3d-fuse's folder); a bad folder changes nothing."""
        path = Path(request.path).expanduser()
        try:
            fusion = SceneFusion.load(path, max_voxels=self.max_voxels or None, confirm_frames=self.confirm_frames)
        except (OSError, ValueError) as exc:
            response.success = False
            response.message = f'could not load a map from {path}: {exc}'
            self.get_logger().error(response.message)
            return response
        if fusion.mode != 'instance':
            response.success = False
            response.message = f'{path} holds a {fusion.mode} map; this node keeps instance maps'
            self.get_logger().error(response.message)
            return response
        with self._lock:
            self.fusion = fusion
            self._frame_stamps = []  # the saved map's frames are not replayed: their stamps read 0
            self._merges = []
            self._newest_ns = self.get_clock().now().nanoseconds  # the loaded map's stamp: when it was loaded
            msg = self._map_message()
            self._newest_ns = 0  # frames of any stamp may follow
        self._map_pub.publish(msg)
        response.success = True
        response.map_voxels, response.objects = len(fusion.map), len(fusion.instances)
        note = '' if fusion.map.voxel_size == self.voxel_size else \
            f' (its voxel size {fusion.map.voxel_size:g} m replaces {self.voxel_size:g} m)'
        response.message = f'loaded {len(fusion.map)} voxels and {len(fusion.instances)} objects from {path}{note}'
        self.get_logger().info(response.message)
        return response

    # ------------------------------------------------------------------ drops, diagnostics
    def _drop(self, reason: str, message: str) -> None:
        self.drops[reason] += 1
        now = time.monotonic()
        if now - self._last_logged.get(reason, -1e9) >= self.log_interval_s:
            self._last_logged[reason] = now
            self.get_logger().error(f'frame dropped ({reason}, {self.drops[reason]} so far): {message}')

    def _publish_diagnostics(self) -> None:
        self.drops['superseded'] = self._slot.replaced
        with self._lock:
            frames, voxels, objects = self.fusion.frames, len(self.fusion.map), len(self.fusion.instances)
        kv = [('frames_integrated', frames), ('map_voxels', voxels), ('objects', objects),
              ('pending_tf', len(self._pending))]
        kv += [(f'dropped/{k}', v) for k, v in sorted(self.drops.items())]
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name=f'{self.get_fully_qualified_name()}: map',
                                  message=f'{frames} frames, {voxels} voxels, {objects} objects',
                                  hardware_id=self.world_frame,
                                  values=[KeyValue(key=k, value=str(v)) for k, v in kv])
        self._diag_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()),
                                               status=[status]))

    def release(self) -> None:
        """Stop and join the worker (idempotent)."""
        self._slot.close()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout=5.0)

    def destroy_node(self) -> None:
        """Stop the worker before the node's handles go away."""
        self.release()
        super().destroy_node()


def main(args: list[str] | None = None, hard_exit: bool = False) -> int:
    """Console entry point: run the map node until SIGINT/SIGTERM (:func:`.shutdown.run_until_stopped`)."""
    return run_until_stopped('vizion3d_map_node', MapNode, args, hard_exit)


if __name__ == '__main__':
    raise SystemExit(main())
