"""Which transform takes a frame's cloud into the camera's optical frame.

Order: same frame (or an unnamed one) -> none needed; the ``cloud_to_camera`` parameter -> used as is
(it overrides TF); tf2_ros installed -> TF lookup at the cloud's stamp, waiting at most ``tf_timeout``
(the node calls this from its worker thread, so the wait never blocks the executor); otherwise the
frame is rejected as ``frame_mismatch``. tf2_ros is optional: this package must run without it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..core.camera.transforms import pose_matrix
from .drops import FrameRejectedError


def tf2_available() -> bool:
    """True when tf2_ros can be imported (a full ROS install; not the PyPI wheels)."""
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return False
    return True


def make_tf_listener(node) -> tuple[Any, Any] | tuple[None, None]:
    """``(buffer, listener)`` on ``node`` when tf2_ros is installed, else ``(None, None)``."""
    try:
        import tf2_ros
    except ImportError:
        return None, None
    buffer = tf2_ros.Buffer()
    return buffer, tf2_ros.TransformListener(buffer, node)


def transform_to_matrix(transform) -> np.ndarray:
    """4x4 of a geometry_msgs/Transform (TF's ``target <- source``)."""
    t, q = transform.translation, transform.rotation
    return pose_matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))


def _norm(frame: str) -> str:
    return frame.lstrip('/')


class CloudToCamera:
    """Resolves the camera <- cloud transform of each frame (see the module docstring for the order)."""

    def __init__(self, tf_buffer=None) -> None:
        self.tf_buffer = tf_buffer

    def resolve(self, camera_frame: str, cloud_frame: str, stamp, extrinsic: np.ndarray | None,
                timeout_s: float) -> np.ndarray | None:
        """4x4 camera <- cloud, or None when the cloud is already in the camera frame.

        ``stamp`` is the cloud's ``builtin_interfaces/Time``. Raises :class:`FrameRejectedError`
        (``frame_mismatch`` or ``tf_unavailable``).
        """
        camera_frame, cloud_frame = _norm(camera_frame), _norm(cloud_frame)
        if not camera_frame or not cloud_frame or camera_frame == cloud_frame:
            return None
        if extrinsic is not None:
            return extrinsic
        if self.tf_buffer is None:
            raise FrameRejectedError(
                'frame_mismatch', f'cloud frame {cloud_frame!r} differs from camera frame {camera_frame!r} and '
                'tf2_ros is not installed: set cloud_to_camera (x y z qx qy qz qw of the cloud frame in the '
                'camera optical frame) or publish the cloud in the camera optical frame')
        from rclpy.duration import Duration
        from rclpy.time import Time
        try:
            tf = self.tf_buffer.lookup_transform(camera_frame, cloud_frame, Time.from_msg(stamp),
                                                 timeout=Duration(nanoseconds=int(timeout_s * 1e9)))
        except Exception as exc:  # noqa: BLE001 - tf2 raises LookupException, ExtrapolationException, ...
            raise FrameRejectedError(
                'tf_unavailable', f'no TF from {cloud_frame!r} to {camera_frame!r} at the cloud\'s stamp '
                f'{stamp.sec}.{stamp.nanosec:09d} within {timeout_s:g} s ({type(exc).__name__}: {exc}); '
                'publish that transform or set cloud_to_camera') from exc
        return transform_to_matrix(tf.transform)
