"""Mask -> point indices on scenes whose answer is known exactly."""
import numpy as np
import pytest

from vizion3d_ros.core.camera.frames import optical_to_gl
from vizion3d_ros.core.camera.pinhole import PinholeIntrinsics
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.lifting.lift import group_by_label, label_image, lift_masks

CAM = PinholeIntrinsics(fx=400.0, fy=400.0, cx=160.0, cy=120.0, width=320, height=240)


def rect_mask(x0, y0, x1, y1):
    m = np.zeros((CAM.height, CAM.width), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def scene():
    """A wall at 3 m, a box at 1.5 m and a box at 2 m; 5 % of pixels without depth."""
    depth = np.full((CAM.height, CAM.width), 3.0, np.float32)
    depth[40:120, 30:130] = 1.5
    depth[100:200, 100:220] = 2.0
    depth[np.random.default_rng(0).random(depth.shape) < 0.05] = np.nan
    masks = np.stack([rect_mask(30, 40, 130, 120), rect_mask(100, 100, 220, 200)])
    points = depth_to_points_optical(depth, CAM)
    return depth, masks, points


def pixels_of(mask, depth):
    return np.flatnonzero(mask.reshape(-1) & np.isfinite(depth).reshape(-1))


def test_naive_lifting_returns_exactly_the_masked_pixels(scene):
    depth, masks, points = scene
    groups = lift_masks(optical_to_gl(points), CAM, masks, scores=[0.9, 0.8], mode='naive')
    for mask, got in zip(masks, groups):
        np.testing.assert_array_equal(got, pixels_of(mask, depth))
        assert got.dtype == np.uint32


def test_exclusive_lifting_gives_overlap_to_the_more_confident_mask(scene):
    depth, masks, points = scene
    groups = lift_masks(optical_to_gl(points), CAM, masks, scores=[0.6, 0.95], mode='exclusive')
    np.testing.assert_array_equal(groups[1], pixels_of(masks[1], depth))
    np.testing.assert_array_equal(groups[0], pixels_of(masks[0] & ~masks[1], depth))
    assert np.intersect1d(groups[0], groups[1]).size == 0
    # same masks, confidence swapped: the overlap changes hands
    swapped = lift_masks(optical_to_gl(points), CAM, masks, scores=[0.95, 0.6], mode='exclusive')
    np.testing.assert_array_equal(swapped[0], pixels_of(masks[0], depth))
    np.testing.assert_array_equal(swapped[1], pixels_of(masks[1] & ~masks[0], depth))


def test_unorganised_shuffled_cloud_maps_back_through_the_permutation(scene):
    depth, masks, points = scene
    perm = np.random.default_rng(5).permutation(len(points))
    shuffled = points[perm]  # shuffled[i] = points[perm[i]]
    inverse = np.argsort(perm)
    groups = lift_masks(optical_to_gl(shuffled), CAM, masks, scores=[0.9, 0.8], mode='naive')
    for mask, got in zip(masks, groups):
        np.testing.assert_array_equal(np.sort(inverse[pixels_of(mask, depth)]), got)


def test_points_outside_the_image_or_behind_are_never_labelled():
    pts = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [50.0, 0.0, 1.0], [np.nan] * 3], np.float32)
    full = np.ones((1, CAM.height, CAM.width), bool)
    for mode in ('naive', 'exclusive'):
        (got,) = lift_masks(optical_to_gl(pts), CAM, full, scores=[1.0], mode=mode)
        np.testing.assert_array_equal(got, [0])


def test_boxes_restrict_painting_and_empty_inputs():
    masks = np.stack([rect_mask(0, 0, 320, 240)])
    lab = label_image(masks, [0.5], boxes=np.array([[10, 20, 29, 39]], np.float32))
    assert lab.sum() == 20 * 20 and lab[20:40, 10:30].all()
    assert lift_masks(np.zeros((3, 3), np.float32), CAM, np.zeros((0, 240, 320), bool), []) == []
    groups = group_by_label(np.arange(6), np.array([0, 2, 1, 2, 0, 1]), 3)
    assert [g.tolist() for g in groups] == [[2, 5], [1, 3], []]


def test_rejects_masks_of_the_wrong_size_and_unknown_modes(scene):
    _, masks, points = scene
    with pytest.raises(ValueError, match='masks must be'):
        lift_masks(optical_to_gl(points), CAM, masks[:, :100], scores=[1, 1])
    with pytest.raises(ValueError, match='unknown lifting mode'):
        lift_masks(optical_to_gl(points), CAM, masks, scores=[1, 1], mode='magic')


@pytest.mark.parametrize('mode', ['visible', 'exclusive', 'naive'])
def test_a_cloud_prepared_before_the_masks_gives_the_same_groups(scene, mode):
    """prepare_cloud (run while the model runs) changes nothing but when the work is done."""
    from vizion3d_ros.core.lifting.lift import LiftConfig, prepare_cloud

    depth, masks, points = scene
    pts = optical_to_gl(points)
    noisy = pts * (1 + np.random.default_rng(3).normal(0, 0.002, (len(pts), 1))).astype(np.float32)
    for cloud in (pts, noisy):
        direct = lift_masks(cloud, CAM, masks, [0.9, 0.8], mode=mode)
        prepared = prepare_cloud(cloud, CAM, LiftConfig(mode=mode))
        assert (prepared.surface is not None) == (mode == 'visible') and prepared.own_pixels == (mode == 'visible')
        shared = lift_masks(cloud, CAM, masks, [0.9, 0.8], mode=mode, projection=prepared)
        assert len(shared) == 2 and all(np.array_equal(a, b) for a, b in zip(direct, shared))
    # prepared for another mode: the visible surface is built on demand, with the same answer
    other = lift_masks(pts, CAM, masks, [0.9, 0.8], projection=prepare_cloud(pts, CAM, LiftConfig(mode='naive')))
    assert all(np.array_equal(a, b) for a, b in zip(other, lift_masks(pts, CAM, masks, [0.9, 0.8])))
