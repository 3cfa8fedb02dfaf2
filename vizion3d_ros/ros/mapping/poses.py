"""Places a frame in the world: the pose world_frame <- cloud frame at the frame's stamp, without waiting.

Two sources. ``tf``: a tf2_ros buffer (filled by the node's TF listener on the same single-threaded
executor, so a lookup must never block there: :meth:`FramePoser.resolve` answers at once, ``wait`` when
TF has not caught up yet, and the caller retries until its own timeout). ``topic``: a
:class:`~vizion3d_ros.core.camera.poses.PoseHistory` of the ``pose`` (PoseStamped) / ``odom``
(Odometry) messages, interpolated to the stamp, then composed with the static ``cloud_to_pose``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...core.camera.poses import PoseHistory
from ...core.camera.transforms import RIGID_TOLERANCE, pose_matrix
from ..stamps import stamp_ns


@dataclass(frozen=True)
class PoseAnswer:
    """``status`` ``ok`` (``pose`` set), ``wait`` (may still come) or ``drop`` (``reason`` says why)."""

    status: str
    pose: np.ndarray | None = None
    reason: str = ''
    message: str = ''


class BadPoseError(ValueError):
    """A pose message or transform that cannot be a rigid pose (NaN, not a rotation, wrong frame)."""


def rigid_matrix(translation, rotation) -> np.ndarray:
    """4x4 of a geometry_msgs translation/position and quaternion; :class:`BadPoseError` unless finite and rigid."""
    t, q = translation, rotation
    values = (t.x, t.y, t.z, q.x, q.y, q.z, q.w)
    if not all(math.isfinite(v) for v in values):
        raise BadPoseError(f'pose holds non-finite values {values}')
    norm = math.sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w)
    if abs(norm - 1.0) > RIGID_TOLERANCE:
        raise BadPoseError(f'rotation quaternion has norm {norm:.6f}, not 1 (not a rotation)')
    return pose_matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))


class FramePoser:
    """Answers "where was the cloud frame at this stamp" from TF or from the pose topic (see the module doc)."""

    def __init__(self, world_frame: str, source: str, tf_buffer=None, history: PoseHistory | None = None,
                 cloud_to_pose: np.ndarray | None = None) -> None:
        if source not in ('tf', 'topic'):
            raise ValueError(f"source must be 'tf' or 'topic', got {source!r}")
        self.world_frame = world_frame
        self.source = source
        self.tf_buffer = tf_buffer
        self.history = history if history is not None else (PoseHistory() if source == 'topic' else None)
        self.cloud_to_pose = cloud_to_pose
        self.drop_reason = 'no_transform' if source == 'tf' else 'no_pose'

    # ------------------------------------------------------------------ pose topic input
    def add_pose_message(self, msg) -> str | None:
        """Store a PoseStamped or an Odometry; a one-line reason when it is refused (None when stored)."""
        frame = msg.header.frame_id.lstrip('/')
        if frame != self.world_frame:
            return f'pose in frame {frame!r}, expected world_frame {self.world_frame!r}'
        pose = msg.pose.pose if hasattr(msg, 'twist') else msg.pose  # Odometry's is a PoseWithCovariance
        p, q = pose.position, pose.orientation
        return self.history.add(stamp_ns(msg.header), (p.x, p.y, p.z), (q.x, q.y, q.z, q.w))

    # ------------------------------------------------------------------ lookups
    def resolve(self, frame_id: str, stamp: int) -> PoseAnswer:
        """The pose world <- ``frame_id`` at ``stamp`` (ns), now: ok, wait or drop."""
        frame_id = frame_id.lstrip('/')
        if self.source == 'topic':
            return self._from_topic(stamp)
        if frame_id == self.world_frame:
            return PoseAnswer('ok', np.eye(4))
        if self.tf_buffer is None:
            return PoseAnswer('drop', reason='no_transform', message='tf2_ros is not installed (pose_source tf)')
        from rclpy.time import Time
        when = Time(nanoseconds=stamp)
        try:
            if not self.tf_buffer.can_transform(self.world_frame, frame_id, when):
                return PoseAnswer('wait', message=f'no TF {self.world_frame!r} <- {frame_id!r} at '
                                  f'{stamp / 1e9:.3f} yet')
            tf = self.tf_buffer.lookup_transform(self.world_frame, frame_id, when).transform
        except Exception as exc:  # noqa: BLE001 - tf2 raises LookupException, ExtrapolationException, ...
            return PoseAnswer('drop', reason='no_transform', message=f'{type(exc).__name__}: {exc}')
        try:
            return PoseAnswer('ok', rigid_matrix(tf.translation, tf.rotation))
        except BadPoseError as exc:
            return PoseAnswer('drop', reason='bad_transform', message=f'TF {self.world_frame} <- {frame_id}: {exc}')

    def _from_topic(self, stamp: int) -> PoseAnswer:
        found = self.history.lookup(stamp)
        if found.status == 'ok':
            pose = found.pose if self.cloud_to_pose is None else found.pose @ self.cloud_to_pose
            return PoseAnswer('ok', pose)
        if found.status in ('wait', 'empty'):
            return PoseAnswer('wait', message=found.message)
        return PoseAnswer('drop', reason='no_pose', message=found.message)

    def clear(self) -> None:
        """Forget the poses of the topic (a time jump, a deactivation)."""
        if self.history is not None:
            self.history.clear()
