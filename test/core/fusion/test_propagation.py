"""Label propagation (vizion3d_ros.core.fusion.propagation) and the semantic mode of SceneFusion."""
import numpy as np
import pytest

from vizion3d_ros.core.fusion.propagation import propagate
from vizion3d_ros.core.fusion.scene import SceneFusion
from vizion3d_ros.core.fusion.voxel_map import VoxelMap
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.synthetic.multiview import furnished_room, orbit_poses, render_view


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
    with pytest.raises(ValueError):
        propagate(pts, labels[:10])
    with pytest.raises(ValueError):
        propagate(pts, labels, max_distance=0)


def test_three_painted_frames_label_most_of_the_room():
    """Semantic mode: class images painted on 3 of 20 views; propagation covers >= 0.9 of the map at >= 0.97."""
    room = furnished_room(np.random.default_rng(3))
    views = [render_view(room, p) for p in orbit_poses(room, rng=np.random.default_rng(1))]
    semantic = np.r_[255, room.class_ids + 1]  # object id -> class value; the room's surfaces 255
    fusion = SceneFusion(voxel_size=0.02, mode='semantic')
    truth = VoxelMap(0.02)
    for k, v in enumerate(views):
        classes = np.where(v.ids >= 0, semantic[np.maximum(v.ids, 0)], 0)
        fusion.add_frame(v.depth, v.camera, v.pose, classes if k in (0, 7, 14) else np.zeros_like(classes), {})
        pts = depth_to_points_optical(v.depth, v.camera).astype(np.float64)
        truth.integrate(pts @ v.pose[:3, :3].T + v.pose[:3, 3], labels=classes.reshape(-1))
    order = np.argsort(truth.keys)
    true_class = truth.best_labels()[0][order[np.searchsorted(truth.keys[order], fusion.map.keys)]]
    direct = fusion.map.best_labels()[0]
    assert 0.3 < (direct > 0).mean() < 0.6
    # painted labels are right but where a voxel holds two surfaces (an object's foot on the floor)
    assert (direct[direct > 0] == true_class[direct > 0]).mean() > 0.99
    one = fusion.propagate()
    three = fusion.propagate(iterations=3)
    assert one.coverage_before == pytest.approx((direct > 0).mean())
    assert one.coverage_after > 0.85 and three.coverage_after >= 0.90
    for r in (one, three):
        ok = r.labels > 0
        assert (r.labels[ok] == true_class[ok]).mean() >= 0.97
    near = fusion.propagate(max_camera_distance=0.5)  # cameras are 1.3 m or more from the floor's points
    assert near.coverage_after <= one.coverage_after
    with pytest.raises(ValueError):
        SceneFusion(mode='panoptic')
