import numpy as np

from vizion3d_ros.core.lifting.geometry import object_geometry


def test_centroid_and_box_of_selected_points():
    pts = np.array([[0, 0, 0], [2, 4, 6], [1, 1, 1], [100, 100, 100]], np.float32)
    g = object_geometry(pts, np.array([0, 1, 2]))
    np.testing.assert_allclose(g.centroid, [1, 5 / 3, 7 / 3])
    np.testing.assert_allclose(g.box_center, [1, 2, 3])
    np.testing.assert_allclose(g.box_size, [2, 4, 6])
    assert g.point_count == 3


def test_empty_object_is_all_zeros():
    g = object_geometry(np.zeros((5, 3)), np.array([], int))
    assert g.point_count == 0 and not g.centroid.any() and not g.box_size.any()


def _record_view(n: int, point_step: int, x_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(buffer, xyz): n records of point_step bytes with float32 x, y, z at x_offset, as PointCloud2 lays them."""
    rng = np.random.default_rng(3)
    buf = rng.integers(0, 255, n * point_step, dtype=np.uint8)
    xyz = np.ndarray((n, 3), '<f4', buffer=buf, offset=x_offset, strides=(point_step, 4))
    xyz[...] = rng.normal(size=(n, 3)).astype(np.float32)
    return buf, xyz


def test_gather_rows_matches_fancy_indexing_on_record_views():
    from vizion3d_ros.core.lifting.geometry import gather_rows

    for point_step, x_offset in ((16, 0), (32, 0), (32, 16), (20, 4), (12, 0)):
        _, xyz = _record_view(50, point_step, x_offset)
        for idx in (np.array([0, 7, 49], np.uint32), np.array([49, 49, 3], np.uint32), np.arange(50, dtype=np.uint32),
                    np.array([], np.uint32), np.array([-1, 2], np.int64), np.array([True] * 25 + [False] * 25)):
            got = gather_rows(xyz, idx)
            np.testing.assert_array_equal(got, xyz[idx])
            assert got.shape == xyz[idx].shape and got.dtype == np.float32


def test_object_geometry_on_a_record_view_includes_the_last_point():
    _, xyz = _record_view(10, 32, 16)
    idx = np.array([2, 9], np.uint32)
    g = object_geometry(xyz, idx)
    np.testing.assert_allclose(g.box_min, xyz[idx].min(axis=0))
    np.testing.assert_allclose(g.box_max, xyz[idx].max(axis=0))
    np.testing.assert_allclose(g.centroid, xyz[idx].astype(np.float64).mean(axis=0))
