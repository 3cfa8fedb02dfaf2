"""sensor_msgs <-> numpy, with the real generated message classes."""
import array

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from vizion3d_ros.core.camera.transforms import cloud_to_camera_gl
from vizion3d_ros.core.render.colors import recolor
from vizion3d_ros.ros.conversions import (
    MessageFormatError,
    _with_data,
    camera_info_to_intrinsics,
    image_to_rgb,
    mono8_to_image,
    pack_rgb,
    pointcloud2_to_arrays,
    rgb_to_image,
    xyzrgb_to_pointcloud2,
)


def make_image(arr, encoding, pad=0):
    h, w = arr.shape[:2]
    ch = 1 if arr.ndim == 2 else arr.shape[2]
    rows = np.zeros((h, w * ch + pad), np.uint8)
    rows[:, :w * ch] = arr.reshape(h, -1)
    return Image(height=h, width=w, encoding=encoding, step=w * ch + pad, data=rows.tobytes())


@pytest.fixture
def rgb(rng):
    return rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize('pad', [0, 5])
def test_colour_encodings_give_rgb(rgb, pad):
    np.testing.assert_array_equal(image_to_rgb(make_image(rgb, 'rgb8', pad)), rgb)
    np.testing.assert_array_equal(image_to_rgb(make_image(rgb[:, :, ::-1], 'bgr8', pad)), rgb)
    alpha = np.full(rgb.shape[:2] + (1,), 7, np.uint8)
    np.testing.assert_array_equal(image_to_rgb(make_image(np.concatenate([rgb, alpha], 2), 'rgba8', pad)), rgb)
    bgra = np.concatenate([rgb[:, :, ::-1], alpha], 2)
    np.testing.assert_array_equal(image_to_rgb(make_image(bgra, 'bgra8', pad)), rgb)
    gray = rgb[:, :, 0]
    np.testing.assert_array_equal(image_to_rgb(make_image(gray, 'mono8', pad)), np.dstack([gray] * 3))


def test_rgb_image_is_a_view_of_the_message_buffer(rgb):
    msg = make_image(rgb, 'rgb8')
    view = image_to_rgb(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


def test_bad_images_are_rejected_with_reasons(rgb):
    with pytest.raises(MessageFormatError, match='unsupported image encoding'):
        image_to_rgb(make_image(rgb, '32FC1'))
    short = make_image(rgb, 'rgb8')
    short.data = short.data[:-10]
    with pytest.raises(MessageFormatError, match='needs'):
        image_to_rgb(short)
    small_step = make_image(rgb, 'rgb8')
    small_step.step = 3
    with pytest.raises(MessageFormatError, match='step'):
        image_to_rgb(small_step)
    with pytest.raises(MessageFormatError, match='empty'):
        image_to_rgb(Image(encoding='rgb8'))


def test_rgb_and_mono8_images_round_trip(rgb):
    np.testing.assert_array_equal(image_to_rgb(rgb_to_image(rgb)), rgb)
    np.testing.assert_array_equal(image_to_rgb(rgb_to_image(rgb, encoding='bgr8')), rgb)
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    msg = mono8_to_image(mask)
    assert (msg.width, msg.height, msg.encoding) == (5, 4, 'mono8')
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.uint8).reshape(4, 5), mask * 255)


def test_cloud_round_trip_organised_with_nan(rng):
    xyz = rng.normal(size=(12, 3)).astype(np.float32)
    xyz[3] = np.nan
    colors = rng.integers(0, 256, size=(12, 3), dtype=np.uint8)
    msg = xyzrgb_to_pointcloud2(xyz, colors, width=4, height=3)
    assert msg.is_dense is False and msg.row_step == 64
    arr = pointcloud2_to_arrays(msg)
    assert (arr.width, arr.height, arr.organized) == (4, 3, True)
    np.testing.assert_array_equal(arr.xyz, xyz)
    np.testing.assert_array_equal(arr.rgb, colors)
    assert np.shares_memory(arr.xyz, np.frombuffer(msg.data, np.uint8))


