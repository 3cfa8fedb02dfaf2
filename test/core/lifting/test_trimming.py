"""Trimming of mask borders that spill off an object (vizion3d_ros.core.lifting.trimming)."""
import cv2
import numpy as np
import pytest

from vizion3d_ros.core.camera.pinhole import PinholeIntrinsics
from vizion3d_ros.core.lifting.lift import label_image, mask_boxes
from vizion3d_ros.core.lifting.trimming import TrimConfig, batch_quantiles, box_slice, trim_spill

CAM = PinholeIntrinsics(fx=400.0, fy=400.0, cx=160.0, cy=120.0, width=320, height=240)
CFG = TrimConfig(edge_band=5, depth_tolerance=0.03, depth_tolerance_abs=0.01, crease_deg=40.0,
                 front_tolerance=0.0)


def wall_with_card(x0=100, y0=60, x1=200, y1=160, card=1.5, wall=3.0):
    """A fronto-parallel card at ``card`` m in front of a wall: depth image and the card's exact mask."""
    depth = np.full((CAM.height, CAM.width), wall, np.float32)
    depth[y0:y1, x0:x1] = card
    exact = np.zeros(depth.shape, bool)
    exact[y0:y1, x0:x1] = True
    return depth, exact


def dilate(mask, px):
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def trimmed(depth, masks, scores=None):
    scores = np.linspace(0.9, 0.5, len(masks)) if scores is None else scores
    boxes = mask_boxes(masks)
    labels = label_image(masks, scores, boxes)
    trim_spill(labels, masks, boxes, depth, CAM, CFG)
    return labels


def test_spill_onto_the_wall_behind_is_cut_and_the_object_kept():
    depth, exact = wall_with_card()
    loose = dilate(exact, 4)
    labels = trimmed(depth, loose[None])
    kept = labels == 1
    assert kept[exact].all(), 'object pixels were trimmed'
    spill = loose & ~exact
    assert spill.sum() > 1000
    assert not kept[spill].any(), f'{kept[spill].sum()} spill pixels kept'


def test_a_card_flush_with_the_wall_keeps_its_whole_mask():
    # no depth jump anywhere: nothing separates the border from the core, so nothing is cut
    depth, exact = wall_with_card(card=3.0)
    loose = dilate(exact, 4)
    labels = trimmed(depth, loose[None])
    np.testing.assert_array_equal(labels == 1, loose)


def test_only_an_instances_own_pixels_are_cleared():
    depth, exact = wall_with_card()
    other = np.zeros_like(exact)
    other[150:200, 20:90] = True  # a second mask on the wall, away from the card
    depth[150:200, 20:90] = 2.0  # ... on its own object
    loose = dilate(exact, 4)
    labels = trimmed(depth, np.stack([loose, dilate(other, 4)]))
    assert (labels == 1)[exact].all() and (labels == 2)[other].all()
    assert set(np.unique(labels)) <= {0, 1, 2}


def test_masks_touching_the_image_edge_are_handled():
    depth, exact = wall_with_card(x0=0, y0=0, x1=60, y1=80)
    loose = dilate(exact, 4)
    labels = trimmed(depth, loose[None])
    assert (labels == 1)[exact].all()
    assert not (labels == 1)[loose & ~exact].any()


def test_thin_masks_keep_a_core():
    depth, exact = wall_with_card(x0=100, y0=40, x1=106, y1=200)  # a 6 px wide pole
    labels = trimmed(depth, dilate(exact, 1)[None])
    assert (labels == 1)[exact].mean() > 0.9


def test_opencv_numbers_the_zero_pixels_in_raster_order():
    # _border relies on it to find each band pixel's nearest core pixel without a lookup table
    rng = np.random.default_rng(3)
    core = rng.random((60, 90)) < 0.05
    _, lab = cv2.distanceTransformWithLabels((~core).view(np.uint8), cv2.DIST_L2, 3,
                                             labelType=cv2.DIST_LABEL_PIXEL)
    np.testing.assert_array_equal(lab.reshape(-1)[np.flatnonzero(core)], np.arange(1, core.sum() + 1))


