"""The map's top view (vizion3d_ros.core.render.topview)."""
import numpy as np
import pytest

from vizion3d_ros.core.render.colors import palette
from vizion3d_ros.core.render.topview import top_view, up_direction
from vizion3d_ros.core.synthetic.multiview import furnished_room, orbit_poses


def test_up_is_where_the_cameras_image_up_points():
    room = furnished_room(np.random.default_rng(3))
    poses = np.array(orbit_poses(room, rng=np.random.default_rng(1)))  # the rooms are Y-up
    np.testing.assert_allclose(up_direction(poses), [0, 1, 0], atol=0.3)
    flipped = poses.copy()
    flipped[:, :3, :] = np.diag([1.0, -1.0, -1.0]) @ poses[:, :3, :]  # the same rig in a Y-down world
    assert up_direction(flipped) @ np.array([0, -1.0, 0]) > 0.9
    assert up_direction(np.zeros((0, 4, 4))).tolist() == [0.0, 0.0, 1.0]


def test_the_highest_point_of_a_pixel_wins_and_cameras_are_marked():
    # a labelled square 1 m above an unlabelled floor, seen by one upright camera (image-up = world +Z)
    floor = np.stack(np.meshgrid(np.linspace(0, 2, 81), np.linspace(0, 2, 81), [0.0]), -1).reshape(-1, 3)
    box = floor[(np.abs(floor[:, 0] - 1) < 0.3) & (np.abs(floor[:, 1] - 1) < 0.3)] + [0, 0, 1.0]
    pts = np.vstack([floor, box])
    labels = np.r_[np.zeros(len(floor), int), np.full(len(box), 2)]
    colors = np.full((len(pts), 3), 200, np.uint8)
    pose = np.eye(4)
    pose[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # optical Y (down) = world -Z
    pose[:3, 3] = [1, -1, 1.5]
    img = top_view(pts, colors, labels, pose[None], max_size=300, point_size=0.025)
    h, w, _ = img.shape
    assert max(h, w) <= 300
    square = (img == palette(3)[2]).all(axis=2)
    rows, cols = np.flatnonzero(square.any(axis=1)), np.flatnonzero(square.any(axis=0))
    # the square is drawn whole on top of the floor under it: a filled square of the right size
    assert square[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].mean() > 0.95
    assert abs(len(rows) - len(cols)) <= 2 and len(cols) == pytest.approx(0.55 * (300 - 25) / 3, abs=4)  # 0.55 m of 3 m
    assert (img == 0).all(axis=2).any()  # the camera's black dot
    empty = top_view(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0, int), np.zeros((0, 4, 4)))
    assert empty.ndim == 3
