"""Choosing the camera <- cloud transform: same frame, extrinsic, TF (a stand-in buffer), or rejection."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from builtin_interfaces.msg import Time

from vizion3d_ros.core.transforms import parse_extrinsic
from vizion3d_ros.ros.cloud_frames import CloudToCamera, tf2_available, transform_to_matrix
from vizion3d_ros.ros.drops import FrameRejectedError

STAMP = Time(sec=12, nanosec=5)
EXTRINSIC = parse_extrinsic('0.5 -0.25 0.125 0.5 -0.5 0.5 0.5')


class FakeBuffer:
    """tf2_ros.Buffer's lookup_transform, recording its calls."""

    def __init__(self, transform=None, error: Exception | None = None) -> None:
        self.transform, self.error, self.calls = transform, error, []

    def lookup_transform(self, target, source, time, timeout):
        self.calls.append((target, source, time.nanoseconds, timeout.nanoseconds))
        if self.error:
            raise self.error
        return SimpleNamespace(transform=self.transform)


def _tf(x, y, z, qx, qy, qz, qw):
    return SimpleNamespace(translation=SimpleNamespace(x=x, y=y, z=z),
                           rotation=SimpleNamespace(x=qx, y=qy, z=qz, w=qw))


def test_same_or_unnamed_frames_need_no_transform():
    r = CloudToCamera(FakeBuffer(error=AssertionError('no lookup expected')))
    assert r.resolve('cam', 'cam', STAMP, EXTRINSIC, 0.1) is None
    assert r.resolve('/cam', 'cam', STAMP, None, 0.1) is None
    assert r.resolve('', 'lidar', STAMP, None, 0.1) is None


def test_the_extrinsic_overrides_tf():
    buffer = FakeBuffer(error=AssertionError('no lookup expected'))
    assert CloudToCamera(buffer).resolve('cam', 'lidar', STAMP, EXTRINSIC, 0.1) is EXTRINSIC
    assert buffer.calls == []


def test_tf_is_looked_up_at_the_cloud_stamp_with_the_timeout():
    buffer = FakeBuffer(_tf(0.5, -0.25, 0.125, 0.5, -0.5, 0.5, 0.5))
    t = CloudToCamera(buffer).resolve('cam', 'lidar', STAMP, None, 0.25)
    np.testing.assert_allclose(t, EXTRINSIC, atol=1e-12)
    assert buffer.calls == [('cam', 'lidar', 12 * 10**9 + 5, 250_000_000)]


def test_failed_lookups_and_missing_tf2_are_rejected():
    class LookupException(Exception):  # noqa: N818 - the name tf2_ros uses
        pass

    with pytest.raises(FrameRejectedError, match=r"no TF from 'lidar' to 'cam' .* 12.000000005 within 0.1 s "
                                                 r'\(LookupException: gone\)') as exc:
        CloudToCamera(FakeBuffer(error=LookupException('gone'))).resolve('cam', 'lidar', STAMP, None, 0.1)
    assert exc.value.reason == 'tf_unavailable'
    with pytest.raises(FrameRejectedError, match='tf2_ros is not installed: set cloud_to_camera') as exc:
        CloudToCamera(None).resolve('cam', 'lidar', STAMP, None, 0.1)
    assert exc.value.reason == 'frame_mismatch'


def test_transform_to_matrix_and_tf2_detection():
    t = transform_to_matrix(_tf(1, 2, 3, 0, 0, 0, 1))
    np.testing.assert_array_equal(t[:3, 3], [1, 2, 3])
    assert isinstance(tf2_available(), bool)
