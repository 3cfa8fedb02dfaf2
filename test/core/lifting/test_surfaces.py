"""Depth jumps, creases and noise of a depth image (vizion3d_ros.core.lifting.surfaces)."""
import numpy as np

from vizion3d_ros.core.camera.pinhole import PinholeIntrinsics
from vizion3d_ros.core.lifting.surfaces import crease_pixels, depth_noise, far_edges, smooth_depth, typical_depth

CAM = PinholeIntrinsics(fx=300.0, fy=300.0, cx=80.0, cy=60.0, width=160, height=120)


def floor_meets_wall(wall=3.0, camera_height=0.4):
    """Depth of a wall at ``wall`` m meeting a floor ``camera_height`` below the camera (a 90 deg crease)."""
    v = np.arange(CAM.height, dtype=np.float64)[:, None]
    ray_down = (v - CAM.cy) / CAM.fy  # y per unit depth, positive downwards
    with np.errstate(divide='ignore'):
        floor = np.where(ray_down > 0, camera_height / ray_down, np.inf)
    depth = np.minimum(floor, wall) * np.ones((1, CAM.width))
    return depth.astype(np.float32)


def test_far_edges_mark_the_far_side_of_a_jump_only():
    z = np.full((20, 20), 3.0, np.float32)
    z[:, :10] = 1.0
    far = far_edges(z, np.isfinite(z))
    assert far[:, 10].all() and not far[:, 9].any()
    assert far.sum() == 20


def test_creases_are_found_where_floor_meets_wall_and_nowhere_else():
    z = floor_meets_wall()
    where = np.ones(z.shape, bool)
    idx, hit = crease_pixels(z, CAM, ~np.isfinite(z), 2, 40.0, where)
    rows = np.unique(idx[hit] // CAM.width)
    meet = int(np.argmax(z[:, 0] < 3.0))  # first floor row
    assert rows.size and np.all(np.abs(rows - meet) <= 2), rows
    # a tilted plane alone has no crease, whatever the viewing angle
    flat = np.where(np.arange(CAM.height)[:, None] >= meet + 3, z, np.inf).astype(np.float32)
    idx, hit = crease_pixels(flat, CAM, ~np.isfinite(flat), 2, 40.0, where)
    assert idx.size > 1000 and not hit.any()


def test_crease_test_on_a_part_of_the_image_gives_the_whole_images_answers_there():
    # an 80 deg threshold just under the floor-wall angle: rays taken from the part's own pixel numbers
    # (origin ignored) shear the floor by ~15 deg and lose the crease, so the origin must be used
    transposed = PinholeIntrinsics(fx=CAM.fy, fy=CAM.fx, cx=CAM.cy, cy=CAM.cx, width=CAM.height, height=CAM.width)
    for z, cam in ((floor_meets_wall(), CAM), (np.ascontiguousarray(floor_meets_wall().T), transposed)):
        blocked = ~np.isfinite(z)
        where = np.zeros(z.shape, bool)
        where[z.shape[0] // 2:, z.shape[1] // 2:] = True  # the floor-wall line lies in it
        idx, hit = crease_pixels(z, cam, blocked, 3, 80.0, where)
        y0, x0 = z.shape[0] // 2 - 4, z.shape[1] // 2 - 4  # 3 px + 1 before `where`, to the image's far edges
        pidx, phit = crease_pixels(z[y0:, x0:], cam, blocked[y0:, x0:], 3, 80.0, where[y0:, x0:], origin=(y0, x0))
        rows, cols = np.divmod(pidx, z.shape[1] - x0)
        np.testing.assert_array_equal((rows + y0) * z.shape[1] + cols + x0, idx)
        np.testing.assert_array_equal(phit, hit)
        assert hit.any() and not hit.all()


def test_crease_test_can_be_disabled_and_limited():
    z = floor_meets_wall()
    idx, hit = crease_pixels(z, CAM, ~np.isfinite(z), 2, 180.0, np.ones(z.shape, bool))
    assert idx.size == 0 and hit.size == 0
    where = np.zeros(z.shape, bool)
    where[50:55, 40:45] = True
    idx, _ = crease_pixels(z, CAM, ~np.isfinite(z), 2, 40.0, where)
    assert set(idx.tolist()) <= set(np.flatnonzero(where).tolist())


def test_depth_noise_recovers_the_simulated_sigma():
    rng = np.random.default_rng(0)
    z = np.full((240, 320), 2.0, np.float32)
    assert depth_noise(z) == 0.0
    k = 0.002  # sigma = k * z^2 = 8 mm at 2 m
    noisy = (z + rng.normal(0, k * 4.0, z.shape)).astype(np.float32)
    assert abs(depth_noise(noisy) - k) < 0.25 * k


def test_typical_depth_ignores_missing_depth():
    z = np.full((40, 40), np.inf, np.float32)
    assert np.isnan(typical_depth(z))
    z[::2] = 1.5
    assert typical_depth(z) == 1.5


def test_smoothing_keeps_jumps_and_holes():
    rng = np.random.default_rng(3)
    z = (2.0 + 0.01 * rng.standard_normal((60, 80))).astype(np.float32)
    z[:, 40:] += 0.5  # a depth jump the smoothing must not blur
    z[5:9, 5:9] = np.inf  # missing depth stays missing
    valid = np.isfinite(z)
    full = smooth_depth(z, valid, 0.002)
    assert full.dtype == np.float32 and full.shape == z.shape
    assert np.abs(full[valid] - z[valid]).max() > 0  # it smooths ...
    assert full[valid].std() < z[valid].std()
    assert np.abs(full[:, 38:42] - z[:, 38:42]).max() < 0.1  # ... but not across the jump
    assert np.isinf(full[5:9, 5:9]).all()
    assert smooth_depth(z, valid, 1e-5) is z  # noise-free depth is not touched


def _creased_reference(z, cam, idx, w, step, origin, crease_deg):
    """The numpy normals of commit a1c0e2f (float64 points, float32 depth differences)."""
    ys, xs = idx // w + origin[0], idx % w + origin[1]
    zf = np.ascontiguousarray(z, dtype=np.float32).reshape(-1)
    ax, ay = np.float32(1.0 / cam.fx), np.float32(1.0 / cam.fy)

    def point(offset, dy, dx):
        d = zf[idx + offset]
        return ((xs + dx - np.float32(cam.cx)) * ax * d, (ys + dy - np.float32(cam.cy)) * ay * d, d)

    def cross(a, b):
        return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])

    def above(n1, n2, cos_max):
        dot = n1[0] * n2[0] + n1[1] * n2[1] + n1[2] * n2[2]
        nn = (n1[0] ** 2 + n1[1] ** 2 + n1[2] ** 2) * (n2[0] ** 2 + n2[1] ** 2 + n2[2] ** 2)
        with np.errstate(invalid='ignore'):
            if cos_max > 0:
                return (dot < 0) | (dot * dot < np.float32(cos_max ** 2) * nn)
            return dot < cos_max * np.sqrt(nn)

    with np.errstate(invalid='ignore', over='ignore'):
        p0, pxf, pxb = point(0, 0, 0), point(step, 0, step), point(-step, 0, -step)
        pyf, pyb = point(step * w, step, 0), point(-step * w, -step, 0)
        fx = [a - c for a, c in zip(pxf, p0)]
        bx = [c - a for a, c in zip(pxb, p0)]
        fy = [a - c for a, c in zip(pyf, p0)]
        by = [c - a for a, c in zip(pyb, p0)]
        n_ff = cross(fx, fy)
        cos_max = float(np.cos(np.deg2rad(crease_deg)))
        return above(n_ff, cross(bx, fy), cos_max) | above(n_ff, cross(fx, by), cos_max)


