"""Trimming of mask borders that spill off an object (vizion3d_ros.core.trimming)."""
import cv2
import numpy as np
import pytest

from vizion3d_ros.core.camera import PinholeIntrinsics
from vizion3d_ros.core.lifting import label_image, mask_boxes
from vizion3d_ros.core.trimming import TrimConfig, batch_quantiles, box_slice, trim_spill

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