def cloud_with_layout(xyz, point_step, offsets, extra_fields=(), big_endian=False, row_pad=0, width=None,
                      height=1, rgb=None, rgb_name='rgb', rgb_type=PointField.FLOAT32):
    n = len(xyz)
    width = n if width is None else width
    end = '>' if big_endian else '<'
    pts = np.zeros((n, point_step), np.uint8)
    for k, off in enumerate(offsets):
        pts[:, off:off + 4] = xyz[:, k].astype(end + 'f4').view(np.uint8).reshape(n, 4)
    fields = [PointField(name=c, offset=o, datatype=PointField.FLOAT32, count=1) for c, o in zip('xyz', offsets)]
    if rgb is not None:
        off = point_step - 4
        pts[:, off:off + 4] = pack_rgb(rgb).astype(end + 'u4').view(np.uint8).reshape(n, 4)
        fields.append(PointField(name=rgb_name, offset=off, datatype=rgb_type, count=1))
    fields += list(extra_fields)
    rows = np.zeros((height, width * point_step + row_pad), np.uint8)
    rows[:, :width * point_step] = pts.reshape(height, -1)
    return PointCloud2(height=height, width=width, fields=fields, is_bigendian=big_endian,
                       point_step=point_step, row_step=width * point_step + row_pad, data=rows.tobytes())


@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('row_pad', [0, 8])
def test_foreign_layouts_extra_fields_padding_and_endianness(rng, big_endian, row_pad):
    xyz = rng.normal(size=(6, 3)).astype(np.float32)
    colors = rng.integers(0, 256, size=(6, 3), dtype=np.uint8)
    intensity = PointField(name='intensity', offset=16, datatype=PointField.FLOAT32, count=1)
    msg = cloud_with_layout(xyz, 32, (4, 8, 12), [intensity], big_endian=big_endian, row_pad=row_pad,
                            width=3, height=2, rgb=colors, rgb_name='rgba', rgb_type=PointField.UINT32)
    arr = pointcloud2_to_arrays(msg)
    np.testing.assert_array_equal(arr.xyz, xyz)
    np.testing.assert_array_equal(arr.rgb, colors)


def test_cloud_without_colour_and_empty_cloud(rng):
    xyz = rng.normal(size=(5, 3)).astype(np.float32)
    arr = pointcloud2_to_arrays(cloud_with_layout(xyz, 12, (0, 4, 8)))
    assert arr.rgb is None and not arr.organized
    np.testing.assert_array_equal(arr.xyz, xyz)
    with pytest.raises(MessageFormatError, match=r'empty \(0x1 points\)'):
        pointcloud2_to_arrays(xyzrgb_to_pointcloud2(np.zeros((0, 3)), np.zeros((0, 3), np.uint8)))


def test_overlapping_fields_and_surplus_data_are_rejected(rng):
    xyz = rng.normal(size=(4, 3)).astype(np.float32)
    with pytest.raises(MessageFormatError, match="'y' \\(offset 2\\) and 'z' \\(offset 4\\) overlap"):
        pointcloud2_to_arrays(cloud_with_layout(xyz, 16, (8, 2, 4)))
    with pytest.raises(MessageFormatError, match="'x' .* and 'rgb' .* overlap"):
        pointcloud2_to_arrays(cloud_with_layout(xyz, 16, (12, 0, 4), rgb=np.zeros((4, 3), np.uint8)))
    msg = cloud_with_layout(xyz, 12, (0, 4, 8))
    msg.data = bytes(msg.data) + b'\0' * 12
    with pytest.raises(MessageFormatError, match='more than row_step\\*height = 48'):
        pointcloud2_to_arrays(msg)


@pytest.mark.parametrize('break_it, reason', [
    (lambda m: setattr(m, 'fields', m.fields[1:]), "no 'x' field"),
    (lambda m: setattr(m.fields[2], 'datatype', PointField.FLOAT64), "field 'z' must be one FLOAT32"),
    (lambda m: setattr(m, 'data', m.data[:-1]), 'need'),
    (lambda m: setattr(m, 'point_step', 8), 'does not fit'),
    (lambda m: setattr(m, 'row_step', 3), 'row_step'),
    (lambda m: setattr(m.fields[3], 'datatype', PointField.UINT8), 'packed 4-byte colour'),
])
def test_malformed_clouds_are_rejected_with_reasons(rng, break_it, reason):
    msg = xyzrgb_to_pointcloud2(rng.normal(size=(8, 3)), np.zeros((8, 3), np.uint8), width=4, height=2)
    break_it(msg)
    with pytest.raises(MessageFormatError, match=reason):
        pointcloud2_to_arrays(msg)


