"""The multi-view test scenes (vizion3d_ros.core.synthetic.multiview): geometry, ids and spoiled masks."""
import numpy as np
import pytest

from vizion3d_ros.core.camera.frames import gl_to_optical
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.synthetic.multiview import (
    FURNITURE,
    MaskErrors,
    frame_masks,
    furnished_room,
    orbit_poses,
    render_view,
)
from vizion3d_ros.core.synthetic.scenes import Box, Sphere


@pytest.fixture(scope='module')
def room_views():
    room = furnished_room(np.random.default_rng(3))
    views = [render_view(room, p) for p in orbit_poses(room, rng=np.random.default_rng(1))]
    return room, views


def _inside(obj, pts: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """Whether world points lie in (or on) a box or sphere, up to ``tol``."""
    c = np.asarray(obj.center)
    if isinstance(obj, Sphere):
        return np.linalg.norm(pts - c, axis=1) <= obj.radius + tol
    assert isinstance(obj, Box)
    local = (pts - c) @ obj.rotation()  # world -> box axes
    return (np.abs(local) <= 0.5 * np.asarray(obj.size) + tol).all(axis=1)


def test_a_furnished_room_has_coco_classes_and_objects_apart():
    room = furnished_room(np.random.default_rng(0), num_objects=7)
    assert room.scene.num_objects == 7 and len(room.labels) == 7
    known = {c: name for c, name, *_ in FURNITURE}
    assert all(known[c] == name for c, name in zip(room.class_ids.tolist(), room.labels))
    assert max(np.bincount(room.class_ids)) <= 2
    objs = room.scene.objects
    for i in range(len(objs)):
        for j in range(i):
            gap = np.hypot(objs[i].center[0] - objs[j].center[0], objs[i].center[2] - objs[j].center[2])
            assert gap > objs[i].footprint_radius() + objs[j].footprint_radius()


def test_each_view_back_projects_onto_the_objects_its_ids_name(room_views):
    """Depth along the optical axis and camera-to-world optical poses: every object pixel lands on its object."""
    room, views = room_views
    assert len(views) == 20
    for view in views:
        pts_cam = depth_to_points_optical(view.depth, view.camera).astype(np.float64)
        world = pts_cam @ view.pose[:3, :3].T + view.pose[:3, 3]
        ids = view.ids.reshape(-1)
        for k, obj in enumerate(room.scene.objects, start=1):
            mine = ids == k
            if mine.any():
                assert _inside(obj, world[mine]).all()
        floor = ids == 0
        assert np.isfinite(world[floor]).all()
        # the camera looks down at the floor: optical +Z points below the horizon, +Y (down) has world -y
        assert view.pose[1, 2] < 0 and view.pose[1, 1] < 0
    # and the optical/GL convention of the module matches the package's
    np.testing.assert_allclose(gl_to_optical(np.array([[1.0, 2.0, -3.0]])), [[1.0, -2.0, 3.0]])


def test_every_object_is_seen_from_several_views(room_views):
    room, views = room_views
    seen = np.array([np.bincount(v.ids[v.ids > 0].ravel(), minlength=room.scene.num_objects + 1)[1:]
                     for v in views])
    assert ((seen >= 30).sum(axis=0) >= 3).all(), seen
    assert (np.array([v.color.std() for v in views]) > 0).all()


def test_exact_masks_are_the_ids_numbered_at_random(room_views):
    room, views = room_views
    rng = np.random.default_rng(5)
    orders = set()
    for view in views[:6]:
        fm = frame_masks(room, view, rng)
        values = sorted(fm.meta)
        assert values == list(range(1, len(values) + 1))
        assert set(fm.truth.values()) == {k for k in range(1, room.scene.num_objects + 1)
                                         if (view.ids == k).sum() >= MaskErrors().min_pixels}
        for value, truth in fm.truth.items():
            np.testing.assert_array_equal(fm.labels == value, view.ids == truth)
            assert fm.meta[value]['class_id'] == room.class_ids[truth - 1]
            assert 0.5 <= fm.meta[value]['confidence'] <= 0.95
        orders.add(tuple(fm.truth[v] for v in values))
    assert len(orders) > 1  # the numbering changes from frame to frame


def test_spoiled_masks_miss_invent_and_misclassify_at_the_rates_asked(room_views):
    room, views = room_views
    errors = MaskErrors(grow=3, miss=0.15, spurious=1.0, wrong_class=0.08)
    rng = np.random.default_rng(7)
    visible = detected = spurious = wrong = 0
    frames = 0
    for _ in range(10):
        for view in views:
            fm = frame_masks(room, view, rng, errors)
            frames += 1
            visible += sum((view.ids == k).sum() >= errors.min_pixels for k in range(1, room.scene.num_objects + 1))
            for value, truth in fm.truth.items():
                if truth == 0:
                    spurious += 1
                    continue
                detected += 1
                wrong += fm.meta[value]['class_id'] != room.class_ids[truth - 1]
                exact = view.ids == truth
                assert (fm.labels == value).sum() >= 0.5 * exact.sum()  # grown (covered by others at most in part)
    miss_rate = 1 - detected / visible
    assert 0.08 < miss_rate < 0.25, miss_rate
    assert 0.6 < spurious / frames < 1.4
    assert 0.03 < wrong / detected < 0.14, wrong / detected


def test_shrunk_masks_stay_inside_the_object_and_noise_moves_depth_only():
    room = furnished_room(np.random.default_rng(3))
    pose = orbit_poses(room)[0]
    exact, noisy = render_view(room, pose), render_view(room, pose, noise_std=0.0015, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(exact.ids, noisy.ids)
    diff = np.abs(noisy.depth - exact.depth)
    assert 0 < np.nanmedian(diff) < 0.05
    fm = frame_masks(room, exact, np.random.default_rng(1), MaskErrors(grow=-2))
    for value, truth in fm.truth.items():
        assert (exact.ids[fm.labels == value] == truth).all()


def test_same_seed_same_scene_and_masks():
    a, b = furnished_room(np.random.default_rng(11)), furnished_room(np.random.default_rng(11))
    assert a.labels == b.labels and np.array_equal(a.colors, b.colors)
    va, vb = render_view(a, orbit_poses(a)[3]), render_view(b, orbit_poses(b)[3])
    ma = frame_masks(a, va, np.random.default_rng(2), MaskErrors(miss=0.3, spurious=1.0))
    mb = frame_masks(b, vb, np.random.default_rng(2), MaskErrors(miss=0.3, spurious=1.0))
    np.testing.assert_array_equal(ma.labels, mb.labels)
    assert ma.meta == mb.meta and ma.truth == mb.truth