def test_crease_kernel_matches_the_numpy_it_replaced_bit_for_bit():
    rng = np.random.default_rng(11)
    z = floor_meets_wall()
    z = (z + rng.normal(0, 0.004, z.shape) * np.where(np.isfinite(z), z, 0) ** 2).astype(np.float32)
    z[rng.random(z.shape) < 0.01] = np.nan  # NaN stencils answer False, as numpy's comparisons do
    blocked = np.zeros(z.shape, bool)  # nothing blocked: the kernel sees the NaN and inf depths too
    for step, deg, origin in ((2, 40.0, (0, 0)), (3, 25.0, (7, 11)), (6, 100.0, (0, 0)), (2, 5.0, (1, 0))):
        idx, hit = crease_pixels(z, CAM, blocked, step, deg, np.ones(z.shape, bool), origin)
        assert idx.size > 1000 and hit.any()
        np.testing.assert_array_equal(hit, _creased_reference(z, CAM, idx, z.shape[1], step, origin, deg))


def test_crease_test_takes_views_read_only_and_float64_depth():
    z = floor_meets_wall()
    idx, hit = crease_pixels(z, CAM, ~np.isfinite(z), 2, 40.0, np.ones(z.shape, bool))
    ro = z.astype(np.float64)
    ro.flags.writeable = False
    idx2, hit2 = crease_pixels(ro, CAM, ~np.isfinite(z), 2, 40.0, np.ones(z.shape, bool))
    np.testing.assert_array_equal(idx2, idx)
    np.testing.assert_array_equal(hit2, hit)
    wide = np.zeros((z.shape[0], 2 * z.shape[1]), np.float32)[:, ::2]  # a strided view
    wide[:] = z
    _, hit3 = crease_pixels(wide, CAM, ~np.isfinite(z), 2, 40.0, np.ones(z.shape, bool))
    np.testing.assert_array_equal(hit3, hit)
    # a one-pixel `where`, at the edge and inside
    where = np.zeros(z.shape, bool)
    where[0, 0] = True
    assert crease_pixels(z, CAM, ~np.isfinite(z), 2, 40.0, where)[0].size == 0
    where[60, 80] = True
    assert crease_pixels(z, CAM, ~np.isfinite(z), 2, 40.0, where)[0].tolist() == [60 * CAM.width + 80]


def _depth_noise_reference(depth, jump_rel=0.03):
    """The numpy of commit a1c0e2f."""
    z = np.asarray(depth, dtype=np.float32)[::4]
    with np.errstate(invalid='ignore'):
        d2 = z[:, :-2] - 2 * z[:, 1:-1] + z[:, 2:]
        zc = z[:, 1:-1]
        ok = np.isfinite(d2) & (np.abs(d2) < jump_rel * zc)
    if ok.sum() < 100:
        return 0.0
    return float(np.mean(np.abs(d2[ok]) / zc[ok] ** 2) / (np.sqrt(6.0) * np.sqrt(2.0 / np.pi)))


def test_depth_noise_kernel_matches_the_numpy_it_replaced():
    rng = np.random.default_rng(0)
    for shape in [(480, 640), (3, 3), (1, 200), (7, 2), (0, 5), (13, 101), (400, 1)]:
        for noise in (0.0, 0.002):
            z = (2.0 + rng.normal(0, noise * 4, shape)).astype(np.float32)
            z[rng.random(shape) < 0.05] = np.nan
            z[rng.random(shape) < 0.05] = np.inf
            assert depth_noise(z) == _depth_noise_reference(z), shape
    z = (2.0 + rng.normal(0, 0.01, (100, 120))).astype(np.float64)[:, ::2]  # float64, a view
    assert depth_noise(z) == _depth_noise_reference(z) > 0
