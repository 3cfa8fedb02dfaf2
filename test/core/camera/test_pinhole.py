import numpy as np
import pytest

from vizion3d_ros.core.camera.frames import optical_to_gl
from vizion3d_ros.core.camera.pinhole import PinholeIntrinsics, project_gl
from vizion3d_ros.core.io.rgbd import depth_to_points_optical

CAM = PinholeIntrinsics(fx=500.0, fy=510.0, cx=319.5, cy=241.0, width=640, height=480)


def test_back_projected_depth_projects_to_its_own_pixel(rng):
    depth = rng.uniform(0.3, 9.0, size=(CAM.height, CAM.width)).astype(np.float32)
    pts = optical_to_gl(depth_to_points_optical(depth, CAM))
    proj = project_gl(pts, CAM)
    assert proj.valid.all()
    vv, uu = np.divmod(np.arange(CAM.width * CAM.height), CAM.width)
    np.testing.assert_array_equal(proj.u, uu)
    np.testing.assert_array_equal(proj.v, vv)
    np.testing.assert_allclose(proj.depth, depth.reshape(-1), rtol=1e-6)


def test_projection_matches_pinhole_formula():
    # optical point (x, y, z) -> u = fx x / z + cx, v = fy y / z + cy (rounded to the nearest pixel)
    optical = np.array([[0.4, -0.3, 2.0], [0.0, 0.0, 1.0], [-1.0, 0.5, 4.0]], np.float32)
    proj = project_gl(optical_to_gl(optical), CAM)
    u = np.floor(CAM.fx * optical[:, 0] / optical[:, 2] + CAM.cx + 0.5)
    v = np.floor(CAM.fy * optical[:, 1] / optical[:, 2] + CAM.cy + 0.5)
    np.testing.assert_array_equal(proj.u, u)
    np.testing.assert_array_equal(proj.v, v)


def test_invalid_points_are_reported_not_clipped():
    optical = np.array([[0, 0, 1.0],      # valid, centre
                        [0, 0, -1.0],     # behind the camera
                        [0, 0, 0.0],      # on the camera centre
                        [np.nan, 0, 1.0],  # NaN
                        [10.0, 0, 1.0],   # right of the image
                        [0, -10.0, 1.0],  # above the image
                        [np.inf, 0, 1.0]], np.float32)
    proj = project_gl(optical_to_gl(optical), CAM)
    np.testing.assert_array_equal(proj.valid, [True, False, False, False, False, False, False])
    np.testing.assert_array_equal(proj.indices, [0])


def test_from_matrix_and_validation():
    cam = PinholeIntrinsics.from_matrix([500, 0, 320, 0, 505, 240, 0, 0, 1], 640, 480)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (500, 505, 320, 240)
    np.testing.assert_array_equal(cam.matrix(), [[500, 0, 320], [0, 505, 240], [0, 0, 1]])
    for bad in ({'fx': 0.0}, {'fy': -1.0}, {'cx': float('nan')}, {'width': 0}):
        args = dict(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480) | bad
        with pytest.raises(ValueError):
            PinholeIntrinsics(**args)


def test_projection_gives_indices_and_flat_pixels():
    cam = PinholeIntrinsics(fx=100.0, fy=100.0, cx=20.0, cy=15.0, width=40, height=30)
    pts = np.array([[0.0, 0.0, -1.0], [np.nan, 0.0, -1.0], [0.1, 0.05, -1.0], [0.0, 0.0, 1.0]], np.float32)
    proj = project_gl(pts, cam)
    assert not proj.all_valid
    np.testing.assert_array_equal(proj.indices, [0, 2])
    assert proj.indices is proj.indices  # a field, never recomputed
    np.testing.assert_array_equal(proj.pixels, proj.v.astype(np.int64) * cam.width + proj.u)
    full = project_gl(pts[[0, 2]], cam)
    assert full.all_valid
    np.testing.assert_array_equal(full.indices, [0, 1])
    np.testing.assert_array_equal(full.pixels, proj.pixels)
