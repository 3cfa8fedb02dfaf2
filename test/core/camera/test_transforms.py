"""Extrinsic parsing, quaternions and moving clouds into the camera's OpenGL space."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vizion3d_ros.core.camera.frames import optical_to_gl
from vizion3d_ros.core.camera.transforms import (
    cloud_to_camera_gl,
    parse_extrinsic,
    pose_matrix,
    quaternion_matrix,
    transform_points,
)


def test_quaternions_of_known_rotations():
    np.testing.assert_allclose(quaternion_matrix(0, 0, 0, 1), np.eye(3))
    s = math.sqrt(0.5)
    # 90 degrees about z: x -> y
    np.testing.assert_allclose(quaternion_matrix(0, 0, s, s) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    # not normalised: same rotation
    np.testing.assert_allclose(quaternion_matrix(0, 0, 2, 2), quaternion_matrix(0, 0, s, s), atol=1e-12)
    # REP 103 body axes (x forward, y left, z up) in the optical frame (x right, y down, z forward)
    r = quaternion_matrix(0.5, -0.5, 0.5, 0.5)
    np.testing.assert_allclose(r, [[0, -1, 0], [0, 0, -1], [1, 0, 0]], atol=1e-12)
    with pytest.raises(ValueError, match='no rotation'):
        quaternion_matrix(0, 0, 0, 0)


def test_parse_seven_numbers_in_any_spelling():
    expected = pose_matrix([0.1, -0.2, 0.3], [0, 0, 0, 1])
    for value in ([0.1, -0.2, 0.3, 0, 0, 0, 1], '0.1 -0.2 0.3 0 0 0 1', '[0.1, -0.2, 0.3, 0, 0, 0, 1]',
                  (0.1, -0.2, 0.3, 0.0, 0.0, 0.0, 1.0)):
        np.testing.assert_allclose(parse_extrinsic(value), expected)


def test_parse_a_row_major_4x4():
    t = np.array([[0, -1, 0, 0.5], [0, 0, -1, -0.25], [1, 0, 0, 0.125], [0, 0, 0, 1]], float)
    np.testing.assert_array_equal(parse_extrinsic(t.reshape(-1).tolist()), t)
    np.testing.assert_array_equal(parse_extrinsic(' '.join(map(str, t.reshape(-1)))), t)


@pytest.mark.parametrize('value', [None, '', '  ', [], b''])
def test_empty_means_unset(value):
    assert parse_extrinsic(value) is None


@pytest.mark.parametrize('value, message', [
    ('1 2 3', 'got 3'),
    ([0.0] * 16, 'last row'),
    ([2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], 'not a rotation'),
    ([-1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], 'not a rotation'),  # a mirror
    ([0, 0, 0, 0, 0, 0, float('nan')], 'finite'),
    ('x y z', 'separated by spaces'),
    ([True] * 7, 'expected 7 or 16 numbers'),
    (3.0, 'expected 7 or 16 numbers'),
    (b'abc', 'bytes'),
])
def test_bad_extrinsics_say_what_is_wrong(value, message):
    with pytest.raises(ValueError, match=message):
        parse_extrinsic(value)


def test_cloud_to_camera_gl_matches_the_flip_and_applies_the_extrinsic(rng):
    xyz = rng.normal(size=(100, 3)).astype(np.float32)
    xyz[3] = np.nan
    np.testing.assert_array_equal(cloud_to_camera_gl(xyz), optical_to_gl(xyz))
    t = parse_extrinsic([0.5, -0.25, 0.125, 0.5, -0.5, 0.5, 0.5])
    moved = cloud_to_camera_gl(xyz, t)
    # by hand: optical p = R p_cloud + t, then OpenGL = (x, -y, -z)
    r = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], float)
    optical = xyz.astype(np.float64) @ r.T + [0.5, -0.25, 0.125]
    np.testing.assert_allclose(moved, optical * [1, -1, -1], rtol=1e-6, atol=1e-6)
    assert moved.dtype == np.float32 and np.isnan(moved[3]).all()
    with pytest.raises(ValueError):
        cloud_to_camera_gl(xyz[:, :2], t)


def test_cloud_to_camera_gl_reads_a_message_layout_and_empty_clouds(rng):
    # x, y, z views into 16-byte points (a PointCloud2's layout), a general rotation, metres-scale values
    buf = (rng.normal(size=(5000, 4)) * 3).astype(np.float32)
    t = parse_extrinsic([0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.9])
    moved = cloud_to_camera_gl(buf[:, :3], t)
    ref = (buf[:, :3].astype(np.float64) @ t[:3, :3].T + t[:3, 3]) * [1, -1, -1]
    np.testing.assert_allclose(moved, ref, rtol=0, atol=1e-5)  # float32 ulps at ~10 m
    assert cloud_to_camera_gl(np.zeros((0, 3), np.float32), t).shape == (0, 3)


def test_transform_points_is_the_float64_product_and_keeps_nans(rng):
    t = pose_matrix([0.5, -2.0, 3000.0], [0.1, 0.7, -0.2, 0.68])
    pts = rng.uniform(-5, 5, (1000, 3)).astype(np.float32)
    pts[::97] = np.nan
    got = transform_points(pts, t)
    ref = pts.astype(np.float64) @ t[:3, :3].T + t[:3, 3]
    assert got.dtype == np.float64 and got.shape == (1000, 3)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    assert np.isnan(got[::97]).all() and np.isfinite(np.delete(got, np.s_[::97], axis=0)).all()
    assert transform_points(np.zeros((0, 3)), t).shape == (0, 3)
    with pytest.raises(ValueError):
        transform_points(np.zeros((4, 2)), t)
