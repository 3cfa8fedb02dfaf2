"""The node's debug overlay: masks tinted in place, nothing else touched, boxes and labels drawn."""
import numpy as np
import pytest

from vizion3d_ros.core.lifting.geometry import ObjectGeometry
from vizion3d_ros.core.pipeline import LiftedObject
from vizion3d_ros.core.render.colors import palette
from vizion3d_ros.core.render.overlay import render_overlay, tint_masks

H, W = 120, 240


def make_obj(k, mask, box):
    return LiftedObject(id=k + 1, class_id=k, label=f'thing{k}', confidence=0.8, bbox_2d=np.asarray(box, np.float32),
                        mask=mask, point_indices=np.arange(3, dtype=np.uint32), geometry=ObjectGeometry.empty())


@pytest.fixture
def image(rng):
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def disc(cy, cx, r):
    yy, xx = np.mgrid[:H, :W]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_pixels_in_a_mask_take_its_colour_and_others_stay(image):
    mask = disc(80, 60, 15)
    box = (45, 65, 75, 95)
    original = image.copy()
    out = render_overlay(image, [make_obj(0, mask, box)])
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(image, original)  # the input is not drawn on
    color = palette(1)[0].astype(float)
    inner = disc(80, 60, 12)  # clear of the box outline, drawn over the mask's rim
    blended = out[inner].astype(float)
    np.testing.assert_allclose(blended, (original[inner] * 0.5 + color * 0.5), atol=1.0)
    assert np.abs(blended - color).mean() < np.abs(original[inner].astype(float) - color).mean()
    # Far from the mask, its box and the label above it nothing changes.
    far = np.ones((H, W), bool)
    far[40:100, 40:220] = False  # mask, box and the label band above the box
    np.testing.assert_array_equal(out[far], original[far])
    # The box outline (its bottom edge and right side lie outside the mask) and the label band were drawn.
    box_color = palette(1)[0]
    np.testing.assert_array_equal(out[95, 47:74], np.broadcast_to(box_color, (27, 3)))
    np.testing.assert_array_equal(out[70:94, 75], np.broadcast_to(box_color, (24, 3)))
    assert np.any(out[50:65, 45:140] != original[50:65, 45:140])


def test_overlapping_masks_are_tinted_once_by_the_first_object(image):
    a, b = disc(60, 60, 20), disc(60, 90, 20)
    out = tint_masks(image, [a, b], np.array([[255, 0, 0], [0, 0, 255]], np.uint8))
    both, only_b = a & b, b & ~a
    expect_a = image[both] * 0.5 + np.array([255, 0, 0]) * 0.5
    np.testing.assert_allclose(out[both], expect_a, atol=1.0)
    np.testing.assert_allclose(out[only_b], image[only_b] * 0.5 + np.array([0, 0, 255]) * 0.5, atol=1.0)
    np.testing.assert_array_equal(out[~(a | b)], image[~(a | b)])


def test_each_object_gets_its_instance_colour(image):
    flat = np.full_like(image, 100)
    objs = [make_obj(0, disc(30, 30, 8), (20, 20, 40, 40)), make_obj(1, disc(90, 120, 8), (110, 80, 130, 100))]
    out = render_overlay(flat, objs).astype(int)
    pal = palette(2).astype(int)
    np.testing.assert_allclose(out[30, 30], (100 + pal[0]) / 2, atol=1)
    np.testing.assert_allclose(out[90, 120], (100 + pal[1]) / 2, atol=1)
    assert not np.array_equal(out[30, 30], out[90, 120])


def test_mono_and_empty_inputs(image):
    gray = image[:, :, 0]
    out = render_overlay(gray, [])
    assert out.shape == (H, W, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)
    out = render_overlay(image, [])
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_a_mask_of_another_size_is_refused(image):
    with pytest.raises(ValueError, match='masks are'):
        render_overlay(image, [make_obj(0, np.zeros((H // 2, W // 2), bool), (0, 0, 5, 5))])
