"""Output messages built from core results: ObjectMask3D fields and the annotated cloud."""
from __future__ import annotations

import array
import dataclasses
import math

import numpy as np
import pytest
from geometry_msgs.msg import Point, Quaternion
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from vizion3d_ros.core.lifting.geometry import object_geometry
from vizion3d_ros.core.pipeline import LiftedObject
from vizion3d_ros.core.render.colors import palette
from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray
from vizion3d_ros.ros import messages
from vizion3d_ros.ros.conversions import pointcloud2_to_arrays, xyzrgb_to_pointcloud2
from vizion3d_ros.ros.messages import GRAY, annotated_cloud, objects_to_array_msg, uint32_array

W, H = 8, 6


@pytest.fixture
def cloud_xyz_rgb(rng):
    xyz = rng.normal(size=(W * H, 3)).astype(np.float32)
    xyz[5] = np.nan
    rgb = rng.integers(0, 256, size=(W * H, 3), dtype=np.uint8)
    return xyz, rgb


def _object(k: int, idx: np.ndarray, xyz: np.ndarray) -> LiftedObject:
    mask = np.zeros((H, W), bool)
    mask[1:3, 2 + k:5 + k] = True
    return LiftedObject(id=k + 1, class_id=k, label=f'c{k}', confidence=0.9 - k / 10,
                        bbox_2d=np.array([2, 1, 5, 3], np.float32), mask=mask,
                        point_indices=idx.astype(np.uint32), geometry=object_geometry(xyz, idx))


def test_uint32_array_keeps_values_and_type():
    values = np.array([0, 7, 2**32 - 1, 123456], np.uint32)
    a = uint32_array(values)
    assert isinstance(a, array.array) and a.typecode == 'I'
    np.testing.assert_array_equal(np.frombuffer(a, np.uint32), values)
    assert len(uint32_array(np.array([], np.int64))) == 0


def test_objects_message_fields(cloud_xyz_rgb):
    xyz, rgb = cloud_xyz_rgb
    objs = [_object(0, np.array([1, 2, 9]), xyz), _object(1, np.array([20, 30]), xyz)]
    header = Header(frame_id='cam')
    msg = objects_to_array_msg(objs, header, header, W, H, W, H, 'm.pt', xyz=xyz, rgb=rgb)
    assert [o.id for o in msg.objects] == [1, 2]
    first = msg.objects[0]
    np.testing.assert_array_equal(np.frombuffer(first.point_indices, np.uint32), [1, 2, 9])
    assert (first.mask_roi.x_offset, first.mask_roi.y_offset, first.mask_roi.width, first.mask_roi.height) \
        == (2, 1, 3, 2)
    assert bytes(first.mask.data) == b'\xff' * 6
    np.testing.assert_allclose([first.centroid.x, first.centroid.y, first.centroid.z], xyz[[1, 2, 9]].mean(0),
                               rtol=1e-6)
    obj_cloud = pointcloud2_to_arrays(first.object_cloud)
    np.testing.assert_array_equal(obj_cloud.rgb, rgb[[1, 2, 9]])


def _packed_cloud(xyz, rgb, big_endian: bool = False, name: str = 'rgb', pad: int = 0,
                  alpha: int = 0) -> PointCloud2:
    """x, y, z, an extra intensity field and packed colour, 24-byte points, rows padded by ``pad`` bytes."""
    end = '>' if big_endian else '<'
    dtype = np.dtype({'names': ['x', 'y', 'z', 'intensity', 'c'], 'formats': [end + 'f4'] * 4 + [end + 'u4'],
                      'offsets': [0, 4, 8, 12, 16], 'itemsize': 24})
    pts = np.zeros(len(xyz), dtype)
    for k, c in enumerate('xyz'):
        pts[c] = xyz[:, k]
    pts['intensity'] = np.arange(len(xyz))
    c = rgb.astype(np.uint32)
    pts['c'] = (alpha << 24) | (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    rows = np.zeros((H, W * 24 + pad), np.uint8)
    rows[:, :W * 24] = pts.view(np.uint8).reshape(H, W * 24)
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate(('x', 'y', 'z', 'intensity'))]
    fields.append(PointField(name=name, offset=16, datatype=PointField.UINT32, count=1))
    return PointCloud2(header=Header(frame_id='cam'), height=H, width=W, fields=fields, is_bigendian=big_endian,
                       point_step=24, row_step=W * 24 + pad, is_dense=False, data=rows.tobytes())


