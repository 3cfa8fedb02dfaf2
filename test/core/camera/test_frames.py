import numpy as np
import pytest

from vizion3d_ros.core.camera.frames import OPTICAL_TO_GL, gl_to_optical, optical_to_gl


def test_optical_to_gl_flips_y_and_z():
    pts = np.array([[1.0, 2.0, 3.0], [-0.5, -1.0, 0.25]], np.float32)
    np.testing.assert_array_equal(optical_to_gl(pts), [[1.0, -2.0, -3.0], [-0.5, 1.0, -0.25]])


def test_round_trip_and_matrix_agree(rng):
    pts = rng.normal(size=(100, 3)).astype(np.float32)
    np.testing.assert_array_equal(gl_to_optical(optical_to_gl(pts)), pts)
    homo = np.c_[pts, np.ones(len(pts))] @ OPTICAL_TO_GL.T
    np.testing.assert_allclose(homo[:, :3], optical_to_gl(pts), atol=1e-6)


def test_point_in_front_of_camera_has_negative_gl_z():
    assert optical_to_gl(np.array([[0.0, 0.0, 2.0]]))[0, 2] == -2.0


def test_nan_passes_through_and_bad_shape_rejected():
    out = optical_to_gl(np.array([[np.nan, 1.0, 1.0]]))
    assert np.isnan(out[0, 0]) and out[0, 1] == -1.0
    with pytest.raises(ValueError):
        optical_to_gl(np.zeros((4, 2)))