def test_camera_info_to_intrinsics():
    info = CameraInfo(width=640, height=480, k=[500.0, 0, 320, 0, 510, 240, 0, 0, 1])
    cam = camera_info_to_intrinsics(info, 640, 480)
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (500, 510, 320, 240, 640, 480)
    with pytest.raises(MessageFormatError, match='camera_info is for 640x480'):
        camera_info_to_intrinsics(info, 320, 240)
    with pytest.raises(MessageFormatError, match='not a valid camera matrix'):
        camera_info_to_intrinsics(CameraInfo(width=640, height=480), 640, 480)
    bad = CameraInfo(width=640, height=480, k=[float('nan'), 0, 320, 0, 510, 240, 0, 0, 1])
    with pytest.raises(MessageFormatError):
        camera_info_to_intrinsics(bad, 640, 480)


def test_built_cloud_data_is_a_plain_resizable_byte_array(rng):
    xyz = rng.normal(size=(6, 3))  # float64 in: cast to float32 column by column
    msg = xyzrgb_to_pointcloud2(xyz, rng.integers(0, 256, size=(6, 3), dtype=np.uint8), width=np.int64(3),
                                height=np.int64(2))  # numpy ints pass the message's type checks
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B' and len(msg.data) == 96
    assert (msg.width, msg.height, msg.row_step) == (3, 2, 48)
    msg.data.append(0)  # BufferError while a numpy view of the buffer is alive
    np.testing.assert_array_equal(np.frombuffer(msg.data, '<f4', count=24).reshape(6, 4)[:, :3],
                                  xyz.astype(np.float32))


class _UncheckedMessage:
    """A message class of a generator without ``check_fields``, whose setter keeps an array.array."""

    __slots__ = ('_data', 'height')

    def __init__(self, height: int = 0) -> None:
        self.height, self._data = height, array.array('B')

    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        self._data = value if isinstance(value, array.array) else array.array('B', value)


@pytest.mark.parametrize('cls', [PointCloud2, Image, _UncheckedMessage])
def test_messages_take_the_filled_buffer_itself(cls):
    data = array.array('B', b'abc')
    msg = _with_data(cls, data, height=1)
    assert msg.data is data and msg.height == 1


def test_strided_inputs_and_lists_build_the_same_cloud(rng):
    block = rng.normal(size=(5, 4)).astype(np.float32)
    colours = rng.integers(0, 256, size=(5, 3), dtype=np.uint8)
    expected = xyzrgb_to_pointcloud2(np.ascontiguousarray(block[:, :3]), colours)
    from_views = xyzrgb_to_pointcloud2(block[:, :3], np.ascontiguousarray(colours[:, ::-1])[:, ::-1])
    from_lists = xyzrgb_to_pointcloud2(block[:, :3].tolist(), colours.tolist())
    assert bytes(from_views.data) == bytes(expected.data) == bytes(from_lists.data)


def test_packed_colour_is_little_endian_0x00rrggbb():
    rgb = np.array([[0x12, 0x34, 0x56], [255, 255, 255], [0, 0, 0]], np.uint8)
    np.testing.assert_array_equal(pack_rgb(rgb), [0x123456, 0xFFFFFF, 0])
    assert pack_rgb(rgb).dtype == np.uint32
    msg = xyzrgb_to_pointcloud2(np.zeros((3, 3)), rgb)
    assert bytes(msg.data)[12:16] == bytes([0x56, 0x34, 0x12, 0])
    assert msg.is_dense  # white packed as a float is a tiny finite number, not NaN


