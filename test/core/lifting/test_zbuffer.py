"""Z-buffer and visibility (vizion3d_ros.core.lifting.zbuffer)."""
import numpy as np

from vizion3d_ros.core.lifting.zbuffer import auto_splat_radius, depth_map, visible, zbuffer


def test_zbuffer_keeps_the_nearest_point_per_pixel():
    pix = np.array([0, 0, 5, 5, 5, 7])
    depth = np.array([2.0, 1.0, 3.0, 0.5, 4.0, 1.0], np.float32)
    z = zbuffer(pix, depth, 2, 4)
    assert z.shape == (2, 4)
    np.testing.assert_array_equal(z.reshape(-1), [1.0, np.inf, np.inf, np.inf, np.inf, 0.5, np.inf, 1.0])


def test_unique_pixels_scatter_gives_the_same_buffer():
    rng = np.random.default_rng(0)
    pix = rng.permutation(48 * 64)[:2000]
    depth = rng.uniform(0.5, 5.0, pix.size).astype(np.float32)
    np.testing.assert_array_equal(zbuffer(pix, depth, 48, 64, unique=True), zbuffer(pix, depth, 48, 64))


def test_sparse_clouds_get_a_splat_and_dense_ones_none():
    dense = depth_map(np.arange(48 * 64), np.ones(48 * 64, np.float32), 48, 64)
    assert dense.splat_radius == 0
    grid = (np.arange(0, 48, 4)[:, None] * 64 + np.arange(0, 64, 4)[None, :]).reshape(-1)
    sparse = depth_map(grid, np.ones(grid.size, np.float32), 48, 64)
    assert sparse.splat_radius == auto_splat_radius(4.0) >= 2
    filled = np.isfinite(sparse.depth[:45, :61])
    assert filled[::4].all() and filled[:, ::4].all()  # footprints touch along rows and columns
    assert filled.mean() > 0.75 > 0.1 > np.isfinite(zbuffer(grid, np.ones(grid.size, np.float32), 48, 64)).mean()


def test_points_behind_the_surface_are_not_visible():
    surface = np.array([2.0, 2.0, 2.0])
    assert visible(np.array([2.0, 2.05, 2.5]), surface, 0.03, 0.01).tolist() == [True, True, False]
