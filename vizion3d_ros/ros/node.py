"""vizion3d_node: segments the camera image and lifts each instance onto the synchronised cloud.

Inputs (remappable): ``image`` (sensor_msgs/Image), ``camera_info`` (sensor_msgs/CameraInfo),
``points`` (sensor_msgs/PointCloud2, in the camera's optical frame, or in another frame given
``cloud_to_camera`` or TF). Outputs: ``objects`` (vizion3d_ros/ObjectMask3DArray), ``annotated_points``
(PointCloud2, input cloud recoloured by object) and ``markers`` (visualization_msgs/MarkerArray), all in
the cloud's frame; ``debug_image`` (Image, when ``publish_debug_image``); ``detections_3d``
(vision_msgs/Detection3DArray, only where vision_msgs is installed); ``/diagnostics`` (pipeline state,
rates, drops per reason, latencies; published in every lifecycle state).

A managed (lifecycle) node. ``configure`` validates the parameters and creates the publishers, the
synchroniser and the worker thread; ``activate`` loads and warms up the model and subscribes;
``deactivate`` unsubscribes and frees the model; ``cleanup``/``shutdown`` free the rest. With
``autostart`` (default) the node configures and activates itself at startup.

Threads: the executor (single-threaded) runs the subscription callbacks, which only pair messages and
drop them into a one-slot mailbox, plus timers, services and lifecycle transitions. The worker thread
takes the newest frame and does everything slow: message conversion, the TF lookup (with a timeout),
inference, lifting and publishing. Model loading runs inside the ``activate`` transition: the
ChangeState answer must say whether the model loaded, and the executor has nothing else to serve
while the node is not active (no subscriptions yet).
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from dataclasses import replace

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import JumpThreshold
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.logging import LoggingSeverity
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from vizion3d_ros.msg import ObjectMask3DArray

from ..core.camera.transforms import cloud_to_camera_gl, parse_extrinsic
from ..core.lifting.lift import LiftConfig
from ..core.pipeline import FramePipeline
from ..core.render.overlay import render_overlay
from ..core.segmentation.base import parse_class_filter
from ..core.segmentation.models import ModelUnavailableError, resolve_model
from .cloud_frames import CloudToCamera, make_tf_listener
from .conversions import (
    CameraInfoError,
    MessageFormatError,
    camera_model,
    image_to_rgb,
    pointcloud2_to_arrays,
    rgb_to_image,
)
from .detections import to_detection3d_array, vision_msgs_available
from .diagnostics import PipelineStats, to_diagnostic_array
from .drops import FrameRejectedError
from .input_qos import InputSubscription
from .input_watch import InputState, InputWatch
from .latest import LatestSlot
from .markers import ObjectMarkers
from .messages import annotated_cloud, objects_to_array_msg
from .params import (
    SPECS,
    USED_BY_ACTIVATE,
    USED_BY_CONFIGURE,
    NodeSettings,
    SettingsError,
    check_value,
    check_values,
    declare_parameters,
    read_settings,
    settings_from_values,
    validate_settings,
)
from .shutdown import run_until_stopped
from .stamps import REWIND_S, StampGate, stamp_ns
from .sync import ApproximateSynchronizer

try:
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
INPUTS = ('image', 'camera_info', 'points')
#: Stamps kept per input for the unpaired-inputs diagnosis (InputState.recent_stamps_ns)
RECENT_STAMPS = 8


class ActivationError(RuntimeError):
    """The model could not be made ready; the message says why and what to do."""


class Vizion3DNode(LifecycleNode):
    """The ROS face of :class:`~vizion3d_ros.core.pipeline.FramePipeline`, as a managed node."""

    def __init__(self, **kwargs) -> None:
        super().__init__('vizion3d_node', **kwargs)
        self._startup_problems = declare_parameters(self)
        self.settings: NodeSettings = read_settings(self)
        self.add_on_set_parameters_callback(self._validate_parameters)
        # Humble has no post-set callbacks: there, accepted values are applied from the validation callback
        self._apply_when_validated = not hasattr(self, 'add_post_set_parameters_callback')
        if not self._apply_when_validated:
            self.add_post_set_parameters_callback(self._apply_parameters)

        #: Why the last transition failed (None after a successful activation), for logs and diagnostics.
        self.error: str | None = None
        self._failed_transition: str | None = None
        self._retry_on: frozenset[str] = frozenset()
        #: Rates, drops per reason and latencies, reported on /diagnostics and in the periodic stats line.
        self.stats = PipelineStats()
        self.qos_events: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}
        self.log_interval_s = 5.0

        # created by configure / activate, released by deactivate / cleanup
        self._objects_pub = self._cloud_pub = self._markers_pub = self._debug_pub = self._detections_pub = None
        self._markers: ObjectMarkers | None = None
        self._marker_frame: str | None = None  # frame of the last markers sent, for clearing them
        self._input_subs: list[InputSubscription] = []
        self._recent_stamps: list[deque[int]] = [deque(maxlen=RECENT_STAMPS) for _ in INPUTS]
        self._last_synced: float | None = None
        self._inputs_timer = None
        self._watch = InputWatch(profile_hint=_profile_hint())
        self._input_topics: tuple[str, ...] = INPUTS
        self._sync: ApproximateSynchronizer | None = None
        self._sync_lock = threading.Lock()
        self._slot: LatestSlot[tuple] | None = None
        self._worker: threading.Thread | None = None
        self._tf_listener = None
        self._frames = CloudToCamera()
        self._gate = StampGate()
        self._busy = threading.Lock()  # held by the worker while it processes a frame
        self._pipeline: FramePipeline | None = None
        self._model_path = None
        self.model_name = ''
        self.device = ''
        self._class_names: dict[int, str] | None = None
        self._classes_applied: str | None = None
        self._extrinsic: tuple[str, object] = ('', None)
        self._retry_timer = None

        self.create_timer(30.0, self._log_stats)
        # /diagnostics is a plain publisher: the state and a failed activation's error must be visible
        # while the node is unconfigured or inactive too
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics',
                                               QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self._diag_timer = self.create_timer(self.settings.diagnostics_period, self._publish_diagnostics)
        # A bag replayed in a loop (use_sim_time) jumps back in time: forget the last stamp, or every
        # later frame would be dropped as out_of_order.
        self._jump_handle = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(seconds=-1.0), on_clock_change=True),
            post_callback=lambda _jump: self._reset_stream())

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Configure and activate when ``autostart`` is on (called once, before spinning)."""
        if not self.settings.autostart:
            self.get_logger().info('autostart is off: waiting for lifecycle transitions (configure, activate)')
            return
        self._bring_up()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read and validate the parameters; create publishers, synchroniser, TF listener and worker."""
        settings = read_settings(self)
        problems = [f'{name}: {text}' for name, text in self._startup_problems.items()]
        try:
            validate_settings(settings)
        except SettingsError as exc:
            problems.append(str(exc))
        if problems:
            return self._fail('configure', 'invalid parameters: ' + '; '.join(problems), USED_BY_CONFIGURE)
        self.settings = settings
        out_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._objects_pub = self.create_lifecycle_publisher(
            ObjectMask3DArray, 'objects', out_qos, event_callbacks=self._publisher_events('objects'))
        self._cloud_pub = self.create_lifecycle_publisher(
            PointCloud2, 'annotated_points', out_qos, event_callbacks=self._publisher_events('annotated_points'))
        self._markers_pub = self.create_lifecycle_publisher(
            MarkerArray, 'markers', out_qos, event_callbacks=self._publisher_events('markers'))
        self._debug_pub = self.create_lifecycle_publisher(
            Image, 'debug_image', out_qos, event_callbacks=self._publisher_events('debug_image'))
        if vision_msgs_available():
            from vision_msgs.msg import Detection3DArray
            self._detections_pub = self.create_lifecycle_publisher(
                Detection3DArray, 'detections_3d', out_qos, event_callbacks=self._publisher_events('detections_3d'))
        self._markers = ObjectMarkers(namespace='vizion3d', lifetime_s=settings.marker_lifetime)
        self.stats.reset()
        self._sync = ApproximateSynchronizer(3, int(settings.sync_slop * 1e9), settings.sync_queue_size)
        buffer, self._tf_listener = make_tf_listener(self)
        self._frames = CloudToCamera(buffer)
        self._slot = LatestSlot()
        self._worker = threading.Thread(target=self._work, args=(self._slot,), name='vizion3d_worker', daemon=True)
        self._worker.start()
        self.get_logger().info('configured' + ('' if buffer is not None else
                                               ' (tf2_ros not installed: clouds in another frame than the '
                                               'image need cloud_to_camera)'))
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and warm up the model, then subscribe to the inputs."""
        s = self.settings
        try:
            pipeline, path = self._load_pipeline(s)
        except ActivationError as exc:
            return self._fail('activate', str(exc), USED_BY_ACTIVATE)
        self._pipeline, self._model_path = pipeline, path
        self.model_name, self.device = path.name, pipeline.backend.device
        self._class_names = pipeline.backend.class_names
        self._classes_applied = None
        self._reset_stream()
        # resolved names (remaps, namespace) without the leading '/': diagnostics keys 'input_rate_hz/ns/image'
        self._input_topics = tuple(self._topic_name(t).lstrip('/') for t in INPUTS)
        self._input_subs = [
            InputSubscription(self, msg_type, topic, lambda m, i=i: self._on_input(i, m), s.input_reliability,
                              stamp_of=lambda m: stamp_ns(m.header),
                              event_callbacks=lambda topic=topic: self._subscription_events(topic))
            for i, (msg_type, topic) in enumerate(zip((Image, CameraInfo, PointCloud2), INPUTS))]
        self._recent_stamps = [deque(maxlen=RECENT_STAMPS) for _ in INPUTS]
        self._last_synced = None
        self._watch.reset()
        # publishers come, go and change: follow their reliability (auto) and watch for silent inputs
        self._inputs_timer = self.create_timer(1.0, self._check_inputs)
        self._check_inputs()
        self.error, self._failed_transition = None, None
        self.get_logger().info(f'model {path} loaded on {self.device}; waiting for image, camera_info and '
                               f'points within {s.sync_slop:.3f} s of each other')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe, finish the frame in progress, release the model, clear the markers, stop publishing."""
        self._stop_processing()
        self._clear_markers()
        ret = super().on_deactivate(state)  # publishers off: nothing goes out after this
        self.get_logger().info('deactivated: model released, inputs unsubscribed')
        return ret

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker, destroy the publishers and the TF listener."""
        ret = super().on_cleanup(state)
        self._release_configured()
        self.get_logger().info('cleaned up')
        return ret

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free everything, from whichever state the node was in."""
        self.release()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: free everything and go back to unconfigured."""
        self.error = self.error or f'unexpected error while leaving state {state.label}'
        self.get_logger().error(f'lifecycle error from state {state.label}; releasing everything')
        self.release()
        return SUCCESS

    def release(self) -> None:
        """Free the model, subscriptions, worker and publishers (idempotent)."""
        self._stop_processing()
        self._clear_markers()
        self._release_configured()

    @property
    def state(self) -> str:
        """Current lifecycle state label: unconfigured, inactive, active, finalized, ..."""
        return self._state_machine.current_state[1]

    def _bring_up(self) -> None:
        if self.state == 'unconfigured' and self.trigger_configure() != SUCCESS:
            return
        if self.state == 'inactive':
            self.trigger_activate()

    def _fail(self, transition: str, reason: str, retry_on: frozenset[str]) -> TransitionCallbackReturn:
        self.error = f'{transition} failed: {reason}'
        self._failed_transition = transition
        self._retry_on = retry_on
        hint = ''
        if self.settings.autostart:
            hint = ' (autostart: setting one of the parameters it uses retries it)'
        self.get_logger().error(f'cannot {transition}: {reason}{hint}')
        return FAILURE

    def _load_pipeline(self, s: NodeSettings):
        """Resolve, load and warm up the model (runs inside the activate transition)."""
        try:
            path = resolve_model(s.model)
        except ModelUnavailableError as exc:
            raise ActivationError(f'no segmentation model: {exc}') from exc
        from ..core.segmentation.ultralytics_backend import UltralyticsBackend, release_model
        try:
            backend = UltralyticsBackend(path, device=s.device, imgsz=s.imgsz, conf_threshold=s.conf_threshold,
                                         iou_threshold=s.iou_threshold, cpu_threads=s.cpu_threads or None)
        except Exception as exc:  # noqa: BLE001 - corrupt checkpoints raise anything
            raise ActivationError(f'could not load model {str(path)!r}: {type(exc).__name__}: {exc}') from exc
        try:
            problem = check_value('classes', s.classes, backend.class_names)
            if problem:
                raise ActivationError(problem)
            backend.classes = parse_class_filter(s.classes, backend.class_names)
            if s.warmup:
                try:
                    backend.warmup()
                except Exception as exc:  # noqa: BLE001 - wrong device, broken export, ...
                    raise ActivationError(f'model {path.name} failed its warm-up inference on device '
                                          f'{backend.device!r}: {type(exc).__name__}: {exc}') from exc
        except ActivationError:
            device = backend.device
            del backend
            release_model(path, device)
            raise
        pipeline = FramePipeline(backend, lift_mode=s.lift_mode, min_points=s.min_points,
                                 lift_config=LiftConfig(edge_band=s.edge_band))
        return pipeline, path

    def _stop_processing(self) -> None:
        if self._inputs_timer is not None:
            self.destroy_timer(self._inputs_timer)
            self._inputs_timer = None
        for sub in self._input_subs:
            sub.destroy()
        self._input_subs = []
        self._watch.reset()
        if self._slot is not None and self._slot.take(timeout=0) is not None:
            self._count_drop('model_unavailable')
        with self._busy:  # waits for the frame in progress, if any
            pipeline, self._pipeline = self._pipeline, None
        self._class_names = None
        if pipeline is not None:
            from ..core.segmentation.ultralytics_backend import release_model
            pipeline.close()  # its inference thread
            del pipeline
            release_model(self._model_path, self.device)
            self.model_name = self.device = ''
        self._reset_stream()

    def _release_configured(self) -> None:
        if self._slot is not None:
            self._slot.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=5.0)
        for pub in (self._objects_pub, self._cloud_pub, self._markers_pub, self._debug_pub, self._detections_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._objects_pub = self._cloud_pub = self._markers_pub = self._debug_pub = self._detections_pub = None
        self._markers = self._marker_frame = None
        if self._tf_listener is not None and hasattr(self._tf_listener, 'unregister'):
            self._tf_listener.unregister()
        self._tf_listener = None
        self._frames = CloudToCamera()
        self._slot = self._worker = None
        with self._sync_lock:
            self._sync = None

    def _clear_markers(self) -> None:
        if self._markers_pub is None or self._markers is None or self._marker_frame is None:
            return
        header = Header(frame_id=self._marker_frame, stamp=self.get_clock().now().to_msg())
        self._marker_frame = None
        if self.context.ok():  # not after a signal shut rclpy down: the process is ending anyway
            self._markers_pub.publish(self._markers.clear(header))

    def _reset_stream(self) -> None:
        self._gate.reset()
        with self._sync_lock:
            if self._sync is not None:
                self._sync.clear()

    # ------------------------------------------------------------------ parameters
    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name in SPECS and p.type_ == Parameter.Type.NOT_SET:
                return SetParametersResult(successful=False, reason=f'{p.name} cannot be unset; set it to '
                                           'its default instead')
        problem = check_values({p.name: p.value for p in params if p.name in SPECS}, self._class_names)
        if problem is None and self._apply_when_validated:
            self._apply_parameters(params)
        return SetParametersResult(successful=problem is None, reason=problem or '')

    def _apply_parameters(self, params: list[Parameter]) -> None:
        values = {p.name: p.value for p in params if p.name in SPECS}
        if not values:
            return
        parsed = settings_from_values(values)
        self.settings = replace(self.settings, **{k: getattr(parsed, k) for k in values})
        for name in values:
            self._startup_problems.pop(name, None)
            self.get_logger().info(f'parameter {name} = {values[name]!r} ({SPECS[name].applies})')
        if 'diagnostics_period' in values:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = self.create_timer(self.settings.diagnostics_period, self._publish_diagnostics)
        if self._failed_transition and self.settings.autostart and self.state != 'active' \
                and set(values) & self._retry_on and self._retry_timer is None:
            # not from inside this callback: the parameter service must answer first
            self._retry_timer = self.create_timer(0.1, self._retry_bring_up)

    def _retry_bring_up(self) -> None:
        self.destroy_timer(self._retry_timer)
        self._retry_timer = None
        self.get_logger().info(f'retrying the failed {self._failed_transition} with the new parameters')
        self._bring_up()

    # ------------------------------------------------------------------ QoS events
    def _subscription_events(self, topic: str) -> SubscriptionEventCallbacks:
        return SubscriptionEventCallbacks(
            incompatible_qos=lambda e: self._on_incompatible_qos('subscription', topic, e))

    def _publisher_events(self, topic: str) -> PublisherEventCallbacks:
        return PublisherEventCallbacks(
            incompatible_qos=lambda e: self._on_incompatible_qos('publisher', topic, e))

    def _topic_name(self, topic: str) -> str:
        """Fully qualified (remapped) name of a relative topic."""
        if hasattr(self, 'resolve_topic_name'):
            return self.resolve_topic_name(topic)
        return f'{self.get_namespace().rstrip("/")}/{topic}'  # older rclpy: no remapping shown

    def _on_incompatible_qos(self, kind: str, topic: str, event) -> None:
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        name = self._topic_name(topic)
        if kind == 'subscription' and policy == 'RELIABILITY' and self.settings.input_reliability == 'auto':
            # a best-effort publisher appeared while this input is reliable: the next check switches it
            self.get_logger().info(f'{name}: a best-effort publisher appeared; input_reliability auto will '
                                   'subscribe best effort within a second')
            return
        self.qos_events[name] += max(int(event.total_count_change), 1)
        if kind == 'subscription':
            text = (f'incompatible QoS on subscription {name}: a publisher offers an incompatible {policy} '
                    'policy; no messages from it will arrive')
            if policy == 'RELIABILITY':
                text += ' (it publishes best effort while input_reliability is reliable)'
        else:
            text = (f'incompatible QoS on publisher {name}: a subscriber requests an incompatible {policy} '
                    'policy; it will receive nothing')
        self.get_logger().warning(f'{text} [{self.qos_events[name]} so far on this topic]')

    # ------------------------------------------------------------------ executor side (never blocks)
    def _on_input(self, index: int, msg) -> None:
        now = time.monotonic()
        self.stats.count_input(self._input_topics[index], now)
        stamp = stamp_ns(msg.header)
        self._recent_stamps[index].append(stamp)
        with self._sync_lock:
            if self._sync is None:
                return
            matched = self._sync.add(index, stamp, msg)
        if matched is not None and self._slot is not None:
            self._last_synced = now
            self._slot.put((*matched, now))

    def _check_inputs(self) -> None:
        """Every second while active: follow the publishers' reliability, and say why inputs stay silent."""
        for sub in self._input_subs:
            change = sub.refresh()
            if change:
                self.get_logger().info(change)
        if not self._input_subs:
            return
        states = [InputState(topic=sub.topic, policy=sub.policy, mode=sub.mode, offered=sub.offered,
                             matched=sub.matched_publishers(), last_message=sub.last_message,
                             last_stamp_ns=recent[-1] if recent else None, recent_stamps_ns=tuple(recent))
                  for sub, recent in zip(self._input_subs, self._recent_stamps)]
        with self._sync_lock:
            unmatched = self._sync.dropped if self._sync is not None else 0
        problems = self._watch.check(time.monotonic(), states, self._last_synced, unmatched,
                                     self.settings.sync_slop, self.settings.sync_queue_size)
        for problem in self._watch.new(problems):
            self.get_logger().warning(problem.text)

    # ------------------------------------------------------------------ worker thread
    def _work(self, slot: LatestSlot) -> None:
        while not slot.closed and self.context.ok():
            frame = slot.take(timeout=0.5)
            if frame is None:
                continue
            with self._busy:
                pipeline = self._pipeline
                if pipeline is None:
                    self._count_drop('model_unavailable')
                    continue
                try:
                    self._process(pipeline, *frame)
                except FrameRejectedError as exc:
                    self._reject(exc.reason, str(exc))
                except Exception as exc:  # noqa: BLE001 - a bad frame must never kill the node
                    self._reject('internal_error', f'{type(exc).__name__}: {exc}')

    def _process(self, pipeline: FramePipeline, image: Image, info: CameraInfo, cloud: PointCloud2,
                 synced_at: float) -> None:
        t0 = time.perf_counter()
        # wall-clock time of the synchronisation, for the per-frame debug line (a benchmark's transport split)
        synced_wall_ns = time.time_ns() - int((time.monotonic() - synced_at) * 1e9)
        waiting_ms = (time.monotonic() - synced_at) * 1e3
        s = self.settings  # one snapshot per frame: parameter changes apply from the next frame
        frame_ns = stamp_ns(cloud.header)
        last = self._gate.last_ns
        if self._gate.check(frame_ns, self.get_clock().now().nanoseconds, s.max_frame_age):
            self.get_logger().warning(
                f'stamps went back {(last - frame_ns) / 1e9:.1f} s (more than {REWIND_S:g} s): the source '
                'restarted or a recording plays again; processing its frames from here on')
        try:
            rgb = image_to_rgb(image)
        except MessageFormatError as exc:
            raise FrameRejectedError('bad_image', f'image: {exc}') from exc
        try:
            model = camera_model(info, rgb.shape[1], rgb.shape[0], s.intrinsics_source)
        except CameraInfoError as exc:
            raise FrameRejectedError(exc.reason, str(exc)) from exc
        if model.distortion_ignored:
            self._warn_once('distortion', 'camera_info has non-zero distortion and K is used: the node does not '
                            'undistort, so feed a rectified image with intrinsics_source:=P, or accept the error')
        try:
            cloud_arrays = pointcloud2_to_arrays(cloud)
        except MessageFormatError as exc:
            raise FrameRejectedError('bad_cloud', f'points: {exc}') from exc
        xyz = cloud_arrays.xyz
        self._apply_runtime_settings(pipeline, s)
        t1 = time.perf_counter()
        # the model runs on the pipeline's thread while this one looks up the TF, moves the cloud into
        # the camera and projects it; leaving the block waits for the model whatever happened
        with pipeline.start(rgb, model.intrinsics) as frame:
            transform = self._frames.resolve(image.header.frame_id, cloud.header.frame_id, cloud.header.stamp,
                                             self._cloud_to_camera(s), s.tf_timeout)
            result = frame.finish(cloud_to_camera_gl(xyz, transform), stats_points=xyz)
        t2 = time.perf_counter()
        sending = self._send_outputs(result, rgb, image, cloud, cloud_arrays, model.intrinsics, s)
        self._gate.accept(frame_ns)
        t3 = time.perf_counter()
        now = time.monotonic()
        self.stats.count_output(now)
        timings = {'conversion': (t1 - t0) * 1e3, 'inference': result.timings_ms['inference'],
                   'alongside': result.timings_ms['alongside'],
                   'lifting': result.timings_ms['lifting'], 'geometry': result.timings_ms['geometry'],
                   'publishing': (t3 - t2) * 1e3,
                   'end_to_end': (now - synced_at) * 1e3}
        for stage, ms in timings.items():
            self.stats.add_latency(stage, ms)
        if self._debug_enabled:
            # one line per frame, parsed by bench/bench_node.py: wall-clock times tie it to the sender's stamp
            self.get_logger().debug(
                f'frame {frame_ns}: {len(result.objects)} objects; synced {synced_wall_ns} ns, published '
                f'{time.time_ns()} ns; waiting {waiting_ms:.2f} ms, '
                + ', '.join(f'{stage} {ms:.2f} ms' for stage, ms in timings.items())
                + f', publish_calls {sending:.2f} ms')

    def _send_outputs(self, result, rgb, image: Image, cloud: PointCloud2, cloud_arrays, intrinsics,
                      s: NodeSettings) -> float:
        """Build and publish every output of one frame; returns the ms spent inside ``publish`` calls."""
        sending = 0.0

        def send(pub, out) -> None:
            nonlocal sending
            t = time.perf_counter()
            pub.publish(out)
            sending += (time.perf_counter() - t) * 1e3

        msg = objects_to_array_msg(
            result.objects, cloud.header, image.header, cloud_arrays.width, cloud_arrays.height,
            intrinsics.width, intrinsics.height, self.model_name,
            xyz=cloud_arrays.xyz if s.publish_object_clouds else None, rgb=cloud_arrays.rgb)
        send(self._objects_pub, msg)
        # the other outputs (a 5 MB cloud for a VGA frame, markers, images) are for eyes and other tools:
        # built only while somebody subscribes (volatile topics: a later subscriber gets the next frame)
        if s.publish_annotated_cloud and _listened(self._cloud_pub):
            # painted into the received cloud itself: nothing reads its colours after this (the objects
            # message, built above, holds copies), and the synchroniser never hands a cloud out twice
            send(self._cloud_pub, annotated_cloud(cloud, cloud_arrays, [o.point_indices for o in result.objects],
                                                  in_place=True))
        if _listened(self._markers_pub):
            self._markers.lifetime_s = s.marker_lifetime
            send(self._markers_pub, self._markers.update(msg))
            self._marker_frame = msg.header.frame_id
        if self._detections_pub is not None and _listened(self._detections_pub):
            send(self._detections_pub, to_detection3d_array(msg))
        if s.publish_debug_image and _listened(self._debug_pub):
            send(self._debug_pub, rgb_to_image(render_overlay(rgb, result.objects), image.header))
        return sending

    @property
    def _debug_enabled(self) -> bool:
        return self.get_logger().is_enabled_for(LoggingSeverity.DEBUG)

    def _cloud_to_camera(self, s: NodeSettings):
        # parsed once per value (validated when set); the cache key is the value's text
        key = repr(s.cloud_to_camera)
        if self._extrinsic[0] != key:
            self._extrinsic = (key, parse_extrinsic(s.cloud_to_camera))
        return self._extrinsic[1]

    def _apply_runtime_settings(self, pipeline: FramePipeline, s: NodeSettings) -> None:
        """Push the frame-time parameters into the pipeline (worker thread only, between frames)."""
        backend = pipeline.backend
        backend.conf_threshold, backend.iou_threshold = s.conf_threshold, s.iou_threshold
        if s.classes != self._classes_applied:
            backend.classes = parse_class_filter(s.classes, backend.class_names)
            self._classes_applied = s.classes
        pipeline.lift_mode, pipeline.min_points = s.lift_mode, s.min_points
        if pipeline.lift_config.edge_band != s.edge_band:
            pipeline.lift_config = replace(pipeline.lift_config, edge_band=s.edge_band)

    # ------------------------------------------------------------------ drops and stats
    def _count_drop(self, reason: str, n: int = 1) -> None:
        self.stats.count_drop(reason, n)

    def _reject(self, reason: str, message: str) -> None:
        # Counted always; logged at most once per `log_interval_s` *per reason*, so a flood of one
        # kind of bad input cannot hide another (rclpy's throttling is per call site, not per reason).
        self._count_drop(reason)
        if self._due(reason):
            count = self.stats.drops.get(reason, 0)
            self.get_logger().error(f'frame dropped ({reason}, {count} so far): {message}')

    def _warn_once(self, key: str, message: str) -> None:
        if self._due(key, interval=60.0):
            self.get_logger().warning(message)

    def _due(self, key: str, interval: float | None = None) -> bool:
        now = time.monotonic()
        if now - self._last_logged.get(key, -1e9) >= (interval or self.log_interval_s):
            self._last_logged[key] = now
            return True
        return False

    def _sync_drop_counters(self) -> None:
        # the mailbox and the synchroniser count their own drops; copy their totals in
        if self._slot is not None:
            self.stats.set_drops('superseded', self._slot.replaced)
        if self._sync is not None:
            self.stats.set_drops('unmatched', self._sync.dropped)

    def _log_stats(self) -> None:
        self._sync_drop_counters()
        now = time.monotonic()
        items = [('frames_processed', self.stats.frames_processed)]
        items += [(f'{k}_hz', f'{v:.2f}') for k, v in sorted(self.stats.rates(now).items())]
        items += [(f'dropped/{k}', v) for k, v in sorted(self.stats.drops.items())]
        items.append(('incompatible_qos', sum(self.qos_events.values())))
        self.get_logger().info(f'stats ({self.state}): ' + ', '.join(f'{k}={v}' for k, v in items))

    def _publish_diagnostics(self) -> None:
        self._sync_drop_counters()
        extra = [(f'input_qos/{sub.topic.lstrip("/")}', sub.describe()) for sub in self._input_subs]
        problems = self._watch.current
        extra += [(f'input_problem/{(p.topic or "sync").lstrip("/")}', p.text) for p in problems]
        extra += [(f'incompatible_qos/{topic.lstrip("/")}', str(n)) for topic, n in sorted(self.qos_events.items())]
        arr = to_diagnostic_array(self.stats, time.monotonic(), self.get_clock().now().to_msg(),
                                  self.get_fully_qualified_name(), self.state, self.model_name or '(none loaded)',
                                  self.device or self.settings.device, error=self.error,
                                  input_problems=[p.text for p in problems], extra_values=extra)
        self._diag_pub.publish(arr)

    def destroy_node(self) -> None:
        """Release everything before the node's handles go away."""
        self.release()
        super().destroy_node()


def _listened(pub) -> bool:
    return pub.get_subscription_count() > 0


def _profile_hint() -> str:
    """Where the shipped large-data Fast DDS profile is, for the input watch's advice."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory('vizion3d_ros'), 'config', 'fastdds_large_data.xml')
    except Exception:  # noqa: BLE001 - not installed through colcon (PackageNotFoundError, ...)
        return 'config/fastdds_large_data.xml (in the vizion3d_ros package)'


def main(args: list[str] | None = None, hard_exit: bool = False) -> int:
    """Console entry point: run the node until SIGINT/SIGTERM (:func:`.shutdown.run_until_stopped`)."""
    def make() -> Vizion3DNode:
        node = Vizion3DNode()
        node.start()
        return node

    return run_until_stopped('vizion3d_node', make, args, hard_exit)


if __name__ == '__main__':
    raise SystemExit(main())