def test_batch_quantiles_are_those_of_an_even_subsample_per_sample():
    rng = np.random.default_rng(0)
    a = rng.permutation(100_000).astype(np.float32)
    short = rng.normal(size=10).astype(np.float32)
    q = batch_quantiles([a, short, np.zeros(0, np.float32), a[:3]], (0.5, 0.99))
    assert abs(q[0, 0] - 50_000) < 3_000 and abs(q[0, 1] - 99_000) < 3_000
    # short samples are used whole: element int(q * (n - 1)) of the sorted values
    assert q[1, 0] == np.sort(short)[4] and q[1, 1] == np.sort(short)[8]
    assert np.isnan(q[2]).all()  # an empty sample has no quantiles
    assert q[3, 0] == np.sort(a[:3])[1]


@pytest.mark.parametrize('box, pad, expected', [
    ((10.2, 20.7, 30.0, 40.5), 0, (20, 42, 10, 31)),
    ((0, 0, 319, 239), 8, (0, 240, 0, 320)),
    ((300, 200, 330, 260), 2, (198, 240, 298, 320)),
])
def test_box_slice_pads_and_clips(box, pad, expected):
    assert box_slice(np.array(box), CAM.height, CAM.width, pad) == expected


def test_a_mask_over_a_hole_in_noisy_depth_is_no_error():
    # noisy depth picks each instance's crease baseline from the typical depth of its crop; a crop with
    # no valid depth at all (a mask over a sensor hole) has none and must not stop the frame
    rng = np.random.default_rng(5)
    depth, exact = wall_with_card(card=2.5, wall=3.5)
    depth = (depth + rng.normal(0, 4e-3, depth.shape) * depth ** 2).astype(np.float32)
    depth[170:230, 20:80] = np.nan
    hole = np.zeros_like(exact)
    hole[180:220, 30:70] = True
    masks = np.stack([dilate(exact, 4), hole])
    labels = trimmed(depth, masks)
    assert (labels == 1)[exact].mean() > 0.95, 'the card lost its pixels'
    np.testing.assert_array_equal(labels == 2, hole)  # no depth to judge by: nothing trimmed


# --- the pass-3 kernel (_keep_connected) against the numpy it replaced -------------------------------------

def _runs_on_outside_reference(z, mask, crease, far, ys, xs, rel, tol_abs):
    h, w = z.shape
    z0 = z[ys, xs]
    tol = z0 * rel + tol_abs
    free = ~(crease[ys, xs] | far[ys, xs])
    ny = np.clip(ys + np.array([0, 0, 1, -1])[:, None], 0, h - 1)
    nx = np.clip(xs + np.array([1, -1, 0, 0])[:, None], 0, w - 1)
    with np.errstate(invalid='ignore'):
        smooth = np.abs(z[ny, nx] - z0) <= tol
    smooth &= ~(mask[ny, nx] | crease[ny, nx] | far[ny, nx])
    return free & smooth.any(axis=0)


