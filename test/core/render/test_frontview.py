"""Front views of ray-cast clouds: nearest point wins, sparse clouds render without holes."""
import cv2
import numpy as np
import pytest

from vizion3d_ros.core.camera.pinhole import PinholeIntrinsics
from vizion3d_ros.core.render.colors import palette
from vizion3d_ros.core.render.frontview import render_front_view
from vizion3d_ros.core.synthetic import scenes as syn

CAM = syn.DEFAULT_CAMERA
PALETTE = palette(12)


def id_colors(ids: np.ndarray) -> np.ndarray:
    """A distinct colour per id (-1, background 0 and objects get different ones)."""
    return PALETTE[np.asarray(ids) + 1]


@pytest.fixture(scope='module')
def floating_scene():
    # objects only (no floor or wall): the rays between them hit nothing, so the view has empty pixels
    return syn.Scene(dict(syn.standard_scenes())['occlusion'].objects)


@pytest.fixture(scope='module')
def room_scene():
    return dict(syn.standard_scenes())['sphere']


def test_camera_cloud_rendered_by_its_camera_reproduces_the_view_exactly(floating_scene):
    points, ids = syn.camera_cloud(floating_scene, CAM)
    depth_true, id_image = syn.render_camera(floating_scene, CAM)
    image, depth = render_front_view(points, id_colors(ids), CAM, fill_holes=False)
    assert image.shape == (CAM.height, CAM.width, 3) and image.dtype == np.uint8
    assert depth.shape == (CAM.height, CAM.width) and depth.dtype == np.float32
    has_depth = np.isfinite(depth_true)
    assert 0.05 < has_depth.mean() < 0.9  # objects and empty space both present
    np.testing.assert_array_equal(image[has_depth], id_colors(id_image)[has_depth])
    np.testing.assert_allclose(depth[has_depth], depth_true[has_depth], rtol=1e-5)
    assert np.isinf(depth[~has_depth]).all()
    assert (image[~has_depth] == 0).all()  # background colour


def test_large_empty_regions_are_not_filled(floating_scene):
    points, ids = syn.camera_cloud(floating_scene, CAM)
    depth_true, _ = syn.render_camera(floating_scene, CAM)
    image, _ = render_front_view(points, id_colors(ids), CAM, fill_holes=True)
    far_from_objects = cv2.dilate(np.isfinite(depth_true).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    assert far_from_objects.any()
    assert (image[far_from_objects] == 0).all()


def test_nearest_point_wins_and_points_behind_the_camera_are_ignored():
    cam = PinholeIntrinsics(fx=10.0, fy=10.0, cx=2.0, cy=2.0, width=5, height=5)
    points = np.array([[0.0, 0.0, -2.0], [0.0, 0.0, -1.0], [0.0, 0.0, -3.0], [0.0, 0.0, 1.0]], np.float32)
    colors = np.array([[10, 10, 10], [200, 0, 0], [0, 200, 0], [0, 0, 200]], np.uint8)
    image, depth = render_front_view(points, colors, cam, splat_radius=0, fill_holes=False)
    assert image[2, 2].tolist() == [200, 0, 0]
    assert depth[2, 2] == pytest.approx(1.0)
    assert np.isinf(depth).sum() == 24


def test_sparse_cloud_with_auto_splat_has_no_holes_inside_objects(room_scene):
    points, ids = syn.camera_cloud(room_scene, CAM)
    keep = np.random.default_rng(5).random(len(points)) < 0.25
    _, id_image = syn.render_camera(room_scene, CAM)
    image, depth = render_front_view(points[keep], id_colors(ids[keep]), CAM)
    expected = id_colors(id_image)
    kernel = np.ones((11, 11), np.uint8)
    for k in range(1, room_scene.num_objects + 1):
        inside = cv2.erode((id_image == k).astype(np.uint8), kernel).astype(bool)
        assert inside.sum() > 500
        assert (image[inside] != 0).any(axis=1).all(), f'object {k} has empty pixels inside'
        np.testing.assert_array_equal(image[inside], expected[inside])
    # the depth (splatted only, never invented) is finite on most of the image
    assert np.isfinite(depth).mean() > 0.7


def test_splat_alone_covers_a_regularly_subsampled_cloud(room_scene):
    points, ids = syn.camera_cloud(room_scene, CAM)
    grid = points.reshape(CAM.height, CAM.width, 3)[::2, ::2].reshape(-1, 3)
    grid_ids = ids.reshape(CAM.height, CAM.width)[::2, ::2].reshape(-1)
    _, depth = render_front_view(grid, id_colors(grid_ids), CAM, fill_holes=False)
    _, r0_depth = render_front_view(grid, id_colors(grid_ids), CAM, splat_radius=0, fill_holes=False)
    assert np.isinf(r0_depth).mean() > 0.7  # without footprints three pixels in four are empty
    assert np.isinf(depth[2:-2, 2:-2]).mean() < 0.3  # the automatic footprint closes most of them


def test_hole_filling_closes_the_gaps_of_a_magnified_view(room_scene):
    points, ids = syn.camera_cloud(room_scene, CAM)
    # the same view drawn 6 % larger: points land ~1.06 px apart, leaving empty lines between rows
    zoom = PinholeIntrinsics(fx=CAM.fx * 1.06, fy=CAM.fy * 1.06, cx=CAM.cx, cy=CAM.cy, width=CAM.width,
                             height=CAM.height)
    raw, _ = render_front_view(points, id_colors(ids), zoom, splat_radius=0, fill_holes=False)
    filled, _ = render_front_view(points, id_colors(ids), zoom, splat_radius=0, fill_holes=True)
    inner = (slice(20, -20), slice(20, -20))
    assert (raw[inner].sum(axis=2) == 0).mean() > 0.05
    assert (filled[inner].sum(axis=2) == 0).sum() == 0


def test_colors_must_match_the_points():
    with pytest.raises(ValueError, match='colors must be'):
        render_front_view(np.zeros((3, 3), np.float32), np.zeros((2, 3), np.uint8), CAM)
