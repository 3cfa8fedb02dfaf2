"""A catalogue of malformed and hostile inputs for vizion3d_node, each built from one valid real frame.

The valid frame is the real TUM RGB-D frame (``../shared/data/rgbd/tum_desk``, loaded with
:mod:`vizion3d_ros.core.io.rgbd`) converted to messages with the package's own conversions: an rgb8
Image, a pinhole CameraInfo and an organised 640x480 XYZRGB PointCloud2 (16-byte points, NaN where
the depth is missing). Every :class:`HostileInput` changes one thing about it.

:data:`EXPECTED` is the one table of what the node must do with each input: drop it for a reason
(a key of :data:`vizion3d_ros.ros.drops.DROP_REASONS`, as reported in ``/diagnostics`` as
``dropped/<key>`` and logged as ``frame dropped (<key>, ...)``), or :data:`ACCEPTED` it (process it
and publish a result with its stamp). A set means any of its outcomes is right.

Used by ``test_bad_input.py``; importable on its own (``python test/hostile_inputs.py`` prints the table).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from vizion3d_ros.core.io.rgbd import RGBDFrame, depth_to_points_optical, load_rgbd_folder
from vizion3d_ros.ros.conversions import rgb_to_image, xyzrgb_to_pointcloud2
from vizion3d_ros.tools.player import camera_info_msg

#: The outcome of an input the node must process (a result with its stamp is published).
ACCEPTED = 'accepted'
#: Stamp handling of an input (see :class:`HostileInput`).
NEXT, BEFORE_LAST_PROCESSED = 'next', 'before_last_processed'

#: name -> what the node must do with it: a drop reason key, ACCEPTED, or a set of acceptable outcomes.
EXPECTED: dict[str, str | frozenset[str]] = {
    # ---- PointCloud2 layout
    'cloud_missing_x_field': 'bad_cloud',
    'cloud_missing_z_field': 'bad_cloud',
    'cloud_without_fields': 'bad_cloud',
    'cloud_xyz_fields_overlap': 'bad_cloud',
    'cloud_field_offset_past_point_step': 'bad_cloud',
    'cloud_field_offset_huge': 'bad_cloud',
    'cloud_point_step_too_small': 'bad_cloud',
    'cloud_point_step_zero': 'bad_cloud',
    'cloud_row_step_too_small': 'bad_cloud',
    'cloud_row_step_too_large_for_data': 'bad_cloud',
    'cloud_data_truncated': 'bad_cloud',
    'cloud_data_one_byte_short': 'bad_cloud',
    'cloud_data_longer_than_declared': 'bad_cloud',
    'cloud_empty_0x0': 'bad_cloud',
    'cloud_width_zero': 'bad_cloud',
    'cloud_x_int8': 'bad_cloud',
    'cloud_x_float64': 'bad_cloud',
    'cloud_x_count_3': 'bad_cloud',
    'cloud_x_unknown_datatype': 'bad_cloud',
    'cloud_rgb_uint8': 'bad_cloud',
    'cloud_huge_declared_size': 'bad_cloud',
    'cloud_big_endian': ACCEPTED,  # really big-endian bytes with is_bigendian set: a valid cloud
    'cloud_unorganised_height_1': ACCEPTED,
    'cloud_all_nan': ACCEPTED,  # nothing in range: an empty result, not an error
    'cloud_with_inf': ACCEPTED,
    'cloud_is_dense_true_but_nan': ACCEPTED,  # is_dense lies; NaN points are skipped anyway
    'cloud_without_rgb': ACCEPTED,
    'cloud_organised_half_size': ACCEPTED,  # a 320x240 cloud for a 640x480 image: points are projected
    'cloud_huge_coordinates': ACCEPTED,  # 1e38 m: projection overflows float32
    'cloud_behind_camera': ACCEPTED,  # z < 0 everywhere: nothing projects into the image
    # ---- Image
    'image_32FC1': 'bad_image',
    'image_yuv422': 'bad_image',
    'image_empty_encoding': 'bad_image',
    'image_step_too_small': 'bad_image',
    'image_data_truncated': 'bad_image',
    'image_zero_size': 'bad_image',
    'image_huge_declared_size': 'bad_image',  # 100000x100000 with 1 KB of data: must not allocate
    'image_mono8': ACCEPTED,
    'image_padded_rows': ACCEPTED,
    # ---- CameraInfo
    'info_all_zero_k_and_p': 'bad_camera_info',
    'info_nan_k_and_p': 'bad_camera_info',
    'info_inf_fx': 'bad_camera_info',
    'info_negative_fx': 'bad_camera_info',
    'info_zero_k_distorted': 'bad_camera_info',  # distortion set: K is used, and K is zero
    'info_roi_outside_sensor': 'bad_camera_info',
    'info_size_mismatch': 'camera_info_size_mismatch',
    'info_binning_size_mismatch': 'camera_info_size_mismatch',
    'info_roi_size_mismatch': 'camera_info_size_mismatch',
    'info_huge_size': 'camera_info_size_mismatch',
    # ---- frames and stamps
    # tf_unavailable where tf2_ros is installed (the TF lookup of an unknown frame times out)
    'cloud_in_other_frame': frozenset({'frame_mismatch', 'tf_unavailable'}),
    'stamp_older_than_last_processed': 'out_of_order',
    'cloud_stamp_beyond_sync_slop': 'unmatched',
}

#: Inputs whose expected drop the node does not make yet: name -> what is missing.


@dataclass(repr=False)
class ValidFrame:
    """The frame every hostile input is derived from."""

    rgbd: RGBDFrame
    image: Image
    camera_info: CameraInfo
    cloud: PointCloud2
    #: ``(H*W, 3)`` float32 optical-frame points of ``cloud`` (NaN where there is no depth).
    xyz: np.ndarray
    rgb: np.ndarray


@dataclass
class HostileInput:
    """One input frame: each of image, camera_info, cloud is None to reuse the valid one."""

    name: str
    expected: frozenset[str]
    # messages stay out of repr(): assertion messages would print megabytes of data
    image: Image | None = field(default=None, repr=False)
    camera_info: CameraInfo | None = field(default=None, repr=False)
    cloud: PointCloud2 | None = field(default=None, repr=False)
    #: frame_id of the cloud (None: the image's, as a camera driver sends it).
    cloud_frame_id: str | None = None
    #: NEXT: a fresh, increasing stamp; BEFORE_LAST_PROCESSED: older than the last processed frame.
    stamp: str = NEXT
    #: The cloud's stamp minus the image's (seconds); beyond sync_slop the three never match.
    cloud_stamp_offset_s: float = 0.0

    @property
    def accepted(self) -> bool:
        """The node must process this input (and nothing else is acceptable)."""
        return self.expected == {ACCEPTED}

    @property
    def drop_reasons(self) -> frozenset[str]:
        """The acceptable drop reasons (empty for an accepted input)."""
        return self.expected - {ACCEPTED}


def load_valid_frame(folder: str | Path) -> ValidFrame:
    """The real RGB-D frame in ``folder`` as Image + CameraInfo + organised XYZRGB PointCloud2."""
    frame = load_rgbd_folder(folder)
    h, w = frame.depth.shape
    xyz = depth_to_points_optical(frame.depth, frame.camera)
    rgb = frame.color.reshape(-1, 3)
    return ValidFrame(rgbd=frame, image=rgb_to_image(frame.color), camera_info=camera_info_msg(frame, None),
                      cloud=xyzrgb_to_pointcloud2(xyz, rgb, width=w, height=h), xyz=xyz, rgb=rgb)


# ----------------------------------------------------------------------------- message builders

def _fields(*spec: tuple[str, int, int, int]) -> list[PointField]:
    return [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in spec]


F32 = PointField.FLOAT32
XYZRGB = (('x', 0, F32, 1), ('y', 4, F32, 1), ('z', 8, F32, 1), ('rgb', 12, F32, 1))


def _cloud(v: ValidFrame, fields=XYZRGB, data=None, **changes) -> PointCloud2:
    """The valid cloud with ``fields`` (tuples) and any attribute replaced (fresh objects, shared nothing)."""
    src = v.cloud
    attrs = dict(height=src.height, width=src.width, is_bigendian=src.is_bigendian, point_step=src.point_step,
                 row_step=src.row_step, is_dense=src.is_dense)
    attrs.update(changes)
    return PointCloud2(fields=_fields(*fields), data=src.data if data is None else data, **attrs)


def _points_cloud(v: ValidFrame, xyz: np.ndarray, width: int | None = None, height: int = 480) -> PointCloud2:
    width = v.cloud.width if width is None else width
    return xyzrgb_to_pointcloud2(xyz, v.rgb[:len(xyz)], width=width, height=height)


def _replace_field(name: str, **changes) -> tuple:
    return tuple((n, changes.get('offset', o), changes.get('datatype', d), changes.get('count', c))
                 if n == name else (n, o, d, c) for n, o, d, c in XYZRGB)


def _image(v: ValidFrame, data=None, **changes) -> Image:
    src = v.image
    attrs = dict(height=src.height, width=src.width, encoding=src.encoding, is_bigendian=src.is_bigendian,
                 step=src.step)
    attrs.update(changes)
    return Image(data=src.data if data is None else data, **attrs)


def _info(v: ValidFrame, **changes) -> CameraInfo:
    src = v.camera_info
    msg = CameraInfo(width=src.width, height=src.height, distortion_model=src.distortion_model, d=list(src.d),
                     k=list(src.k), r=list(src.r), p=list(src.p))
    for k, value in changes.items():
        setattr(msg, k, value)
    return msg


def _k_p(v: ValidFrame, fn: Callable[[int, float], float]) -> dict:
    """K and P of the valid CameraInfo with ``fn(index, value)`` applied to fx, fy, cx, cy of both."""
    k, p = list(v.camera_info.k), list(v.camera_info.p)
    for i in (0, 2, 4, 5):
        k[i] = fn(i, k[i])
    for i, j in ((0, 0), (2, 2), (5, 4), (6, 5)):
        p[i] = fn(j, p[i])
    return dict(k=k, p=p)


def _big_endian(v: ValidFrame) -> PointCloud2:
    n = len(v.xyz)
    buf = np.empty((n, 4), np.float32)
    buf[:, :3] = v.xyz
    from vizion3d_ros.ros.conversions import pack_rgb
    buf.view(np.uint32)[:, 3] = pack_rgb(v.rgb)
    return _cloud(v, data=buf.byteswap().tobytes(), is_bigendian=True)


def _builders(v: ValidFrame) -> dict[str, Callable[[], dict]]:
    """name -> a function returning the HostileInput's keyword arguments (messages built on demand)."""
    c, w, h = v.cloud, int(v.cloud.width), int(v.cloud.height)
    xyz = v.xyz
    data = bytes(c.data)
    nan_xyz = np.full_like(xyz, np.nan)
    inf_xyz = xyz.copy()
    inf_xyz[::7] = np.inf
    inf_xyz[3::7, 2] = -np.inf
    huge_xyz = np.where(np.isfinite(xyz), np.float32(1e38), np.nan).astype(np.float32)
    behind = xyz * np.float32(-1.0)
    img_w, img_h = int(v.image.width), int(v.image.height)
    padded_step = img_w * 3 + 64
    rows = np.frombuffer(bytes(v.image.data), np.uint8).reshape(img_h, img_w * 3)
    padded = np.zeros((img_h, padded_step), np.uint8)
    padded[:, :img_w * 3] = rows
    mono = np.ascontiguousarray(v.rgbd.color.mean(axis=2).astype(np.uint8))
    return {
        'cloud_missing_x_field': lambda: dict(cloud=_cloud(v, fields=XYZRGB[1:])),
        'cloud_missing_z_field': lambda: dict(cloud=_cloud(v, fields=(XYZRGB[0], XYZRGB[1], XYZRGB[3]))),
        'cloud_without_fields': lambda: dict(cloud=_cloud(v, fields=())),
        'cloud_xyz_fields_overlap': lambda: dict(cloud=_cloud(v, fields=(
            ('x', 0, F32, 1), ('y', 0, F32, 1), ('z', 0, F32, 1), ('rgb', 12, F32, 1)))),
        'cloud_field_offset_past_point_step': lambda: dict(cloud=_cloud(v, fields=_replace_field('z', offset=16))),
        'cloud_field_offset_huge': lambda: dict(cloud=_cloud(v, fields=_replace_field('x', offset=2**32 - 4))),
        'cloud_point_step_too_small': lambda: dict(cloud=_cloud(v, point_step=8, row_step=8 * w)),
        'cloud_point_step_zero': lambda: dict(cloud=_cloud(v, point_step=0, row_step=0)),
        'cloud_row_step_too_small': lambda: dict(cloud=_cloud(v, row_step=16 * w - 16)),
        'cloud_row_step_too_large_for_data': lambda: dict(cloud=_cloud(v, row_step=32 * w)),
        'cloud_data_truncated': lambda: dict(cloud=_cloud(v, data=data[:1000])),
        'cloud_data_one_byte_short': lambda: dict(cloud=_cloud(v, data=data[:-1])),
        'cloud_data_longer_than_declared': lambda: dict(cloud=_cloud(v, data=data + bytes(16 * 1000))),
        'cloud_empty_0x0': lambda: dict(cloud=_cloud(v, data=b'', width=0, height=0, row_step=0)),
        'cloud_width_zero': lambda: dict(cloud=_cloud(v, data=b'', width=0, row_step=0)),
        'cloud_x_int8': lambda: dict(cloud=_cloud(v, fields=_replace_field('x', datatype=PointField.INT8))),
        'cloud_x_float64': lambda: dict(cloud=_cloud(v, fields=_replace_field('x', datatype=PointField.FLOAT64))),
        'cloud_x_count_3': lambda: dict(cloud=_cloud(v, fields=_replace_field('x', count=3))),
        'cloud_x_unknown_datatype': lambda: dict(cloud=_cloud(v, fields=_replace_field('x', datatype=42))),
        'cloud_rgb_uint8': lambda: dict(cloud=_cloud(v, fields=_replace_field('rgb', datatype=PointField.UINT8))),
        'cloud_huge_declared_size': lambda: dict(cloud=_cloud(v, data=data[:1024], width=100_000, height=100_000,
                                                              row_step=16 * 100_000)),
        'cloud_big_endian': lambda: dict(cloud=_big_endian(v)),
        'cloud_unorganised_height_1': lambda: dict(cloud=_cloud(v, width=w * h, height=1, row_step=16 * w * h)),
        'cloud_all_nan': lambda: dict(cloud=_points_cloud(v, nan_xyz)),
        'cloud_with_inf': lambda: dict(cloud=_points_cloud(v, inf_xyz)),
        'cloud_is_dense_true_but_nan': lambda: dict(cloud=_cloud(v, is_dense=True)),
        'cloud_without_rgb': lambda: dict(cloud=_cloud(v, fields=XYZRGB[:3])),
        'cloud_organised_half_size': lambda: dict(cloud=_points_cloud(
            v, xyz.reshape(h, w, 3)[::2, ::2].reshape(-1, 3), width=w // 2, height=h // 2)),
        'cloud_huge_coordinates': lambda: dict(cloud=_points_cloud(v, huge_xyz)),
        'cloud_behind_camera': lambda: dict(cloud=_points_cloud(v, behind)),
        'image_32FC1': lambda: dict(image=_image(v, encoding='32FC1', step=img_w * 4,
                                                 data=bytes(img_w * img_h * 4))),
        'image_yuv422': lambda: dict(image=_image(v, encoding='yuv422', step=img_w * 2,
                                                  data=bytes(img_w * img_h * 2))),
        'image_empty_encoding': lambda: dict(image=_image(v, encoding='')),
        'image_step_too_small': lambda: dict(image=_image(v, step=img_w * 3 - 1)),
        'image_data_truncated': lambda: dict(image=_image(v, data=bytes(v.image.data)[:img_w * 3 * 10])),
        'image_zero_size': lambda: dict(image=_image(v, width=0, height=0, step=0, data=b'')),
        'image_huge_declared_size': lambda: dict(image=_image(v, width=100_000, height=100_000, step=300_000,
                                                              data=bytes(1024))),
        'image_mono8': lambda: dict(image=_image(v, encoding='mono8', step=img_w, data=mono.tobytes())),
        'image_padded_rows': lambda: dict(image=_image(v, step=padded_step, data=padded.tobytes())),
        'info_all_zero_k_and_p': lambda: dict(camera_info=_info(v, k=[0.0] * 9, p=[0.0] * 12)),
        'info_nan_k_and_p': lambda: dict(camera_info=_info(v, **_k_p(v, lambda i, x: math.nan))),
        'info_inf_fx': lambda: dict(camera_info=_info(v, **_k_p(v, lambda i, x: math.inf if i == 0 else x))),
        'info_negative_fx': lambda: dict(camera_info=_info(v, **_k_p(v, lambda i, x: -x if i == 0 else x))),
        'info_zero_k_distorted': lambda: dict(camera_info=_info(v, k=[0.0] * 9, d=[0.1, -0.05, 0.0, 0.0, 0.0])),
        'info_roi_outside_sensor': lambda: dict(camera_info=_info(v, roi=_roi(10, 10, img_w, img_h))),
        'info_size_mismatch': lambda: dict(camera_info=_info(v, width=img_w // 2, height=img_h // 2)),
        'info_binning_size_mismatch': lambda: dict(camera_info=_info(v, binning_x=2, binning_y=2)),
        'info_roi_size_mismatch': lambda: dict(camera_info=_info(v, roi=_roi(0, 0, img_w // 2, img_h // 2))),
        'info_huge_size': lambda: dict(camera_info=_info(v, width=100_000, height=100_000)),
        'cloud_in_other_frame': lambda: dict(cloud_frame_id='lidar'),
        'stamp_older_than_last_processed': lambda: dict(stamp=BEFORE_LAST_PROCESSED),
        'cloud_stamp_beyond_sync_slop': lambda: dict(cloud_stamp_offset_s=-0.5),
    }


def _roi(x: int, y: int, w: int, h: int):
    from sensor_msgs.msg import RegionOfInterest
    return RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h)


def catalogue(valid: ValidFrame, names: list[str] | None = None) -> list[HostileInput]:
    """The hostile inputs (all of :data:`EXPECTED`, in its order, or ``names``)."""
    builders = _builders(valid)
    if set(builders) != set(EXPECTED):
        raise AssertionError(f'EXPECTED and the builders disagree: {sorted(set(builders) ^ set(EXPECTED))}')
    out = []
    for name in names or list(EXPECTED):
        expected = EXPECTED[name]
        expected = frozenset({expected}) if isinstance(expected, str) else frozenset(expected)
        out.append(HostileInput(name=name, expected=expected, **builders[name]()))
    return out


def flood_input(valid: ValidFrame) -> HostileInput:
    """The input sent many times in a row to check that the node's error log is rate limited."""
    return HostileInput(name='flood_cloud_data_truncated', expected=frozenset({'bad_cloud'}),
                        **_builders(valid)['cloud_data_truncated']())


def markdown_table() -> str:
    """The :data:`EXPECTED` table as markdown (name, expected outcome)."""
    lines = ['| input | expected |', '|---|---|']
    for name, exp in EXPECTED.items():
        exp = ' or '.join(sorted(exp)) if not isinstance(exp, str) else exp
        lines.append(f'| `{name}` | {exp} |')
    return '\n'.join(lines)


if __name__ == '__main__':
    print(markdown_table())
