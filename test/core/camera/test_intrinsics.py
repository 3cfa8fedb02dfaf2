"""Intrinsics derived from the image size (vizion3D's formula) and from a point cloud's extent."""
import numpy as np
import pytest

from vizion3d_ros.core.camera.intrinsics import IntrinsicsError, derive_intrinsics, intrinsics_from_cloud
from vizion3d_ros.core.camera.pinhole import PinholeIntrinsics, project_gl
from vizion3d_ros.core.synthetic import scenes as syn


@pytest.fixture(scope='module')
def scene():
    return dict(syn.standard_scenes())['occlusion']


def test_explicit_values_win():
    cam = derive_intrinsics(640, 480, fx=500.0, fy=510.0, cx=300.0, cy=250.0)
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (500.0, 510.0, 300.0, 250.0, 640, 480)


def test_one_focal_length_given_is_used_for_both_axes():
    cam = derive_intrinsics(640, 480, fx=600.0)
    assert (cam.fx, cam.fy) == (600.0, 600.0)
    cam = derive_intrinsics(640, 480, fy=580.0, cx=310.0)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (580.0, 580.0, 310.0, 240.0)


def test_derived_defaults_follow_vizion3d():
    cam = derive_intrinsics(1280, 720)
    assert cam.fx == pytest.approx(0.85 * 1280) and cam.fy == pytest.approx(0.85 * 1280)
    assert (cam.cx, cam.cy) == (640.0, 360.0)
    assert (cam.width, cam.height) == (1280, 720)


def test_bad_image_size_is_an_error():
    with pytest.raises(ValueError, match='image size'):
        derive_intrinsics(0, 480)


def test_cloud_camera_sees_every_point_and_recovers_the_capturing_camera(scene):
    cam = syn.DEFAULT_CAMERA
    points, _ = syn.camera_cloud(scene, cam)
    finite = np.isfinite(points).all(axis=1)
    got = intrinsics_from_cloud(points)
    assert got.reliable and got.warning is None
    assert got.fraction_inside == 1.0
    assert project_gl(points, got.camera).valid.sum() == finite.sum()
    # a one-point-per-pixel cloud spanning the whole image gives back the camera that made it
    assert (got.camera.width, got.camera.height) == (cam.width, cam.height)
    assert got.camera.fx == pytest.approx(cam.fx, rel=1e-4)
    assert got.camera.cx == pytest.approx(cam.cx, abs=0.01) and got.camera.cy == pytest.approx(cam.cy, abs=0.01)


def test_cloud_camera_from_another_viewpoint_covers_its_points(scene):
    pose = syn.look_at((1.0, 0.5, 0.5), (0.0, -0.7, -2.6))
    points, _ = syn.sensor_cloud(scene, pose, 70.0, 50.0, 300, 200)
    # express the cloud in the sensor's own frame (camera at the origin, looking down -Z)
    local = (points - pose[:3, 3]) @ pose[:3, :3]
    got = intrinsics_from_cloud(local, width=400)
    assert got.reliable
    assert got.camera.width == 400
    assert project_gl(local, got.camera).valid.all()


def test_explicit_values_win_over_the_cloud(scene):
    points, _ = syn.camera_cloud(scene, syn.SMALL_CAMERA)
    got = intrinsics_from_cloud(points, fx=300.0, cy=100.0)
    assert (got.camera.fx, got.camera.fy, got.camera.cy) == (300.0, 300.0, 100.0)
    # the width reaches the cloud's extent at that focal length
    proj = project_gl(points, got.camera)
    assert proj.u.max() >= got.camera.width - 2
    full = intrinsics_from_cloud(points, fx=262.5, fy=262.5, cx=160.0, cy=120.0)
    assert (full.camera.width, full.camera.height) == (320, 240)  # principal point at the centre


def test_a_360_degree_cloud_is_flagged_unreliable(scene):
    points, _ = syn.sensor_cloud(scene, np.eye(4), 360.0, 40.0, 720, 24)
    got = intrinsics_from_cloud(points)
    assert not got.reliable
    assert 'behind the camera' in got.warning and 'degrees' in got.warning
    assert got.span_deg[0] > 300


def test_a_cloud_behind_the_camera_cannot_give_a_camera():
    points = np.array([[0.0, 0.0, 1.0], [0.5, 0.2, 2.0], [np.nan, 0.0, -1.0]], np.float32)
    with pytest.raises(IntrinsicsError, match='in front of the camera'):
        intrinsics_from_cloud(points)


def test_far_outliers_do_not_shrink_the_objects():
    rng = np.random.default_rng(3)
    cam = PinholeIntrinsics(fx=500.0, fy=500.0, cx=319.5, cy=239.5, width=640, height=480)
    # a wall filling a 640x480 view, plus a handful of stray points far to the side
    u = rng.uniform(0, 639, 20000)
    v = rng.uniform(0, 479, 20000)
    wall = np.stack([(u - cam.cx) / cam.fx * 3.0, -(v - cam.cy) / cam.fy * 3.0, np.full(20000, -3.0)], axis=1)
    strays = np.array([[8.0, 0.0, -3.0], [-9.0, 1.0, -3.0], [0.0, 7.0, -3.0]])
    got = intrinsics_from_cloud(np.vstack([wall, strays]))
    assert got.reliable
    assert got.camera.fx == pytest.approx(cam.fx, rel=0.02)  # not shrunk to fit the strays
    assert 'outside' in got.warning