@pytest.mark.parametrize('big_endian,pad', [(False, 0), (True, 0), (False, 8)])
def test_annotated_cloud_repaints_only_grouped_points(cloud_xyz_rgb, big_endian, pad):
    xyz, rgb = cloud_xyz_rgb
    cloud = _packed_cloud(xyz, rgb, big_endian, pad=pad)
    groups = [np.array([0, 3, 47]), np.array([], np.uint32), np.array([10, 11])]
    out = annotated_cloud(cloud, pointcloud2_to_arrays(cloud), groups)
    got = pointcloud2_to_arrays(out)
    expected = rgb.copy()
    pal = palette(3)
    expected[[0, 3, 47]], expected[[10, 11]] = pal[0], pal[2]
    np.testing.assert_array_equal(got.rgb, expected)
    np.testing.assert_array_equal(got.xyz, xyz)  # NaN included
    assert [f.name for f in out.fields] == [f.name for f in cloud.fields]  # the input's layout, other fields kept
    assert (out.row_step, out.point_step, out.is_bigendian) == (cloud.row_step, 24, big_endian)
    np.testing.assert_array_equal(pointcloud2_to_arrays(cloud).rgb, rgb)  # the input is left as it was


def test_annotated_cloud_in_place_paints_the_inputs_own_buffer(cloud_xyz_rgb):
    xyz, rgb = cloud_xyz_rgb
    cloud = _packed_cloud(xyz, rgb)
    before = cloud.data
    out = annotated_cloud(cloud, pointcloud2_to_arrays(cloud), [np.array([5, 6])], in_place=True)
    assert out.data is before and cloud.data is before  # no copy
    expected = rgb.copy()
    expected[[5, 6]] = palette(1)[0]
    np.testing.assert_array_equal(pointcloud2_to_arrays(out).rgb, expected)
    np.testing.assert_array_equal(pointcloud2_to_arrays(out).xyz, xyz)
    # an input that does not own a writable array is copied as before
    frozen = _packed_cloud(xyz, rgb)
    raw = bytes(frozen.data)
    frozen._data = raw  # as a message built around immutable bytes would hold them
    out = annotated_cloud(frozen, pointcloud2_to_arrays(frozen), [np.array([5, 6])], in_place=True)
    assert frozen.data is raw and bytes(frozen.data) == raw
    np.testing.assert_array_equal(pointcloud2_to_arrays(out).rgb, expected)


def test_annotated_cloud_keeps_alpha_of_rgba(cloud_xyz_rgb):
    xyz, rgb = cloud_xyz_rgb
    cloud = _packed_cloud(xyz, rgb, name='rgba', alpha=0xAB)
    out = annotated_cloud(cloud, pointcloud2_to_arrays(cloud), [np.array([4])])
    words = np.frombuffer(out.data, np.uint8).reshape(-1, 24)[:, 16:20].copy().view('<u4')[:, 0]
    assert (words >> 24 == 0xAB).all()
    r, g, b = palette(1)[0]
    assert words[4] & 0xFFFFFF == (int(r) << 16) | (int(g) << 8) | int(b)


def test_annotated_cloud_without_colour_is_gray_with_objects_painted(cloud_xyz_rgb):
    xyz, _ = cloud_xyz_rgb
    cloud = xyzrgb_to_pointcloud2(xyz, np.zeros_like(xyz, np.uint8), Header(frame_id='cam'), W, H)
    cloud.fields = cloud.fields[:3]  # x, y, z only
    arrays = pointcloud2_to_arrays(cloud)
    assert arrays.rgb is None
    out = pointcloud2_to_arrays(annotated_cloud(cloud, arrays, [np.array([7, 8])]))
    assert (out.rgb[[7, 8]] == palette(1)[0]).all()
    assert (np.delete(out.rgb, [7, 8], axis=0) == GRAY).all()
    assert (out.xyz.shape, out.organized) == (xyz.shape, True)


# ----------------------------------------------------------------------------- fill / points

def _fields_of(msg) -> dict:
    return {f: getattr(msg, f) for f in type(msg).get_fields_and_field_types()}


@pytest.fixture(params=['direct', 'constructor'])
def fill_path(request, monkeypatch):
    """Run a test through both paths of messages.fill: slot writes and the constructor fallback."""
    if request.param == 'constructor':
        real = messages._layout
        monkeypatch.setattr(messages, '_layout', lambda cls: dataclasses.replace(real(cls), direct=False))
    return request.param


