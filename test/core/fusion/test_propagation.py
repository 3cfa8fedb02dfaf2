"""Label propagation (vizion3d_ros.core.fusion.propagation) and the semantic mode of SceneFusion."""
import numpy as np
import pytest

from vizion3d_ros.core.fusion.propagation import propagate
from vizion3d_ros.core.fusion.scene import SceneFusion
from vizion3d_ros.core.fusion.voxel_map import VoxelMap
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.synthetic.multiview import furnished_room, orbit_poses, render_view
from vizion3d_ros.core.synthetic.scenes import FLOOR_Y


def test_majority_within_the_radius_with_a_quorum_and_ties_abstaining():
    line = np.array([[x * 0.01, 0.0, 0.0] for x in range(12)])
    labels = np.array([1, 1, 1, 0, 0, 2, 2, 0, 0, 0, 0, 0])
    r = propagate(line, labels, max_distance=0.025, min_neighbors=2)
    # within 2.5 cm point 3 sees 1, 1 and 2 -> 1; point 4 sees 1, 2 and 2 -> 2; point 7 sees 2, 2 -> 2
    assert r.labels.tolist()[:7] == [1, 1, 1, 1, 2, 2, 2]
    assert r.labels.tolist()[8:] == [0, 0, 0, 0]  # beyond the radius of any label
    assert r.labelled_before == 5 and r.labelled_after == 8 and r.coverage_after == pytest.approx(8 / 12)
    tie = propagate(np.array([[0.0, 0, 0], [0.01, 0, 0], [0.02, 0, 0]]), np.array([1, 0, 2]), 0.015, 1)
    assert tie.labels.tolist() == [1, 0, 2]  # one of each: abstain
    alone = propagate(line, labels, max_distance=0.025, min_neighbors=4)
    assert alone.labels[3] == 0  # only three labelled points within 2.5 cm: no quorum


def test_iterations_carry_labels_along_and_untrusted_points_do_not_vote():
    line = np.array([[x * 0.01, 0.0, 0.0] for x in range(10)])
    labels = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    assert (propagate(line, labels, 0.021, 1).labels > 0).sum() == 4
    assert (propagate(line, labels, 0.021, 1, iterations=20).labels == 1).all()
    trusted = np.array([False, True] + [True] * 8)
    r = propagate(line, labels, 0.011, 1, trusted=trusted)
    assert r.labels.tolist()[:3] == [1, 1, 1]  # point 0 keeps its label; 1 still votes for 2
    assert propagate(line, labels, 0.011, 1, trusted=np.zeros(10, bool)).labels.tolist() == labels.tolist()


def test_batches_give_the_same_answer():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (5000, 3))
    labels = np.where(rng.random(5000) < 0.3, 1 + (pts[:, 0] > 0.5), 0)
    a = propagate(pts, labels, 0.08, 3).labels
    b = propagate(pts, labels, 0.08, 3, batch=97).labels
    np.testing.assert_array_equal(a, b)
    one, three = (propagate(pts, labels, 0.08, 3, iterations=4, workers=w) for w in (1, 3))
    np.testing.assert_array_equal(one.labels, three.labels)  # the cells shared out between threads: one answer
    np.testing.assert_array_equal(one.support, three.support)
    with pytest.raises(ValueError):
        propagate(pts, labels[:10])
    with pytest.raises(ValueError):
        propagate(pts, labels, max_distance=0)


