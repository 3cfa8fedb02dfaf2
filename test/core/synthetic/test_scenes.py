import math

import numpy as np
import pytest

from vizion3d_ros.core.camera.frames import optical_to_gl
from vizion3d_ros.core.camera.pinhole import PinholeIntrinsics, project_gl
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.synthetic.scenes import (
    DEFAULT_CAMERA,
    Box,
    Plane,
    Scene,
    Sphere,
    camera_cloud,
    dilate_masks,
    instance_masks,
    look_at,
    precision_recall,
    random_scene,
    raycast,
    render_camera,
    room,
    scaled_camera,
    sensor_cloud,
    standard_scenes,
)

CAM = PinholeIntrinsics(fx=131.25, fy=131.25, cx=79.5, cy=59.5, width=160, height=120)  # VGA FOV at 1/4


def _pixel_grid(cam):
    vv, uu = np.divmod(np.arange(cam.width * cam.height), cam.width)
    return uu, vv


def _inside(obj, pts):
    """Independent inside test (box via its own yaw rotation, sphere via distance)."""
    c = np.asarray(obj.center)
    if isinstance(obj, Sphere):
        return np.linalg.norm(pts - c, axis=1) <= obj.radius
    co, si = math.cos(obj.yaw), math.sin(obj.yaw)
    rel = pts - c
    lx = co * rel[:, 0] - si * rel[:, 2]
    lz = si * rel[:, 0] + co * rel[:, 2]
    half = 0.5 * np.asarray(obj.size)
    return (np.abs(lx) <= half[0]) & (np.abs(rel[:, 1]) <= half[1]) & (np.abs(lz) <= half[2])


def _aabb(obj):
    if isinstance(obj, Sphere):
        return np.asarray(obj.center) - obj.radius, np.asarray(obj.center) + obj.radius
    corners = obj.corners()
    return corners.min(0), corners.max(0)


# --------------------------------------------------------------------------------------------------
# raycast


def test_raycast_hits_and_misses():
    scene = Scene([Box((0.0, 0.0, -3.0), (1.0, 1.0, 1.0)), Sphere((5.0, 0.0, -5.0), 1.0)])
    d = np.array([[0, 0, -1], [0, 0, 1], [1, 0, -1], [0, 1, 0]], np.float64)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    t, ids = raycast(scene, np.zeros(3), d)
    assert ids.dtype == np.int32
    np.testing.assert_allclose(t[0], 2.5)  # axis-parallel ray (zero x/y direction components)
    assert ids[0] == 1
    np.testing.assert_allclose(t[2], math.sqrt(50) - 1.0)
    assert ids[2] == 2
    assert np.isinf(t[[1, 3]]).all() and (ids[[1, 3]] == -1).all()


