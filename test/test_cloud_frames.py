"""Choosing the camera <- cloud transform: same frame, extrinsic, TF (a real tf2_ros.Buffer), or rejection.

The buffer is the real one, filled with ``set_transform`` as the node's TransformListener fills it; the node
over DDS with transforms from other processes is test_node_tf_vision.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import TransformStamped

from vizion3d_ros.core.camera.transforms import parse_extrinsic
from vizion3d_ros.ros.cloud_frames import CloudToCamera, tf2_available, transform_to_matrix
from vizion3d_ros.ros.drops import FrameRejectedError

from ros_tools import require_ros_tools

STAMP = Time(sec=12, nanosec=5)
POSE = (0.5, -0.25, 0.125, 0.5, -0.5, 0.5, 0.5)  # camera <- lidar: x y z qx qy qz qw
EXTRINSIC = parse_extrinsic(' '.join(map(str, POSE)))


def _stamped(parent: str, child: str, stamp: Time, pose=POSE) -> TransformStamped:
    t = TransformStamped()
    t.header.frame_id, t.child_frame_id, t.header.stamp = parent, child, stamp
    v, q = t.transform.translation, t.transform.rotation
    v.x, v.y, v.z, q.x, q.y, q.z, q.w = map(float, pose)
    return t


@pytest.fixture
def buffer():
    require_ros_tools('tf2_ros')
    import tf2_ros
    return tf2_ros.Buffer()


def test_same_or_unnamed_frames_need_no_transform(buffer):
    r = CloudToCamera(buffer)  # an empty buffer: a lookup would fail
    assert r.resolve('cam', 'cam', STAMP, EXTRINSIC, 0.1) is None
    assert r.resolve('/cam', 'cam', STAMP, None, 0.1) is None
    assert r.resolve('', 'lidar', STAMP, None, 0.1) is None


def test_the_extrinsic_overrides_tf(buffer):
    buffer.set_transform(_stamped('cam', 'lidar', STAMP, (9, 9, 9, 0, 0, 0, 1)), 'test')
    assert CloudToCamera(buffer).resolve('cam', 'lidar', STAMP, EXTRINSIC, 0.1) is EXTRINSIC


def test_tf_is_looked_up_at_the_cloud_stamp(buffer):
    # the right pose at the stamp, others a second before and after: only a lookup at the stamp gives it
    for sec, x in ((11, 7.0), (12, POSE[0]), (13, -7.0)):
        buffer.set_transform(_stamped('cam', 'lidar', Time(sec=sec, nanosec=5), (x, *POSE[1:])), 'test')
    t = CloudToCamera(buffer).resolve('cam', 'lidar', STAMP, None, 0.25)
    np.testing.assert_allclose(t, EXTRINSIC, atol=1e-12)
    # a static transform (a sensor mount) holds at every stamp, and chains with others
    buffer.set_transform_static(_stamped('lidar', 'radar', Time(), (0, 0, 1, 0, 0, 0, 1)), 'test')
    chained = CloudToCamera(buffer).resolve('cam', 'radar', STAMP, None, 0.25)
    np.testing.assert_allclose(chained, EXTRINSIC @ parse_extrinsic('0 0 1 0 0 0 1'), atol=1e-12)


def test_failed_lookups_and_missing_tf2_are_rejected(buffer):
    with pytest.raises(FrameRejectedError, match=r"no TF from 'lidar' to 'cam' .* 12.000000005 within 0.1 s "
                                                 r'\(\w+Exception: ') as exc:
        CloudToCamera(buffer).resolve('cam', 'lidar', STAMP, None, 0.1)
    assert exc.value.reason == 'tf_unavailable'
    # known frames, but not at this stamp (the buffer holds later data only): extrapolation is refused
    buffer.set_transform(_stamped('cam', 'lidar', Time(sec=20)), 'test')
    buffer.set_transform(_stamped('cam', 'lidar', Time(sec=21)), 'test')
    with pytest.raises(FrameRejectedError, match='ExtrapolationException') as exc:
        CloudToCamera(buffer).resolve('cam', 'lidar', STAMP, None, 0.0)
    assert exc.value.reason == 'tf_unavailable'
    with pytest.raises(FrameRejectedError, match='tf2_ros is not installed: set cloud_to_camera') as exc:
        CloudToCamera(None).resolve('cam', 'lidar', STAMP, None, 0.1)
    assert exc.value.reason == 'frame_mismatch'


def test_transform_to_matrix_and_tf2_detection():
    t = transform_to_matrix(_stamped('a', 'b', STAMP, (1, 2, 3, 0, 0, 0, 1)).transform)
    expected = np.eye(4)
    expected[:3, 3] = [1, 2, 3]
    np.testing.assert_array_equal(t, expected)
    import importlib.util
    assert tf2_available() is (importlib.util.find_spec('tf2_ros') is not None)
