"""CameraInfo -> intrinsics: K or P, binning, ROI, size checks and bad matrices."""
from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, RegionOfInterest

from vizion3d_ros.ros.conversions import CameraInfoError, camera_model, is_rectified

K = [500.0, 0.0, 319.5, 0.0, 510.0, 239.5, 0.0, 0.0, 1.0]
P = [480.0, 0.0, 321.0, 0.0, 0.0, 490.0, 241.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def info(**kw) -> CameraInfo:
    msg = CameraInfo(width=640, height=480, k=K, p=P, d=[0.0] * 5, distortion_model='plumb_bob')
    for k, v in kw.items():
        setattr(msg, k, v)
    return msg


def _f(cam):
    return (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height)


def test_auto_uses_p_for_rectified_images_and_k_otherwise():
    assert is_rectified(info()) and is_rectified(info(d=[]))
    m = camera_model(info(), 640, 480)
    assert m.matrix == 'P' and _f(m.intrinsics) == (480, 490, 321, 241, 640, 480) and not m.distortion_ignored
    distorted = camera_model(info(d=[0.1, 0, 0, 0, 0]), 640, 480)
    assert distorted.matrix == 'K' and _f(distorted.intrinsics) == (500, 510, 319.5, 239.5, 640, 480)
    assert distorted.distortion_ignored
    no_p = camera_model(info(p=[0.0] * 12), 640, 480)
    assert no_p.matrix == 'K' and not no_p.distortion_ignored


def test_explicit_sources():
    assert camera_model(info(), 640, 480, 'K').matrix == 'K'
    p = camera_model(info(d=[0.1, 0, 0, 0, 0]), 640, 480, 'P')
    assert p.matrix == 'P' and p.intrinsics.fx == 480 and not p.distortion_ignored
    with pytest.raises(ValueError, match='intrinsics source'):
        camera_model(info(), 640, 480, 'R')


def test_binning_scales_focal_lengths_and_moves_the_principal_point_to_block_centres():
    # 2x2 binning of a 1280x960 sensor gives 640x480 images
    m = camera_model(info(width=1280, height=960, binning_x=2, binning_y=2), 640, 480, 'K')
    assert _f(m.intrinsics) == (250, 255, (319.5 - 0.5) / 2, (239.5 - 0.5) / 2, 640, 480)
    # binning 0 means 1
    unbinned = camera_model(info(binning_x=0, binning_y=0), 640, 480, 'K').intrinsics
    assert _f(unbinned)[:4] == (500, 510, 319.5, 239.5)
    # block 50 holds original pixels 100 and 101: its centre, x = 100.5 there, is binned pixel 50
    cam = m.intrinsics
    assert (100.5 - 319.5) / 500 * cam.fx + cam.cx == pytest.approx(50.0)


def test_roi_offsets_the_principal_point_and_sets_the_image_size():
    roi = RegionOfInterest(x_offset=100, y_offset=50, width=320, height=240)
    m = camera_model(info(roi=roi), 320, 240, 'K')
    assert _f(m.intrinsics) == (500, 510, 219.5, 189.5, 320, 240)
    binned = camera_model(info(roi=roi, binning_x=2, binning_y=2), 160, 120, 'K')
    assert _f(binned.intrinsics) == (250, 255, (219.5 - 0.5) / 2, (189.5 - 0.5) / 2, 160, 120)


@pytest.mark.parametrize('msg, size, text', [
    (info(), (320, 240), 'camera_info is for 640x480 images but the image is 320x240'),
    (info(binning_x=2, binning_y=2), (640, 480), 'is for 320x240 images (640x480 sensor, binning 2x2)'),
    (info(roi=RegionOfInterest(x_offset=0, y_offset=0, width=320, height=240)), (640, 480),
     'ROI 320x240 at 0,0'),
])
def test_size_mismatches_have_their_own_reason(msg, size, text):
    with pytest.raises(CameraInfoError) as exc:
        camera_model(msg, *size)
    assert exc.value.reason == 'camera_info_size_mismatch' and text in str(exc.value)


def test_unsized_camera_info_accepts_any_image():
    assert camera_model(info(width=0, height=0), 320, 240).intrinsics.width == 320


@pytest.mark.parametrize('msg, text', [
    (info(k=[0.0] * 9, p=[0.0] * 12), 'K is not a valid camera matrix'),
    (info(k=[float('nan')] + K[1:], d=[0.1, 0, 0, 0, 0]), 'fx=nan'),
    (info(k=K[:2] + [float('inf')] + K[3:], d=[0.1, 0, 0, 0, 0]), 'cx=inf'),
    (info(k=[-500.0] + K[1:], p=[0.0] * 12), 'must be finite and positive'),
    (info(p=[float('nan')] * 12, k=[0.0] * 9), 'K is not a valid'),  # NaN P is not "set": auto falls back to K
    (info(roi=RegionOfInterest(x_offset=600, y_offset=0, width=320, height=240)), 'does not fit'),
])
def test_unusable_matrices_are_bad_camera_info(msg, text):
    with pytest.raises(CameraInfoError) as exc:
        camera_model(msg, 320 if msg.roi.width else 640, 240 if msg.roi.width else 480)
    assert exc.value.reason == 'bad_camera_info' and text in str(exc.value)


def test_explicit_p_must_be_valid():
    with pytest.raises(CameraInfoError, match='P is not a valid camera matrix') as exc:
        camera_model(info(p=[0.0] * 12), 640, 480, 'P')
    assert exc.value.reason == 'bad_camera_info'
    assert np.isfinite(camera_model(info(), 640, 480, 'P').intrinsics.cx)