@pytest.mark.parametrize('ref', [
    Point(x=1.5, y=-2.0, z=float('inf')),
    Marker(header=Header(frame_id='f'), ns='n', id=3, type=Marker.LINE_LIST, points=[Point(x=1.0)], text='t'),
    PointCloud2(height=2, width=3, fields=[PointField(name='x')], data=b'\x01\x02', is_dense=True),
    ObjectMask3D(id=4, label='cup', bbox_2d=np.arange(4, dtype=np.float32), point_indices=array.array('I', [5, 6])),
], ids=lambda m: type(m).__name__)
def test_fill_builds_what_the_constructor_builds(ref, fill_path):
    values = _fields_of(ref)
    msg = messages.fill(type(ref), **values)
    assert type(msg) is type(ref) and msg == ref
    if fill_path == 'direct':
        assert all(getattr(msg, f) is v for f, v in values.items())  # stored as given (no setter copies)
    back = deserialize_message(serialize_message(msg), type(ref))  # the C conversion reads the slots
    assert back == ref
    assert repr(msg) == repr(ref)


def test_fill_wants_every_field_and_only_fields():
    with pytest.raises(TypeError, match=r"missing \['z'\]"):
        messages.fill(Point, x=1.0, y=2.0)
    with pytest.raises(TypeError, match=r"unknown \['w'\]"):
        messages.fill(Point, x=1.0, y=2.0, w=3.0)


def test_fill_uses_the_constructor_where_fields_are_checked():
    layout = messages._layout(Point)
    assert layout.direct == (not Point()._check_fields)  # ROS_PYTHON_CHECK_FIELDS=1 keeps the assertions
    assert layout.slots == ('_x', '_y', '_z')


def test_points_match_point_messages(fill_path):
    rows = np.random.default_rng(0).normal(size=(30, 3)).tolist() + [[float('inf'), -0.0, float('nan')]]
    pts = messages.points(rows)
    assert [(p.x, p.y, p.z) for p in pts[:-1]] == [tuple(r) for r in rows[:-1]]
    assert pts[:-1] == [Point(x=x, y=y, z=z) for x, y, z in rows[:-1]]
    assert math.isinf(pts[-1].x) and math.copysign(1, pts[-1].y) < 0 and math.isnan(pts[-1].z)
    assert messages.points([]) == []
    assert len({id(p) for p in pts}) == len(pts)


def test_objects_message_survives_serialisation(cloud_xyz_rgb, fill_path):
    xyz, rgb = cloud_xyz_rgb
    empty = dataclasses.replace(_object(1, np.array([], np.int64), xyz), mask=np.zeros((H, W), bool))
    objs = [_object(0, np.array([1, 2, 9]), xyz), empty]
    header = Header(frame_id='cam')
    for kw in ({}, {'xyz': xyz, 'rgb': rgb}):
        msg = objects_to_array_msg(objs, header, header, W, H, W, H, 'm.pt', **kw)
        back = deserialize_message(serialize_message(msg), ObjectMask3DArray)
        for o in msg.objects:
            o.confidence = float(np.float32(o.confidence))  # a float32 field
        assert back == msg
        assert msg.objects[0].bbox_3d_center.orientation == Quaternion()  # identity, as Pose() has
        assert msg.objects[1].mask.height == 0 and len(msg.objects[1].point_indices) == 0


@pytest.mark.parametrize('big_endian,pad', [(False, 0), (True, 0), (False, 8), (True, 3)])
def test_annotated_cloud_paints_later_groups_over_earlier(cloud_xyz_rgb, big_endian, pad):
    xyz, rgb = cloud_xyz_rgb
    cloud = _packed_cloud(xyz, rgb, big_endian, name='rgba', pad=pad, alpha=0x5A)
    groups = [np.arange(W * H, dtype=np.uint32), np.array([7, 7, 3], np.int64), np.array([3])]
    out = annotated_cloud(cloud, pointcloud2_to_arrays(cloud), groups)
    got = pointcloud2_to_arrays(out).rgb
    pal = palette(3)
    assert (got[3] == pal[2]).all() and (got[7] == pal[1]).all()
    assert (np.delete(got, [3, 7], axis=0) == pal[0]).all()
    end = '>' if big_endian else '<'
    rows = np.frombuffer(out.data, np.uint8)[:H * (W * 24 + pad)].reshape(H, -1)[:, :W * 24].reshape(-1, 24)
    assert (rows[:, 16:20].copy().view(end + 'u4')[:, 0] >> 24 == 0x5A).all()  # alpha kept
    assert bytes(out.data)[W * 24:W * 24 + pad] == bytes(cloud.data)[W * 24:W * 24 + pad]  # padding kept
    assert out.data is not cloud.data and out.fields[0] is not cloud.fields[0]
    assert out == deserialize_message(serialize_message(out), PointCloud2)
