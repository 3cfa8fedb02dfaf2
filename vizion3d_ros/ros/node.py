"""vizion3d_node: segments the camera image and lifts each instance onto the synchronised cloud.

Inputs (remappable): ``image`` (sensor_msgs/Image), ``camera_info`` (sensor_msgs/CameraInfo),
``points`` (sensor_msgs/PointCloud2, in the camera's optical frame). Outputs: ``objects``
(vizion3d_ros/ObjectMask3DArray) and ``annotated_points`` (PointCloud2, input cloud recoloured by
object). Subscription callbacks only pair messages and drop them into a one-slot mailbox; a worker
thread runs the model on the newest frame, so the executor never blocks and latency never grows.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from vizion3d_ros.msg import ObjectMask3DArray

from ..core.colors import recolor
from ..core.frames import optical_to_gl
from ..core.lifting import LiftConfig
from ..core.models import ModelUnavailableError, resolve_model
from ..core.pipeline import FramePipeline
from ..core.segmentation.base import parse_class_filter
from .conversions import (
    MessageFormatError,
    camera_info_to_intrinsics,
    image_to_rgb,
    pointcloud2_to_arrays,
    xyzrgb_to_pointcloud2,
)
from .latest import LatestSlot
from .messages import objects_to_array_msg
from .params import NodeSettings, declare_parameters, read_settings
from .sync import ApproximateSynchronizer


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class FrameRejectedError(Exception):
    """A frame that cannot be processed; ``reason`` is a short counter key."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Vizion3DNode(Node):
    """The ROS face of :class:`~vizion3d_ros.core.pipeline.FramePipeline`."""

    def __init__(self, **kwargs) -> None:
        super().__init__('vizion3d_node', **kwargs)
        declare_parameters(self)
        self.settings: NodeSettings = read_settings(self)
        self.stats: Counter[str] = Counter()
        self.pipeline: FramePipeline | None = None
        self.model_name = ''
        self.model_error: str | None = None
        self._slot: LatestSlot[tuple] = LatestSlot()
        self._sync = ApproximateSynchronizer(3, int(self.settings.sync_slop * 1e9), self.settings.sync_queue_size)
        self._sync_lock = threading.Lock()
        self._last_logged: dict[str, float] = {}
        self.log_interval_s = 5.0

        in_qos = qos_profile_sensor_data
        if self.settings.input_reliability == 'reliable':
            in_qos = QoSProfile(depth=qos_profile_sensor_data.depth, reliability=ReliabilityPolicy.RELIABLE)
        out_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.objects_pub = self.create_publisher(ObjectMask3DArray, 'objects', out_qos)
        self.cloud_pub = self.create_publisher(PointCloud2, 'annotated_points', out_qos)
        self.create_subscription(Image, 'image', lambda m: self._on_input(0, m), in_qos)
        self.create_subscription(CameraInfo, 'camera_info', lambda m: self._on_input(1, m), in_qos)
        self.create_subscription(PointCloud2, 'points', lambda m: self._on_input(2, m), in_qos)
        self.create_timer(30.0, self._log_stats)

        self._worker = threading.Thread(target=self._work, name='vizion3d_worker', daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ executor side (never blocks)
    def _on_input(self, index: int, msg) -> None:
        self.stats[('received_image', 'received_camera_info', 'received_points')[index]] += 1
        with self._sync_lock:
            matched = self._sync.add(index, _stamp_ns(msg.header), msg)
        if matched is not None:
            self.stats['frames_synchronized'] += 1
            self._slot.put(matched)

    # ------------------------------------------------------------------ worker thread
    def _work(self) -> None:
        self._load_model()
        while rclpy.ok() and not self._slot.closed:
            frame = self._slot.take(timeout=0.5)
            if frame is None:
                continue
            try:
                self._process(*frame)
            except FrameRejectedError as exc:
                self._reject(exc.reason, str(exc))
            except Exception as exc:  # noqa: BLE001 - a bad frame must never kill the node
                self._reject('internal_error', f'{type(exc).__name__}: {exc}')

    def _load_model(self) -> None:
        s = self.settings
        try:
            path = resolve_model(s.model)
            from ..core.segmentation.ultralytics_backend import UltralyticsBackend
            backend = UltralyticsBackend(path, device=s.device, imgsz=s.imgsz, conf_threshold=s.conf_threshold,
                                         iou_threshold=s.iou_threshold, cpu_threads=s.cpu_threads or None)
            backend.classes = parse_class_filter(s.classes, backend.class_names)
            if s.warmup:
                backend.warmup()
        except ModelUnavailableError as exc:
            self.model_error = str(exc)
            self.get_logger().error(f'no segmentation model: {exc}')
            return
        except Exception as exc:  # noqa: BLE001 - corrupt checkpoints raise anything
            self.model_error = f'could not load model {s.model!r}: {type(exc).__name__}: {exc}'
            self.get_logger().error(self.model_error)
            return
        self.model_name = path.name
        self.pipeline = FramePipeline(backend, lift_mode=s.lift_mode, min_points=s.min_points,
                                      lift_config=LiftConfig(edge_band=s.edge_band))
        self.get_logger().info(f'model {path} loaded on {backend.device}; waiting for image, camera_info '
                               f'and points within {s.sync_slop:.3f} s of each other')

    def _process(self, image: Image, info: CameraInfo, cloud: PointCloud2) -> None:
        t0 = time.perf_counter()
        if self.pipeline is None:
            raise FrameRejectedError('model_unavailable', self.model_error or 'model not loaded yet')
        if self.settings.require_same_frame and image.header.frame_id and cloud.header.frame_id \
                and image.header.frame_id != cloud.header.frame_id:
            raise FrameRejectedError('frame_mismatch', f'cloud frame {cloud.header.frame_id!r} differs from camera '
                                f'frame {image.header.frame_id!r}; publish the cloud in the camera optical '
                                'frame (TF support comes later) or set require_same_frame:=false')
        try:
            rgb = image_to_rgb(image)
        except MessageFormatError as exc:
            raise FrameRejectedError('bad_image', f'image: {exc}') from exc
        try:
            cam = camera_info_to_intrinsics(info, rgb.shape[1], rgb.shape[0])
        except MessageFormatError as exc:
            raise FrameRejectedError('bad_camera_info', str(exc)) from exc
        try:
            cloud_arrays = pointcloud2_to_arrays(cloud)
        except MessageFormatError as exc:
            raise FrameRejectedError('bad_cloud', f'points: {exc}') from exc
        xyz = cloud_arrays.xyz
        t1 = time.perf_counter()
        result = self.pipeline.process(rgb, cam, optical_to_gl(xyz), stats_points=xyz)
        t2 = time.perf_counter()
        msg = objects_to_array_msg(
            result.objects, cloud.header, image.header, cloud_arrays.width, cloud_arrays.height,
            cam.width, cam.height, self.model_name,
            xyz=xyz if self.settings.publish_object_clouds else None, rgb=cloud_arrays.rgb)
        self.objects_pub.publish(msg)
        if self.settings.publish_annotated_cloud:
            base = cloud_arrays.rgb if cloud_arrays.rgb is not None else _gray(len(xyz))
            colors = recolor(base, [o.point_indices for o in result.objects])
            self.cloud_pub.publish(xyzrgb_to_pointcloud2(xyz, colors, cloud.header, cloud_arrays.width,
                                                         cloud_arrays.height))
        t3 = time.perf_counter()
        self.stats['frames_processed'] += 1
        self.get_logger().debug(
            f'{len(result.objects)} objects; conversion {(t1 - t0) * 1e3:.1f} ms, inference '
            f'{result.timings_ms["inference"]:.1f} ms, lifting {result.timings_ms["lifting"]:.1f} ms, '
            f'publishing {(t3 - t2) * 1e3:.1f} ms')

    def _reject(self, reason: str, message: str) -> None:
        # Counted always; logged at most once per `log_interval_s` *per reason*, so a flood of one
        # kind of bad input cannot hide another (rclpy's throttling is per call site, not per reason).
        self.stats[f'dropped_{reason}'] += 1
        now = time.monotonic()
        if now - self._last_logged.get(reason, -1e9) >= self.log_interval_s:
            self._last_logged[reason] = now
            count = self.stats[f'dropped_{reason}']
            self.get_logger().error(f'frame dropped ({reason}, {count} so far): {message}')

    def _log_stats(self) -> None:
        stats = dict(self.stats)
        stats['dropped_superseded'] = self._slot.replaced
        stats['dropped_unmatched'] = self._sync.dropped
        self.get_logger().info('stats: ' + ', '.join(f'{k}={v}' for k, v in sorted(stats.items())))

    def destroy_node(self) -> None:
        """Stop the worker before the node's handles go away."""
        self._slot.close()
        self._worker.join(timeout=5.0)
        super().destroy_node()


def _gray(n: int):
    import numpy as np
    return np.full((n, 3), 200, np.uint8)


def main(args: list[str] | None = None, hard_exit: bool = False) -> int:
    """Console entry point: run the node until SIGINT/SIGTERM.

    ``hard_exit`` (the installed executable sets it) ends the process with ``os._exit`` once the node
    and rclpy are shut down: third-party threads (torch, DDS) occasionally stalled interpreter teardown
    for ~20 s after a clean shutdown, which launch and systemd would then escalate to SIGKILL.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = Vizion3DNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        watchdog = threading.Timer(10.0, _give_up_cleanup)
        watchdog.daemon = True
        watchdog.start()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        watchdog.cancel()
    if hard_exit:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _give_up_cleanup() -> None:
    print('vizion3d_node: shutdown did not finish within 10 s; exiting anyway', file=sys.stderr, flush=True)
    os._exit(1)


if __name__ == '__main__':
    raise SystemExit(main())