def _keep_connected_reference(mask, core, rim, z, far, crease, cut, front, y0, x0, band_flat, behind, limit, rel,
                              tol_abs, labels):
    """The numpy pass 3 and edge-pixel rescue of commit a1c0e2f, for one instance (returns new labels)."""
    bh, bw = mask.shape
    h, w = z.shape
    sl = np.s_[y0:y0 + bh, x0:x0 + bw]
    region = core.copy()
    region.reshape(-1)[(band_flat // w - y0) * bw + band_flat % w - x0] = True
    zc = z[sl]
    with np.errstate(invalid='ignore'):
        behind_m = zc > behind
    open_ = region & ~cut[sl] & ~front[sl]
    n, comp = cv2.connectedComponents((open_ & (core | ~behind_m)).view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    keep = np.bincount(comp[core], minlength=n) > 0
    keep[0] = False
    kept = keep[comp]
    rest = open_ & ~kept
    if rest.any():
        n2, comp2 = cv2.connectedComponents(rest.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
        cy, cx = np.nonzero(rest & rim)
        leaks = _runs_on_outside_reference(zc, mask, crease[sl], far[sl], cy, cx, rel, tol_abs)
        n_leak = np.bincount(comp2[cy[leaks], cx[leaks]], minlength=n2)
        n_contact = np.bincount(comp2[cy, cx], minlength=n2)
        good = ~((n_leak >= 2) & (n_leak >= 0.3 * n_contact))
        good[0] = False
        with np.errstate(invalid='ignore'):
            kept = kept | (good[comp2] & (zc <= limit))
    kept_w = np.zeros((h, w), bool)
    kept_w[sl] = kept
    drop = np.zeros((h, w), bool)
    drop[sl] = region & ~(kept | core)
    ey, ex = np.nonzero(drop & (far | crease) & ~front)
    nb_y = np.clip(ey + np.array([-1, -1, -1, 0, 0, 1, 1, 1])[:, None], 0, h - 1)
    nb_x = np.clip(ex + np.array([-1, 0, 1, -1, 1, -1, 0, 1])[:, None], 0, w - 1)
    ok = kept_w[nb_y, nb_x]
    zn = z[nb_y, nb_x]
    lo = np.min(zn, axis=0, where=ok, initial=np.inf)
    hi = np.max(zn, axis=0, where=ok, initial=-np.inf)
    ze = z[ey, ex]
    tol = ze * rel + tol_abs
    with np.errstate(invalid='ignore'):
        back = (ze <= hi + tol) & (ze >= lo - tol)
    drop[ey[back], ex[back]] = False
    out = labels.copy()
    out[drop] = 0
    return out


def _noisy_scene(seed, noise=0.0, holes=False):
    rng = np.random.default_rng(seed)
    depth = np.full((CAM.height, CAM.width), 3.0, np.float32)
    v = np.arange(CAM.height)[:, None]
    depth[v[:, 0] > 170] = (3.0 - (v[v[:, 0] > 170] - 170) * 0.015).astype(np.float32)  # a floor
    masks = []
    for _ in range(4):
        x0, y0 = rng.integers(0, CAM.width - 40), rng.integers(0, CAM.height - 40)
        x1, y1 = x0 + rng.integers(8, 90), y0 + rng.integers(8, 90)
        depth[y0:y1, x0:x1] = rng.uniform(1.2, 2.8)
        exact = np.zeros(depth.shape, bool)
        exact[y0:y1, x0:x1] = True
        masks.append(dilate(exact, int(rng.integers(1, 6))))
    depth = (depth + rng.normal(0, noise, depth.shape) * depth ** 2).astype(np.float32)
    if holes:
        depth[rng.random(depth.shape) < 0.02] = np.nan
        depth[40:70, 10:50] = np.inf
    return depth, np.stack(masks)


@pytest.mark.parametrize('seed, noise, holes', [(0, 0.0, False), (1, 0.0015, False), (2, 0.0015, True),
                                                (3, 0.004, True), (4, 0.0, True)])
def test_pass_3_kernel_matches_the_numpy_it_replaced(monkeypatch, seed, noise, holes):
    import vizion3d_ros.core.lifting.trimming as trimming

    kernel = trimming._keep_connected
    checked = []

    def both(*args):
        labels = args[-1]
        expected = _keep_connected_reference(*args[:-1], labels)
        kernel(*args)
        np.testing.assert_array_equal(labels, expected)
        checked.append(int((expected != 0).sum()))

    monkeypatch.setattr(trimming, '_keep_connected', both)
    depth, masks = _noisy_scene(seed, noise, holes)
    trimmed(depth, masks)
    assert checked, 'no instance reached pass 3'


def test_pass_3_kernel_edge_cases():
    import vizion3d_ros.core.lifting.trimming as trimming

    f4 = np.float32
    z = np.full((6, 7), 2.0, np.float32)
    no = np.zeros((6, 7), bool)
    labels = np.ones((6, 7), np.int32)
    crop = np.ones((3, 3), bool)
    # no band pixels at all: nothing changes
    trimming._keep_connected(crop, crop, no[:3, :3], z, no, no, no, no, 1, 1, np.zeros(0, np.int64), f4(3), f4(3),
                             f4(0.03), f4(0.01), labels)
    assert (labels == 1).all()
    # one band pixel at the window's corner, away from an empty core: a piece of its own that does not
    # leak (all its neighbours are mask), kept while no deeper than the limit, else it loses its label
    core = np.zeros((2, 2), bool)
    args = (np.ones((2, 2), bool), core, np.ones((2, 2), bool), z, no, no, no, no, 0, 0, np.array([0], np.int64),
            f4(3))
    trimming._keep_connected(*args, f4(3), f4(0.03), f4(0.01), labels)
    assert (labels == 1).all()
    trimming._keep_connected(*args, f4(1), f4(0.03), f4(0.01), labels)
    assert labels[0, 0] == 0 and labels.sum() == labels.size - 1
    # read-only inputs and views match the kernel's one signature
    ro = np.zeros((6, 7), bool)
    ro.flags.writeable = False
    zr = z.copy()
    zr.flags.writeable = False
    trimming._keep_connected(crop, crop, ro[:3, :3], zr, ro, ro, ro, ro, 1, 1, np.array([8], np.int64)[:1],
                             f4(3), f4(3), f4(0.03), f4(0.01), labels)
    assert len(trimming._keep_connected.dispatcher.signatures) == 1


def test_one_pixel_empty_and_depthless_masks():
    depth, exact = wall_with_card()
    one = np.zeros_like(exact)
    one[10, 10] = True
    empty = np.zeros_like(exact)
    depthless = np.zeros_like(exact)
    depthless[180:230, 200:300] = True
    depth[170:240, 190:310] = np.nan
    masks = np.stack([dilate(exact, 4), one, empty, depthless])
    labels = trimmed(depth, masks, scores=np.array([0.9, 0.8, 0.7, 0.6]))
    assert (labels == 1)[exact].all() and not (labels == 1)[dilate(exact, 4) & ~exact].any()
    assert labels[10, 10] == 2  # too small to have a core: never trimmed
    assert not (labels == 3).any()
    np.testing.assert_array_equal(labels == 4, depthless)  # no depth to judge by: nothing trimmed


def _in_front_reference(smooth, w, band, core, noise, front_tolerance):
    """The numpy of commit a1c0e2f."""
    with np.errstate(invalid='ignore'):
        z0 = smooth[core]
        gx = (smooth[core + 1] - smooth[core - 1]) * np.float32(0.5)
        gy = (smooth[core + w] - smooth[core - w]) * np.float32(0.5)
        gx[~np.isfinite(gx)] = 0
        gy[~np.isfinite(gy)] = 0
        dy, dx = np.divmod(band, w)
        qy, qx = np.divmod(core, w)
        expected = z0 + gx * (dx - qx) + gy * (dy - qy)
        margin = expected * front_tolerance + 0.002 + 3.0 * noise * expected ** 2
        return smooth[band] < expected - margin


def test_in_front_kernel_matches_the_numpy_it_replaced():
    import vizion3d_ros.core.lifting.trimming as trimming

    rng = np.random.default_rng(2)
    h, w = 60, 80
    v, u = np.mgrid[0:h, 0:w]
    smooth = (2.0 + 0.01 * u - 0.02 * v + rng.normal(0, 0.01, (h, w))).astype(np.float32)
    smooth[rng.random((h, w)) < 0.05] = np.inf  # no depth: flat slopes, or no answer
    smooth[rng.random((h, w)) < 0.02] = np.nan
    inner = np.flatnonzero(((v > 0) & (v < h - 1) & (u > 0) & (u < w - 1)).reshape(-1))
    core = rng.choice(inner, 3000)
    band = rng.integers(0, h * w, 3000)
    for noise, tol in ((0.0, 0.0), (0.0015, 0.0), (0.004, 0.01)):
        got = trimming._in_front_of_core(smooth.reshape(-1), w, band, core, noise, tol)
        np.testing.assert_array_equal(got, _in_front_reference(smooth.reshape(-1), w, band, core, noise, tol))
        assert got.any() and not got.all()
    empty = np.zeros(0, np.int64)
    assert trimming._in_front_of_core(smooth.reshape(-1), w, empty, empty, 0.0, 0.0).size == 0
