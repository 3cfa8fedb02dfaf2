import numpy as np

from vizion3d_ros.core.geometry import object_geometry


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