def test_is_dense_sees_every_coordinate(rng):
    for k in range(3):
        xyz = rng.normal(size=(4, 3))
        xyz[2, k] = np.inf
        assert xyzrgb_to_pointcloud2(xyz, np.zeros((4, 3), np.uint8)).is_dense is False


def test_groups_paint_the_same_colours_as_recolor(rng):
    n = 50
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    colours = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    mask = np.zeros(n, bool)
    mask[30:45] = True
    groups = [np.array([1, 5, 9, 31], np.uint32), mask, np.arange(40, 50)]  # overlapping: later wins
    msg = xyzrgb_to_pointcloud2(xyz, colours, width=10, height=5, groups=groups)
    out = pointcloud2_to_arrays(msg)
    np.testing.assert_array_equal(out.rgb, recolor(colours, groups))
    np.testing.assert_array_equal(out.xyz, xyz)
    np.testing.assert_array_equal(pointcloud2_to_arrays(xyzrgb_to_pointcloud2(xyz, colours, groups=[])).rgb,
                                  colours)


def test_colours_must_match_the_points(rng):
    with pytest.raises(ValueError, match=r'expected \(4, 3\) RGB colours'):
        xyzrgb_to_pointcloud2(rng.normal(size=(4, 3)), np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match='does not match'):
        xyzrgb_to_pointcloud2(rng.normal(size=(4, 3)), np.zeros((4, 3), np.uint8), width=3)


def test_big_endian_cloud_reads_as_native_float32(rng):
    xyz = rng.normal(size=(6, 3)).astype(np.float32)
    arr = pointcloud2_to_arrays(cloud_with_layout(xyz, 16, (0, 4, 8), big_endian=True))
    assert arr.xyz.dtype == np.float32 and arr.xyz.dtype.isnative and arr.xyz.flags.c_contiguous
    np.testing.assert_array_equal(arr.xyz, xyz)


def test_images_from_strided_views_and_mono8(rng):
    rgb = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    padded_bgr = image_to_rgb(make_image(rgb[:, :, ::-1], 'bgr8', pad=5))  # negative-stride view
    for enc in ('rgb8', 'bgr8'):
        msg = rgb_to_image(padded_bgr, encoding=enc)
        assert isinstance(msg.data, array.array) and msg.step == 21 and len(msg.data) == 6 * 21
        np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    gray = image_to_rgb(make_image(rgb[:, :, 1], 'mono8', pad=3))
    assert gray.flags.c_contiguous and gray.flags.writeable
    np.testing.assert_array_equal(gray, np.repeat(rgb[:, :, 1:2], 3, axis=2))
    counts = mono8_to_image(np.array([[0, 3], [7, 0]], np.uint8))
    assert bytes(counts.data) == bytes([0, 3, 7, 0]) and counts.step == 2
    empty = mono8_to_image(np.zeros((0, 4), bool))
    assert (empty.width, empty.height, len(empty.data)) == (0, 0, 0)


def test_optical_to_gl_flips_y_and_z_of_any_layout(rng):
    block = rng.normal(size=(300, 4))
    block[2, 1] = np.nan
    views = (block[:, :3], block[:, :3].astype(np.float32), np.asarray(block, np.float32)[:, :3],
             np.asarray(block, np.float32)[::-1, 1:], np.asarray(block, np.float32)[:, 1:])
    for pts in views:
        gl = cloud_to_camera_gl(pts)
        assert gl.dtype == np.float32 and gl.flags.c_contiguous and not np.shares_memory(gl, pts)
        expected = np.ascontiguousarray(pts, np.float32) * np.array([1, -1, -1], np.float32)
        np.testing.assert_array_equal(gl, expected)


def test_received_cloud_to_gl_points(rng):
    xyz = rng.normal(size=(1000, 3)).astype(np.float32)
    msg = xyzrgb_to_pointcloud2(xyz, np.zeros((1000, 3), np.uint8), width=40, height=25)
    gl = cloud_to_camera_gl(pointcloud2_to_arrays(msg).xyz)  # x, y, z views with a 16-byte stride
    np.testing.assert_array_equal(gl, xyz * np.array([1, -1, -1], np.float32))