def test_raycast_ray_along_box_face_and_from_inside():
    box = Box((0.0, 0.0, -3.0), (1.0, 1.0, 1.0))
    # a ray lying in the plane x = 0.5 of the box's face (parallel to the slab, on its boundary)
    t, ids = raycast(Scene([box]), np.array([[0.5, 0.0, 0.0]]), np.array([[0.0, 0.0, -1.0]]))
    assert ids[0] == 1 and t[0] == pytest.approx(2.5)
    t, ids = raycast(Scene([box]), np.array([[0.6, 0.0, 0.0]]), np.array([[0.0, 0.0, -1.0]]))
    assert ids[0] == -1 and np.isinf(t[0])
    # from inside: the exit point
    t, ids = raycast(Scene([box, Sphere((0.0, 0.0, 5.0), 1.0)]), np.array([[0.0, 0.0, -3.0], [0.0, 0.0, 5.0]]),
                     np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(t, [0.5, 1.0])
    np.testing.assert_array_equal(ids, [1, 2])


def test_raycast_nearest_wins_and_origins_per_ray_agree():
    scene, _ = _occluding_scene()
    rng = np.random.default_rng(0)
    d = rng.normal(size=(2000, 3))
    d[:, 2] = -np.abs(d[:, 2]) * 3
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    t1, ids1 = raycast(scene, np.zeros(3), d)
    t2, ids2 = raycast(scene, np.zeros_like(d), d)
    np.testing.assert_array_equal(ids1, ids2)
    np.testing.assert_allclose(t1, t2)
    # brute force: every primitive alone, then the minimum
    alone = [raycast(Scene([], [p]), np.zeros(3), d)[0] for p in scene.background]
    alone += [raycast(Scene([o]), np.zeros(3), d)[0] for o in scene.objects]
    alone = np.stack(alone)
    np.testing.assert_allclose(t1, alone.min(0))
    hit = np.isfinite(t1)
    expected = np.maximum(np.argmin(alone, axis=0) - len(scene.background) + 1, 0)
    np.testing.assert_array_equal(ids1[hit], expected[hit])


# --------------------------------------------------------------------------------------------------
# main camera


def test_fronto_parallel_plane_depth():
    depth, ids = render_camera(Scene([], [Plane((0.0, 0.0, -3.0), (0.0, 0.0, 1.0))]), CAM)
    assert depth.shape == (CAM.height, CAM.width) and depth.dtype == np.float32
    np.testing.assert_allclose(depth, 3.0, rtol=1e-6)
    assert (ids == 0).all()


def test_floor_depth_and_sky():
    depth, ids = render_camera(Scene([], room(wall_distance=100.0)[:1]), CAM)
    rows = np.arange(CAM.height) - CAM.cy
    below = rows > 0
    # a ray through row v meets y = -1 at depth fy / (v - cy)
    np.testing.assert_allclose(depth[below], np.repeat((CAM.fy / rows[below])[:, None], CAM.width, 1), rtol=1e-5)
    assert np.isnan(depth[~below]).all() and (ids[~below] == -1).all() and (ids[below] == 0).all()


def test_sphere_front_depth():
    depth, ids = render_camera(Scene([Sphere((0.0, 0.0, -3.0), 0.5)]), scaled_camera(CAM, 161 / 160))
    h, w = depth.shape
    assert ids[h // 2, w // 2] == 1
    assert depth[h // 2, w // 2] == pytest.approx(2.5, abs=1e-4)


def test_box_appears_at_its_projected_corners():
    for box in (Box((0.3, -0.2, -2.5), (0.6, 0.5, 0.4)), Box((-0.4, 0.1, -3.0), (0.8, 0.3, 0.5), math.radians(30))):
        _, ids = render_camera(Scene([box], room()), CAM)
        proj = project_gl(box.corners().astype(np.float32), CAM)
        assert proj.valid.all()
        vs, us = np.nonzero(ids == 1)
        assert abs(us.min() - proj.u.min()) <= 1 and abs(us.max() - proj.u.max()) <= 1
        assert abs(vs.min() - proj.v.min()) <= 1 and abs(vs.max() - proj.v.max()) <= 1


def test_yaw_convention():
    # positive yaw turns the local +X axis towards world -Z (counter-clockwise seen from above)
    np.testing.assert_allclose(Box((0, 0, 0), (1, 1, 1), math.pi / 2).rotation() @ [1, 0, 0], [0, 0, -1], atol=1e-12)
    # a long box turned 90 degrees looks like the box with x and z sizes swapped
    _, a = render_camera(Scene([Box((0.2, -0.5, -3.0), (1.0, 0.4, 0.2), math.pi / 2)]), CAM)
    _, b = render_camera(Scene([Box((0.2, -0.5, -3.0), (0.2, 0.4, 1.0))]), CAM)
    assert (a == 1).sum() > 100
    assert (a != b).sum() <= 2


def _occluding_scene():
    return dict(standard_scenes())['occlusion'], CAM


def test_camera_cloud_projects_to_own_pixel_and_ids_match():
    scene, cam = _occluding_scene()
    depth, ids = render_camera(scene, cam)
    for noise in (0.0, 0.01):
        pts, pids = camera_cloud(scene, cam, noise_std=noise, rng=np.random.default_rng(3))
        assert pts.shape == (cam.width * cam.height, 3) and pts.dtype == np.float32 and pids.dtype == np.int32
        np.testing.assert_array_equal(pids, ids.reshape(-1))
        hit = pids >= 0
        assert np.isnan(pts[~hit]).all() and np.isfinite(pts[hit]).all()
        proj = project_gl(pts, cam)
        np.testing.assert_array_equal(proj.valid, hit)
        uu, vv = _pixel_grid(cam)
        np.testing.assert_array_equal(proj.u, uu[hit])
        np.testing.assert_array_equal(proj.v, vv[hit])
        if noise == 0:
            np.testing.assert_allclose(-pts[hit, 2], depth.reshape(-1)[hit], rtol=1e-6)
            # the same points as back-projecting the depth image
            np.testing.assert_allclose(pts[hit], optical_to_gl(depth_to_points_optical(depth, cam))[hit], atol=1e-6)


def test_camera_cloud_noise_grows_with_depth_squared():
    scene = Scene([], [Plane((0.0, 0.0, -3.0), (0.0, 0.0, 1.0))])
    pts, _ = camera_cloud(scene, CAM, noise_std=0.01, rng=np.random.default_rng(5))
    err = -pts[:, 2] - 3.0
    assert abs(err.mean()) < 0.005
    assert np.std(err) == pytest.approx(0.01 * 9.0, rel=0.05)


# --------------------------------------------------------------------------------------------------
# other sensors


def test_look_at():
    pose = look_at((0.5, 0.2, 0.0), (0.0, -0.6, -2.5))
    rot = pose[:3, :3]
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    fwd = np.array([-0.5, -0.8, -2.5]) / np.linalg.norm([-0.5, -0.8, -2.5])
    np.testing.assert_allclose(-rot[:, 2], fwd, atol=1e-12)
    assert rot[1, 1] > 0 and abs(rot[1, 0]) < 1e-12  # up-ish, no roll
    np.testing.assert_allclose(look_at((0, 0, 0), (0, 0, -1)), np.eye(4), atol=1e-12)
    with pytest.raises(ValueError):
        look_at((0, 0, 0), (0, 5, 0))


def test_sensor_cloud_is_in_world_frame():
    scene = Scene([], [Plane((0.0, 0.0, -3.0), (0.0, 0.0, 1.0))])
    pose = look_at((0.5, 0.3, 0.2), (0.0, 0.0, -3.0))
    pts, ids = sensor_cloud(scene, pose, 60, 30, 65, 17)
    assert pts.shape == (65 * 17, 3) and pts.dtype == np.float32 and (ids == 0).all()
    np.testing.assert_allclose(pts[:, 2], -3.0, atol=1e-5)
    # the grid is centred on the viewing direction: the middle ray (odd resolutions) hits the target
    np.testing.assert_allclose(pts[8 * 65 + 32], [0.0, 0.0, -3.0], atol=1e-5)
    # rows go from top to bottom, columns from left to right (as seen by the sensor)
    grid = pts.reshape(17, 65, 3)
    assert (np.diff(grid[:, 32, 1]) < 0).all() and (np.diff(grid[8, :, 0]) > 0).all()
    # rays that miss are dropped
    pts, ids = sensor_cloud(scene, look_at((0, 0, 0), (0, 0, 1)), 60, 30, 64, 16)
    assert len(pts) == 0 and len(ids) == 0


def test_sensor_cloud_sees_a_side_the_camera_cannot():
    box = Box((0.0, -0.6, -2.5), (0.5, 0.8, 0.5))
    scene = Scene([box], room())
    depth, ids_img = render_camera(scene, CAM)
    pose = look_at((0.5, 0.0, 0.0), box.center)
    pts, ids = sensor_cloud(scene, pose, 40, 30, 400, 200)
    on_box = pts[ids == 1]
    proj = project_gl(on_box, CAM)
    assert proj.valid.all()
    # exactly hidden from the camera: the camera's ray towards the point stops before it
    dist = np.linalg.norm(on_box.astype(np.float64), axis=1)
    t, _ = raycast(scene, np.zeros(3), on_box / dist[:, None])
    hidden = t < dist - 1e-4
    assert hidden.sum() > 100
    # seen on the camera's pixels: a different id there, or the box clearly in front (pixel-based, so
    # not exact: visible points near the silhouette also land on pixels of another id)
    cam_depth = depth[proj.v, proj.u]
    cam_id = ids_img[proj.v, proj.u]
    hidden_px = (cam_id != 1) | (cam_depth < proj.depth - 0.01)
    assert (hidden_px & hidden).sum() > 0.9 * hidden.sum(), ((hidden_px & hidden).sum(), hidden.sum())
    # they lie on the +X side face, which the centred camera never sees
    np.testing.assert_allclose(on_box[hidden, 0], 0.25, atol=1e-4)
    assert (ids_img == 1).sum() > 0
    cam_pts, cam_ids = camera_cloud(scene, CAM)
    assert (cam_pts[cam_ids == 1, 0] < 0.25 - 1e-3).all()


def test_sensor_cloud_noise_moves_points_along_rays():
    scene = Scene([], [Plane((0.0, 0.0, -3.0), (0.0, 0.0, 1.0))])
    pose = look_at((0.0, 0.0, 0.0), (0.0, 0.0, -3.0))
    clean, _ = sensor_cloud(scene, pose, 20, 20, 50, 50)
    noisy, _ = sensor_cloud(scene, pose, 20, 20, 50, 50, noise_std=0.01, rng=np.random.default_rng(1))
    rc, rn = np.linalg.norm(clean, axis=1), np.linalg.norm(noisy, axis=1)
    np.testing.assert_allclose(clean / rc[:, None], noisy / rn[:, None], atol=1e-5)
    assert np.std(rn - rc) == pytest.approx(0.01 * 9.0, rel=0.1)


# --------------------------------------------------------------------------------------------------
# masks and scoring


def test_instance_and_dilated_masks():
    scene, cam = _occluding_scene()
    _, ids = render_camera(scene, cam)
    masks = instance_masks(ids, scene.num_objects)
    assert masks.shape == (3, cam.height, cam.width) and masks.dtype == bool
    for k in range(3):
        np.testing.assert_array_equal(masks[k], ids == k + 1)
        assert masks[k].any()
    grown = dilate_masks(masks, 3)
    assert (grown >= masks).all() and (grown.sum((1, 2)) > masks.sum((1, 2))).all()
    np.testing.assert_array_equal(dilate_masks(masks, 0), masks)
    dot = np.zeros((1, 11, 11), bool)
    dot[0, 5, 5] = True
    assert dilate_masks(dot, 2, 'square').sum() == 25
    assert 9 < dilate_masks(dot, 2, 'ellipse').sum() < 25


def test_precision_recall_hand_made():
    cam = PinholeIntrinsics(fx=4.0, fy=4.0, cx=1.5, cy=1.5, width=4, height=4)
    pts = optical_to_gl(depth_to_points_optical(np.full((4, 4), 2.0, np.float32), cam))
    uu, vv = _pixel_grid(cam)
    point_ids = np.where(uu < 2, 1, 2).astype(np.int32)
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 1:, :2] = True  # object 1's mask misses row 0
    masks[1, :, 2:] = True
    idx = lambda u, v: v * 4 + u  # noqa: E731
    pred1 = [idx(0, 1), idx(1, 1), idx(0, 2), idx(1, 2),  # 4 relevant
             idx(0, 0),  # right id, outside the mask: counts for precision, never missed
             idx(2, 2), idx(3, 3)]  # object 2's points
    relevant2 = [i for i in range(16) if uu[i] >= 2]
    res = precision_recall([np.array(pred1), np.array(relevant2)], point_ids, masks, pts, cam)
    assert res[0]['tp'] == 5 and res[0]['fp'] == 2 and res[0]['fn'] == 2 and res[0]['relevant'] == 6
    assert res[0]['precision'] == pytest.approx(5 / 7) and res[0]['recall'] == pytest.approx(4 / 6)
    assert res[1] == {'precision': 1.0, 'recall': 1.0, 'tp': 8, 'fp': 0, 'fn': 0, 'relevant': 8}
    empty = precision_recall([np.array([], int), np.array([], int)], point_ids, masks, pts, cam)
    assert empty[0]['precision'] == 1.0 and empty[0]['recall'] == 0.0 and empty[0]['fn'] == 6


def test_precision_recall_on_a_rendered_scene():
    scene, cam = _occluding_scene()
    pts, pids = camera_cloud(scene, cam)
    _, ids = render_camera(scene, cam)
    masks = instance_masks(ids, scene.num_objects)
    perfect = [np.flatnonzero(pids == k + 1) for k in range(scene.num_objects)]
    for r in precision_recall(perfect, pids, masks, pts, cam):
        assert r['precision'] == 1.0 and r['recall'] == 1.0 and r['fp'] == 0 and r['fn'] == 0
    # naive lifting with dilated masks: full recall, but it bleeds onto the background and neighbours
    proj = project_gl(pts, cam)
    grown = dilate_masks(masks, 4)
    lifted = [proj.indices[grown[k, proj.v, proj.u]] for k in range(scene.num_objects)]
    res = precision_recall(lifted, pids, masks, pts, cam)
    assert all(r['recall'] == 1.0 for r in res)
    assert all(r['precision'] < 1.0 for r in res)
    for k, r in enumerate(res):
        assert r['tp'] == (pids[lifted[k]] == k + 1).sum()


# --------------------------------------------------------------------------------------------------
# scenes


@pytest.mark.parametrize('seed', range(6))
def test_random_scene(seed):
    near_wall = seed % 2 == 1
    scene = random_scene(np.random.default_rng(seed), num_objects=4, near_wall=near_wall)
    again = random_scene(np.random.default_rng(seed), num_objects=4, near_wall=near_wall)
    assert scene == again
    assert scene.num_objects == 4 and len(scene.background) == 2
    for obj in scene.objects:
        lo, hi = _aabb(obj)
        assert lo[1] == pytest.approx(-1.0)  # resting on the floor
        if isinstance(obj, Sphere):
            assert 0.1 <= obj.radius <= 0.35
        else:
            assert all(0.2 <= s <= 0.7 for s in obj.size)
    others = scene.objects[:-1] if near_wall else scene.objects
    for obj in others:
        assert 1.5 <= -obj.center[2] <= 3.5
    if near_wall:
        gap = _aabb(scene.objects[-1])[0][2] + 4.0
        assert 0.05 - 1e-9 <= gap <= 0.15 + 1e-9
    # no two objects intersect (dense sampling of their bounding-box overlap)
    for i, a in enumerate(scene.objects):
        for b in scene.objects[i + 1:]:
            lo = np.maximum(_aabb(a)[0], _aabb(b)[0])
            hi = np.minimum(_aabb(a)[1], _aabb(b)[1])
            if (lo >= hi).any():
                continue
            g = np.stack(np.meshgrid(*[np.linspace(lo[j], hi[j], 25) for j in range(3)]), -1).reshape(-1, 3)
            assert not (_inside(a, g) & _inside(b, g)).any()
    # all visible in the camera, and at least two overlap in the image
    _, ids = render_camera(scene, CAM)
    counts = np.bincount(ids[ids > 0], minlength=5)[1:]
    assert (counts >= 20).all(), counts
    solo = [render_camera(Scene([o]), CAM)[1] == 1 for o in scene.objects]
    assert any((solo[i] & solo[j]).any() for i in range(4) for j in range(i + 1, 4))


def test_standard_scenes():
    scenes = standard_scenes()
    names = [n for n, _ in scenes]
    assert len(scenes) >= 5 and len(set(names)) == len(names)
    assert {'occlusion', 'near_wall', 'sphere', 'yawed_box'} <= set(names)
    kinds = [type(o) for _, s in scenes for o in s.objects]
    assert Sphere in kinds and any(isinstance(o, Box) and o.yaw != 0 for _, s in scenes for o in s.objects)
    for name, scene in scenes:
        _, ids = render_camera(scene, CAM)
        counts = np.bincount(ids[ids > 0], minlength=scene.num_objects + 1)[1:]
        assert (counts >= 15).all(), (name, counts)
    # occlusion: the second box is partly hidden by the first
    occ = dict(scenes)['occlusion']
    _, ids = render_camera(occ, CAM)
    _, alone = render_camera(Scene([occ.objects[1]]), CAM)
    assert 0 < (ids == 2).sum() < (alone == 1).sum()
    # standard_scenes is deterministic
    assert [s for _, s in standard_scenes()] == [s for _, s in scenes]


def test_default_camera():
    assert (DEFAULT_CAMERA.width, DEFAULT_CAMERA.height, DEFAULT_CAMERA.fx) == (640, 480, 525)
    depth, ids = render_camera(dict(standard_scenes())['occlusion'], DEFAULT_CAMERA)
    assert depth.shape == (480, 640) and ids.shape == (480, 640)
