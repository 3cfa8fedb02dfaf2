"""Dominant planes by RANSAC (vizion3d_ros.core.lifting.planes)."""
import numpy as np

from vizion3d_ros.core.lifting.planes import fit_planes, near_planes


def grid_scene(floor_rows: int = 3, rows: int = 50, cols: int = 40):
    """Raster-ordered points of a wall (z = -4) whose last ``floor_rows`` rows are floor (y = -1)."""
    pts = []
    for r in range(rows):
        for c in range(cols):
            if r >= rows - floor_rows:
                pts.append((c * 0.05 - 1.0, -1.0, -3.9 + (rows - r) * 0.02))
            else:
                pts.append((c * 0.05 - 1.0, 1.5 - r * 0.05, -4.0))
    return np.array(pts)


def test_finds_wall_and_floor_with_their_tolerances():
    rng = np.random.default_rng(0)
    pts = grid_scene(floor_rows=12) + rng.normal(0, 0.003, (2000, 3))
    planes = fit_planes(pts)
    assert len(planes) == 2
    normals = np.abs(planes[:, :3])
    assert {int(np.argmax(n)) for n in normals} == {1, 2}  # one facing along y (floor), one along z (wall)
    assert (planes[:, 4] >= 0.005).all() and (planes[:, 4] <= 0.04).all()
    assert near_planes(pts, planes).mean() > 0.95


def test_local_sampling_finds_a_small_plane_that_must_hold_five_percent():
    pts = grid_scene(floor_rows=3)  # the floor is 6 % of the points
    floor = np.isclose(pts[:, 1], -1.0)
    assert 0.05 < floor.mean() < 0.1
    assert len(fit_planes(pts, min_fraction=0.1)) == 1  # the floor is under the usual 10 %
    planes = fit_planes(pts, min_fraction=0.05, local=64, hypotheses=96)
    assert len(planes) == 2
    assert near_planes(pts[floor], planes).all()


def test_no_plane_in_a_blob():
    pts = np.random.default_rng(1).normal(0, 1.0, (3000, 3))
    assert len(fit_planes(pts, threshold=0.01)) == 0
    assert not near_planes(pts, fit_planes(pts, threshold=0.01)).any()


def test_any_input_layout_gives_the_same_planes():
    """The kernels take C-ordered coordinate rows; views, Fortran order and float32 are converted first."""
    rng = np.random.default_rng(0)
    pts = grid_scene(floor_rows=12) + rng.normal(0, 0.003, (2000, 3))
    wide = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)  # pts[:, :3] is a strided view
    expected = fit_planes(pts)
    for variant in (wide[:, :3], np.asfortranarray(pts), pts[::-1][::-1]):
        np.testing.assert_array_equal(fit_planes(variant), expected)
    assert np.allclose(fit_planes(pts.astype(np.float32)), expected, atol=1e-3)