def _grid(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.stack(np.meshgrid(u, v, indexing='ij'), -1).reshape(-1, 2)


def test_a_label_spreads_along_its_plane_but_not_round_a_crease_nor_down_a_step():
    """A floor (y = 0) meeting a wall (x = 0) at a right angle, 1 cm spacing; only the far floor is labelled."""
    s = np.arange(0.0, 0.6001, 0.01)
    fx, fz = _grid(s, s).T
    wy, wz = _grid(s[1:], s).T
    floor = np.stack([fx, np.zeros_like(fx), fz], 1)
    wall = np.stack([np.zeros_like(wy), wy, wz], 1)
    pts = np.vstack([floor, wall])
    is_floor = np.arange(len(pts)) < len(floor)
    labels = np.where(is_floor & (pts[:, 0] > 0.4), 1, 0)
    r = propagate(pts, labels, iterations=30)
    edge = pts[:, 0] + pts[:, 1] < 0.005  # on both planes
    assert (r.labels[is_floor & ~edge] == 1).all()  # 40 cm of floor crossed, to the foot of the wall
    assert (r.labels[~is_floor & (pts[:, 1] > 0.015)] == 0).all()  # the wall: not a voxel past its foot
    flood = propagate(pts, labels, iterations=30, max_normal_angle=None, max_plane_distance=None)
    assert (flood.labels[~is_floor] == 1).mean() > 0.9  # without the gates the label climbs the wall
    # and back from the wall: a labelled wall does not flood the floor
    back = propagate(pts, np.where(~is_floor, 2, 0), iterations=30)
    assert (back.labels[is_floor & (pts[:, 0] > 0.015)] == 0).all()

    # a step in depth: two parallel planes 4 cm apart (a shelf above a table top), one labelled
    top = np.column_stack([fx, np.full_like(fx, 0.04), fz])
    pts = np.vstack([floor, top])
    on_top = np.arange(len(pts)) >= len(floor)
    labels = np.where(on_top, 3, 0)
    assert (propagate(pts, labels, iterations=5).labels[~on_top] == 0).all()
    assert (propagate(pts, labels, iterations=5, max_plane_distance=None).labels[~on_top] == 3).all()
    # given normals replace the estimated ones; a colour edge stops a label on one plane
    normals = np.tile(np.float32([0, 1, 0]), (len(pts), 1))
    assert (propagate(pts, labels, iterations=5, normals=normals).labels[~on_top] == 0).all()
    colors = np.where((pts[:, 0] < 0.3)[:, None], [200, 30, 30], [30, 30, 200])
    half = np.where(~on_top & (pts[:, 0] > 0.45), 4, 0)
    painted = propagate(pts, half, iterations=30, colors=colors, max_color_distance=40).labels
    assert (painted[~on_top & (pts[:, 0] >= 0.3)] == 4).all() and (painted[pts[:, 0] < 0.3] == 0).all()
    with pytest.raises(ValueError):
        propagate(pts, half, max_color_distance=40)  # no colours
    with pytest.raises(ValueError):
        propagate(pts, half, max_normal_angle=120)


#: Class values of the room's surfaces in the semantic test: the floor and each wall (+x, -x, +z, -z) its own.
FLOOR, WALLS = 200, (201, 202, 203, 204)


def _true_classes(room, view) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's class (objects: COCO id + 1; the floor and each wall their own) and world point."""
    half_x, half_z = room.room_half
    pts = depth_to_points_optical(view.depth, view.camera).astype(np.float64) @ view.pose[:3, :3].T + view.pose[:3, 3]
    # the room surface a pixel of id 0 shows is the plane its point lies on
    off = np.abs(np.stack([pts[:, 1] - FLOOR_Y, pts[:, 0] - half_x, pts[:, 0] + half_x, pts[:, 2] - half_z,
                           pts[:, 2] + half_z], 1))
    surface = np.array([FLOOR, *WALLS])[np.argmin(np.nan_to_num(off, nan=np.inf), axis=1)].reshape(view.ids.shape)
    objects = np.r_[0, room.class_ids + 1][np.maximum(view.ids, 0)]
    return np.where(view.ids > 0, objects, np.where(view.ids == 0, surface, 0)), pts


def painted_room(seed: int, painted=(0, 7, 14)) -> tuple[SceneFusion, np.ndarray]:
    """A semantic map of a furnished room whose class images are painted on 3 of its 20 views, and its truth."""
    room = furnished_room(np.random.default_rng(seed))
    views = [render_view(room, p) for p in orbit_poses(room, rng=np.random.default_rng(1))]
    fusion = SceneFusion(voxel_size=0.02, mode='semantic')
    truth = VoxelMap(0.02)
    for k, v in enumerate(views):
        classes, pts = _true_classes(room, v)
        fusion.add_frame(v.depth, v.camera, v.pose, classes if k in painted else np.zeros_like(classes), {}, v.color)
        truth.integrate(pts, labels=classes.reshape(-1))
    order = np.argsort(truth.keys)
    return fusion, truth.best_labels()[0][order[np.searchsorted(truth.keys[order], fusion.map.keys)]]


def test_three_painted_frames_label_most_of_the_room():
    """Semantic mode: class images painted on 3 of 20 views; propagation covers >= 0.9 of the map at >= 0.97.

    The floor, each wall and each object are classes of their own, so a label that floods round a crease
    (floor to wall, wall to wall, object to floor) is an error.
    """
    fusion, true_class = painted_room(3)
    direct = fusion.map.best_labels()[0]
    assert 0.3 < (direct > 0).mean() < 0.6
    # painted labels are right but where a voxel holds two surfaces (an object's foot on the floor, a corner)
    assert (direct[direct > 0] == true_class[direct > 0]).mean() > 0.99

    def accuracy(r):
        ok = r.labels > 0
        return (r.labels[ok] == true_class[ok]).mean()

    one = fusion.propagate(iterations=1)
    ten = fusion.propagate(iterations=10)
    default = fusion.propagate()
    assert one.coverage_before == pytest.approx((direct > 0).mean())
    assert one.coverage_after > 0.85 and ten.coverage_after >= 0.95 and default.coverage_after >= 0.99
    assert default.passes > 10
    for r in (one, ten, default):
        assert accuracy(r) >= 0.99
    # without the gates, ten passes flood round the creases: several times the errors
    flood = fusion.propagate(iterations=10, max_normal_angle=None, max_plane_distance=None)
    errors = [((r.labels > 0) & (r.labels != true_class)).sum() for r in (ten, flood)]
    assert errors[1] > 2.5 * errors[0] and accuracy(flood) < 0.99
    near = fusion.propagate(max_camera_distance=0.5)  # cameras are 1.3 m or more from the floor's points
    assert near.coverage_after <= one.coverage_after
    with pytest.raises(ValueError):
        SceneFusion(mode='panoptic')
