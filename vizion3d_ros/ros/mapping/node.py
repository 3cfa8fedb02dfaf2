"""vizion3d_map_node: fuses vizion3d_node's per-frame objects into a live 3D map with stable object ids.

Inputs (remappable): ``objects`` (vizion3d_ros/ObjectMask3DArray, from vizion3d_node) and ``points``
(sensor_msgs/PointCloud2, the cloud vizion3d_node lifted the objects onto: same stamp and frame); with
``pose_source`` topic also ``pose`` (geometry_msgs/PoseStamped) or ``odom`` (nav_msgs/Odometry).
Outputs: ``map_objects`` (vizion3d_ros/MapObject3DArray, after every integrated frame), ``map_markers``
(visualization_msgs/MarkerArray: a box and a "label #id" per object, marker id = object id),
``detections_3d`` (vision_msgs/Detection3DArray of the confirmed and dynamic objects, id = the stable
id; where vision_msgs is installed), ``map_points`` (PointCloud2 of the map voxels: x y z rgb instance_id
class_id confidence, every ``map_publish_period`` s while somebody subscribes), ``/diagnostics``.
Services: ``~/save_map`` (SaveMap: the files vizion3d-fuse writes), ``~/clear_map`` (ClearMap),
``~/load_map`` (LoadMap: such a folder back, ids kept).

A managed (lifecycle) node like vizion3d_node. ``configure`` validates the parameters, creates the map,
publishers, services, the TF listener and the worker thread; ``activate`` subscribes; ``deactivate``
unsubscribes (the map and the services stay); ``cleanup`` drops the map. ``autostart`` (default) does
configure + activate at startup.

Why this design:

* The source cloud, not vizion3d_node's annotated one: both are the same points in the same order, but
  the source cloud is already on the wire (the camera driver's topic), so the map costs vizion3d_node
  nothing, and its colours are the camera's rather than the object colouring. Each object's
  ``point_indices`` index that cloud, so the per-point labels are one scatter (no lifting here).
* Pairing by exact stamp (:mod:`.pairing`), the pose from TF or a pose topic without ever waiting on
  the executor (:mod:`.poses`): a paired frame whose pose has not arrived is kept pending, retried on
  every callback and on a 50 ms timer, and dropped after ``tf_timeout``.
* Integration (SceneFusion.add_lifted, consolidation, message building) runs on a worker thread that
  takes the newest placed frame from a one-slot mailbox: a map that falls behind skips frames
  (``superseded``) instead of queueing latency. One lock guards the map against the services and the
  map_points timer, which run on the executor.
* Long runs stay bounded: ``max_voxels``, ``map_radius``, tentative objects forgotten after
  ``forget_tentative_after`` frames, first/last-seen stamps kept per object (not per frame), and the
  camera trajectory kept for the last :data:`KEEP_CAMERA_POSES` frames only.
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from vizion3d_ros.msg import MapObject3D, MapObject3DArray, ObjectMask3DArray
from vizion3d_ros.srv import ClearMap, LoadMap, SaveMap

from ...core.camera.poses import PoseHistory
from ...core.camera.transforms import parse_extrinsic
from ..cloud_frames import make_tf_listener
from ..detections import to_detection3d_array, vision_msgs_available
from ..drops import MAP_DROP_REASONS, FrameRejectedError
from ..input_qos import InputSubscription
from ..latest import LatestSlot
from ..markers import ObjectMarkers
from ..shutdown import run_until_stopped
from ..stamps import REWIND_S, StampGate, stamp_ns
from .integrator import MapIntegrator, warm_up
from .pairing import StampPairer
from .params import MAP_PARAMS, USED_BY_CONFIGURE, MapSettings
from .poses import FramePoser

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class MapNode(LifecycleNode):
    """The ROS face of :class:`~vizion3d_ros.core.fusion.scene.SceneFusion` (see the module docstring)."""

    def __init__(self, **kwargs) -> None:
        super().__init__('vizion3d_map_node', **kwargs)
        self._startup_problems = MAP_PARAMS.declare(self)
        self.settings: MapSettings = MAP_PARAMS.read(self)
        self.add_on_set_parameters_callback(self._validate_parameters)
        if hasattr(self, 'add_post_set_parameters_callback'):
            self.add_post_set_parameters_callback(self._parameters_set)
        self._retry_timer = None
        self.error: str | None = None
        self.drops: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}
        self.log_interval_s = 5.0
        self._integration_ms: deque[float] = deque(maxlen=200)
        self._lock = threading.Lock()  # guards the map and what describes it
        self.map: MapIntegrator | None = None
        self._pairer: StampPairer | None = None
        self._poser: FramePoser | None = None
        self._pending: list[tuple[int, ObjectMask3DArray, PointCloud2, float]] = []  # waiting for a pose
        self._gate = StampGate()
        self._slot: LatestSlot | None = None
        self._worker: threading.Thread | None = None
        self._pubs: dict[str, object] = {}
        self._map_services: list = []
        self._subs: list[InputSubscription] = []
        self._pose_subs: list = []
        self._active_timers: list = []
        self._tf_buffer = self._tf_listener = None
        self._markers = ObjectMarkers(namespace='vizion3d_map', lifetime_s=0.0, stable_ids=True)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', QoSProfile(depth=10))
        self._diag_timer = self.create_timer(self.settings.diagnostics_period, self._publish_diagnostics)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Configure and activate when ``autostart`` is on (called once, before spinning)."""
        if not self.settings.autostart:
            self.get_logger().info('autostart is off: waiting for lifecycle transitions (configure, activate)')
            return
        if self.trigger_configure() == SUCCESS:
            self.trigger_activate()

    @property
    def state(self) -> str:
        """Current lifecycle state label: unconfigured, inactive, active, finalized, ..."""
        return self._state_machine.current_state[1]

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate the parameters; create the map, publishers, services, pose source and worker."""
        s = MAP_PARAMS.read(self)
        problems = [f'{name}: {text}' for name, text in self._startup_problems.items()]
        problem = MAP_PARAMS.check_values({k: getattr(s, k) for k in MAP_PARAMS.specs})
        if problem:
            problems.append(problem)
        if problems:
            self.error = 'configure failed: invalid parameters: ' + '; '.join(problems)
            self.get_logger().error(self.error)
            return FAILURE
        self.settings, self.error = s, None
        self.world_frame = s.world_frame.strip().lstrip('/')
        source = s.pose_source
        if source in ('auto', 'tf'):
            self._tf_buffer, self._tf_listener = make_tf_listener(self)
            if self._tf_buffer is None and source == 'tf':
                self.get_logger().error('pose_source tf but tf2_ros is not installed: every frame will be dropped '
                                        '(no_transform); use pose_source topic')
            source = 'tf' if self._tf_buffer is not None or source == 'tf' else 'topic'
        history = PoseHistory(max_age_s=s.pose_history, max_gap_s=s.pose_max_gap) if source == 'topic' else None
        self._poser = FramePoser(self.world_frame, source, self._tf_buffer, history, parse_extrinsic(s.cloud_to_pose))
        warm_up()  # here, not on the first frame
        with self._lock:
            self._new_map()
        self._pairer = StampPairer(s.pair_queue_size)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {'map_objects': self.create_lifecycle_publisher(MapObject3DArray, 'map_objects', qos),
                      'map_points': self.create_lifecycle_publisher(PointCloud2, 'map_points', qos),
                      'map_markers': self.create_lifecycle_publisher(MarkerArray, 'map_markers', qos)}
        if vision_msgs_available():
            from vision_msgs.msg import Detection3DArray
            self._pubs['detections_3d'] = self.create_lifecycle_publisher(Detection3DArray, 'detections_3d', qos)
        self._map_services = [self.create_service(SaveMap, '~/save_map', self._save_map),
                          self.create_service(ClearMap, '~/clear_map', self._clear_map),
                          self.create_service(LoadMap, '~/load_map', self._load_map)]
        self._slot = LatestSlot()
        self._worker = threading.Thread(target=self._work, args=(self._slot,), name='vizion3d_map_worker',
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(f'configured: world_frame {self.world_frame!r}, poses from '
                               f'{"TF" if source == "tf" else "the pose/odom topic"}, voxel_size {s.voxel_size:g} m')
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the inputs and start the timers."""
        s = self.settings
        self._gate.reset()
        self._subs = [
            InputSubscription(self, ObjectMask3DArray, 'objects', self._on_objects, s.input_reliability,
                              stamp_of=lambda m: stamp_ns(m.header)),
            InputSubscription(self, PointCloud2, 'points', self._on_cloud, s.input_reliability,
                              stamp_of=lambda m: stamp_ns(m.header))]
        if self._poser.source == 'topic':
            from geometry_msgs.msg import PoseStamped
            pose_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches any publisher
            self._pose_subs = [self.create_subscription(PoseStamped, 'pose', self._on_pose, pose_qos)]
            try:
                from nav_msgs.msg import Odometry
                self._pose_subs.append(self.create_subscription(Odometry, 'odom', self._on_pose, pose_qos))
            except ImportError:
                self.get_logger().warning('nav_msgs is not installed: poses only from `pose` (PoseStamped)')
        self._active_timers = [self.create_timer(1.0, self._refresh_inputs),
                               self.create_timer(0.05, self._resolve_pending),
                               self.create_timer(s.map_publish_period, self._publish_map_points)]
        self.get_logger().info('map ready: waiting for objects and points with the same stamp')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the timers; the map, its services and the worker stay."""
        self._unsubscribe()
        self._clear_markers()
        ret = super().on_deactivate(state)
        self.get_logger().info('deactivated: inputs unsubscribed, the map is kept')
        return ret

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker, drop the map, destroy publishers, services and the TF listener."""
        ret = super().on_cleanup(state)
        self._release_configured()
        self.get_logger().info('cleaned up: the map is gone')
        return ret

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free everything, from whichever state the node was in."""
        self.release()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: free everything and go back to unconfigured."""
        self.get_logger().error(f'lifecycle error from state {state.label}; releasing everything')
        self.release()
        return SUCCESS

    def release(self) -> None:
        """Unsubscribe, stop and join the worker, destroy what configure created (idempotent)."""
        self._unsubscribe()
        self._release_configured()

    def _unsubscribe(self) -> None:
        for sub in self._subs:
            sub.destroy()
        for sub in self._pose_subs:
            self.destroy_subscription(sub)
        for timer in self._active_timers:
            self.destroy_timer(timer)
        self._subs, self._pose_subs, self._active_timers, self._pending = [], [], [], []
        if self._pairer is not None:
            self._pairer.clear()

    def _release_configured(self) -> None:
        if self._slot is not None:
            self._slot.close()
        if self._worker is not None and self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout=5.0)
        self._slot = self._worker = None
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        for srv in self._map_services:
            self.destroy_service(srv)
        self._pubs, self._map_services = {}, []
        self._tf_listener = self._tf_buffer = None
        with self._lock:
            self.map = None

    def destroy_node(self) -> None:
        """Stop the worker before the node's handles go away."""
        self.release()
        super().destroy_node()

    # ------------------------------------------------------------------ parameters
    def _validate_parameters(self, params) -> SetParametersResult:
        problem = MAP_PARAMS.check_values({p.name: p.value for p in params})
        return SetParametersResult(successful=problem is None, reason=problem or '')

    def _parameters_set(self, params) -> None:
        """Accepted changes: the per-frame ones apply to the next frame, the rest at the next configure.

        While an automatic start has failed (invalid parameters), a change retries it, from a timer: a
        transition must not run inside the parameter service's callback.
        """
        for p in params:
            self._startup_problems.pop(p.name, None)
        fresh = MAP_PARAMS.read(self)
        for name, spec in MAP_PARAMS.specs.items():
            if spec.applies in ('frame', 'now'):
                setattr(self.settings, name, getattr(fresh, name))
        if self.error and self.settings.autostart and self.state == 'unconfigured' and self._retry_timer is None:
            self._retry_timer = self.create_timer(0.05, self._retry_start)

    def _retry_start(self) -> None:
        self.destroy_timer(self._retry_timer)
        self._retry_timer = None
        self.start()

    # ------------------------------------------------------------------ map state (under self._lock)
    def _new_map(self) -> None:
        self.map = MapIntegrator(self.settings, self.world_frame)

    # ------------------------------------------------------------------ executor side (never blocks)
    def _refresh_inputs(self) -> None:
        for sub in self._subs:
            change = sub.refresh()
            if change:
                self.get_logger().info(change)

    def _on_objects(self, msg: ObjectMask3DArray) -> None:
        self._paired(self._pairer.add_objects(stamp_ns(msg.header), msg))

    def _on_cloud(self, msg: PointCloud2) -> None:
        self._paired(self._pairer.add_cloud(stamp_ns(msg.header), msg))

    def _on_pose(self, msg) -> None:
        problem = self._poser.add_pose_message(msg)
        if problem:
            self._drop('bad_pose', problem)
        self._resolve_pending()

    def _paired(self, pair) -> None:
        pushed = self._pairer.pushed_out - self.drops['unpaired']
        if pushed > 0:
            self._drop('unpaired', 'no partner with the same stamp arrived in time', pushed)
        if pair is not None:
            stamp, objects, cloud = pair
            try:
                last = self._gate.last_ns
                if self._gate.check(stamp, 0, 0.0):
                    self.get_logger().warning(
                        f'stamps went back {(last - stamp) / 1e9:.1f} s (more than {REWIND_S:g} s): the source '
                        'restarted or a recording plays again; poses and tracks start over')
                    self._poser.clear()
                    with self._lock:
                        if self.map is not None:
                            self.map.tracker.clear()
                self._gate.accept(stamp)
            except FrameRejectedError as exc:
                self._drop(exc.reason, str(exc))
            else:
                self._pending.append((stamp, objects, cloud, time.monotonic()))
        self._resolve_pending()

    def _resolve_pending(self) -> None:
        if not self._pending:
            return
        now = time.monotonic()
        keep = []
        for item in self._pending:
            stamp, objects, cloud, since = item
            answer = self._poser.resolve(cloud.header.frame_id, stamp)
            if answer.status == 'ok':
                self._slot.put((stamp, objects, cloud, answer.pose))
            elif answer.status == 'drop':
                self._drop(answer.reason, answer.message)
            elif now - since < self.settings.tf_timeout:
                keep.append(item)
            else:
                self._drop(self._poser.drop_reason, f'{answer.message} (waited tf_timeout '
                           f'{self.settings.tf_timeout:g} s)')
        self._pending = keep

    # ------------------------------------------------------------------ worker thread
    def _work(self, slot: LatestSlot) -> None:
        while not slot.closed and self.context.ok():
            frame = slot.take(timeout=0.5)
            if frame is None:
                continue
            try:
                msg = self._integrate(*frame)
            except FrameRejectedError as exc:
                self._drop(exc.reason, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a bad frame must never kill the node
                self._drop('internal_error', f'{type(exc).__name__}: {exc}')
                continue
            if msg is None:
                continue
            try:
                self._send(msg)
            except Exception:  # noqa: BLE001 - shutting down
                return

    def _integrate(self, stamp: int, objects: ObjectMask3DArray, cloud: PointCloud2, pose: np.ndarray
                   ) -> MapObject3DArray | None:
        """Fuse the frame; its map_objects message, or None when nobody listens to what is built from it."""
        listened = any(self._pubs[t].get_subscription_count() for t in self._pubs if t != 'map_points')
        with self._lock:
            if self.map is None:
                raise FrameRejectedError('superseded', 'the map was released while the frame waited')
            msg = self.map.integrate(stamp, objects, cloud, pose, describe=listened)
            merged = self.map.last_merges
            self._integration_ms.append(self.map.last_ms)
        if merged:
            self.get_logger().info('merged ' + ', '.join(f'{a} -> {b}' for a, b in sorted(merged.items())))
        return msg

    def _send(self, msg: MapObject3DArray) -> None:
        """map_objects, then the markers and detections_3d of the same objects (built only when listened to)."""
        pubs = self._pubs
        pubs['map_objects'].publish(msg)
        if pubs['map_markers'].get_subscription_count():
            pubs['map_markers'].publish(self._markers.update(msg))
        det = pubs.get('detections_3d')
        if det is not None and det.get_subscription_count():
            kept = MapObject3DArray(header=msg.header, objects=[
                o for o in msg.objects if o.state != MapObject3D.STATE_TENTATIVE])
            det.publish(to_detection3d_array(kept))

    def _clear_markers(self) -> None:
        pub = self._pubs.get('map_markers')
        if pub is not None:
            pub.publish(self._markers.clear(Header(frame_id=getattr(self, 'world_frame', ''))))

    # ------------------------------------------------------------------ outputs, services
    def _publish_map_points(self) -> None:
        pub = self._pubs.get('map_points')
        if pub is None or pub.get_subscription_count() == 0:
            return
        with self._lock:
            if self.map is None:
                return
            msg = self.map.cloud()
        pub.publish(msg)

    def _save_map(self, request: SaveMap.Request, response: SaveMap.Response) -> SaveMap.Response:
        out = Path(request.path).expanduser()
        try:
            with self._lock:
                summary = self.map.save(out)
        except Exception as exc:  # noqa: BLE001 - an unwritable path, a full disk: answer, do not die
            response.success = False
            response.message = f'could not save the map into {out}: {type(exc).__name__}: {exc}'
            self.get_logger().error(response.message)
            return response
        response.success = True
        response.files = sorted(str(p) for p in out.rglob('*') if p.is_file())
        response.message = (f'saved {summary["voxels"]} voxels and {len(summary["instances"])} confirmed objects '
                            f'into {out}')
        self.get_logger().info(response.message)
        return response

    def _clear_map(self, request: ClearMap.Request, response: ClearMap.Response) -> ClearMap.Response:
        with self._lock:
            voxels, objects = len(self.map.fusion.map), len(self.map.fusion.instances)
            self._new_map()
            empty = self.map.message(self.get_clock().now().nanoseconds)  # stamped when it was cleared
        self._gate.reset()
        self._send(empty)  # subscribers see the map empty now, not at the next frame
        response.success = True
        response.voxels_cleared, response.objects_cleared = int(voxels), int(objects)
        response.message = f'cleared {voxels} voxels and {objects} objects'
        self.get_logger().info(response.message)
        return response

    def _load_map(self, request: LoadMap.Request, response: LoadMap.Response) -> LoadMap.Response:
        """Replace the map with a saved one (save_map's or vizion3d-fuse's folder); a bad folder changes nothing."""
        path = Path(request.path).expanduser()
        s = self.settings
        try:
            loaded = MapIntegrator.load(path, s, self.world_frame)
        except (OSError, ValueError) as exc:
            response.success = False
            response.message = f'could not load a map from {path}: {exc}'
            self.get_logger().error(response.message)
            return response
        with self._lock:
            self.map = loaded
            msg = loaded.message(self.get_clock().now().nanoseconds)  # stamped when it was loaded
        self._gate.reset()
        self._send(msg)
        fusion = loaded.fusion
        response.success = True
        response.map_voxels, response.objects = len(fusion.map), len(fusion.instances)
        note = '' if fusion.map.voxel_size == s.voxel_size else \
            f' (its voxel size {fusion.map.voxel_size:g} m replaces {s.voxel_size:g} m)'
        response.message = f'loaded {len(fusion.map)} voxels and {len(fusion.instances)} objects from {path}{note}'
        self.get_logger().info(response.message)
        return response

    # ------------------------------------------------------------------ drops, diagnostics
    def _drop(self, reason: str, message: str, n: int = 1) -> None:
        self.drops[reason] += n
        now = time.monotonic()
        if now - self._last_logged.get(reason, -1e9) >= self.log_interval_s:
            self._last_logged[reason] = now
            self.get_logger().error(f'frame dropped ({reason}, {self.drops[reason]} so far): {message}')

    def _publish_diagnostics(self) -> None:
        if self._slot is not None:
            self.drops['superseded'] = self._slot.replaced
        with self._lock:
            f = self.map.fusion if self.map is not None else None
            frames, voxels = (f.frames, len(f.map)) if f is not None else (0, 0)
            objects = Counter(f.state(i) for i in f.instances.values()) if f is not None else Counter()
            memory = f.map.memory_bytes() if f is not None else 0
            tracks = len(self.map.tracker.tracks) if self.map is not None else 0
        times = sorted(self._integration_ms)
        kv = [('state', self.state), ('frames_integrated', frames), ('map_voxels', voxels),
              ('map_memory_mib', f'{memory / 2**20:.1f}'), ('rss_mib', f'{_rss_bytes() / 2**20:.1f}'),
              ('objects', sum(objects.values())), ('objects_confirmed', objects['confirmed']),
              ('objects_tentative', objects['tentative']), ('objects_missing', objects['missing']),
              ('dynamic_tracks', tracks), ('pending_pose', len(self._pending))]
        if times:
            kv += [('integration_ms_p50', f'{times[len(times) // 2]:.1f}'),
                   ('integration_ms_p95', f'{times[min(int(len(times) * 0.95), len(times) - 1)]:.1f}')]
        kv += [(f'dropped/{k}', v) for k, v in sorted(self.drops.items())]
        level = DiagnosticStatus.OK if self.error is None else DiagnosticStatus.ERROR
        status = DiagnosticStatus(level=level, name=f'{self.get_fully_qualified_name()}: map',
                                  message=self.error or f'{frames} frames, {voxels} voxels, '
                                  f'{sum(objects.values())} objects',
                                  hardware_id=getattr(self, 'world_frame', self.settings.world_frame),
                                  values=[KeyValue(key=k, value=str(v)) for k, v in kv])
        self._diag_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()),
                                               status=[status]))


def _rss_bytes() -> int:
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        return 0


def main(args: list[str] | None = None, hard_exit: bool = False) -> int:
    """Console entry point: run the map node until SIGINT/SIGTERM (:func:`..shutdown.run_until_stopped`)."""

    def make() -> MapNode:
        node = MapNode()
        node.start()
        return node

    return run_until_stopped('vizion3d_map_node', make, args, hard_exit)


__all__ = ['MAP_DROP_REASONS', 'MapNode', 'USED_BY_CONFIGURE', 'main']
