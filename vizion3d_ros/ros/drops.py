"""Why a frame was dropped: stable keys shared by the log, the stats line and /diagnostics.

Tools and tests match on these keys (``frame dropped (<key>, ...)`` in the log, ``dropped/<key>`` in
/diagnostics), so they never change meaning; new reasons get new keys.
"""
from __future__ import annotations

#: Every drop reason the node reports, with what it means.
DROP_REASONS: dict[str, str] = {
    'bad_image': 'the image cannot be read (encoding, size, step or data length)',
    'bad_camera_info': 'CameraInfo has no usable intrinsics (zero, NaN or inf focal length or principal '
                       'point, wrong K/P size, ROI outside the sensor)',
    'camera_info_size_mismatch': 'the image is not the size CameraInfo describes (after binning and ROI)',
    'bad_cloud': 'the point cloud cannot be read (fields, types, steps or data length)',
    'frame_mismatch': "the cloud's frame differs from the image's and neither cloud_to_camera nor TF "
                      '(tf2_ros) is available',
    'tf_unavailable': 'no cloud->camera transform in TF at the cloud\'s stamp within tf_timeout',
    'out_of_order': 'the frame is older than the last processed frame (by up to 5 s; further back is a restarted '
                    'source, which the node follows)',
    'stale': 'the frame is older than max_frame_age against the node\'s clock',
    'model_unavailable': 'no model is loaded (the node is not active)',
    'inactive': 'the frame was waiting when the node was deactivated',
    'superseded': 'a newer frame replaced it in the newest-frame mailbox before the worker took it',
    'unmatched': 'the synchroniser dropped the message without a matching image/camera_info/cloud',
    'internal_error': 'an unexpected exception while processing the frame (a bug: please report it)',
}

#: vizion3d_map_node's drop reasons (frames, and pose messages), with what they mean.
MAP_DROP_REASONS = {
    'unpaired': 'an objects message or a cloud without its partner (same stamp) was pushed out of the buffer',
    'out_of_order': 'the frame is older than the newest integrated one (by less than 5 s: a late frame)',
    'no_transform': 'no world <- cloud frame transform in TF at the frame stamp within tf_timeout',
    'no_pose': 'no pose on the pose topic around the frame stamp within tf_timeout (or a gap in the poses)',
    'bad_transform': 'the TF transform holds NaN/inf or is not rigid',
    'bad_pose': 'a pose/odom message with NaN/inf, a quaternion that is not a rotation, the wrong frame, '
                'or older than the poses kept',
    'bad_cloud': 'the point cloud cannot be read',
    'bad_objects': 'the objects do not fit the cloud (indices past its size, size mismatch, duplicate ids)',
    'superseded': 'a newer frame replaced it in the mailbox before the worker took it',
    'internal_error': 'an unexpected exception while integrating the frame (a bug: please report it)',
}


class FrameRejectedError(Exception):
    """A frame that cannot be processed; ``reason`` is one of :data:`DROP_REASONS` (or :data:`MAP_DROP_REASONS`)."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in DROP_REASONS and reason not in MAP_DROP_REASONS:
            raise ValueError(f'unknown drop reason {reason!r}')
        super().__init__(message)
        self.reason = reason
