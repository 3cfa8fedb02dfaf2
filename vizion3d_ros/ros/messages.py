"""Building vizion3d_ros messages from core results.

Big per-object arrays reach the generated message classes as ``array.array``: their ``uint32[]``
setter stores ``array.array('I', value)``, which walks a numpy array element by element (~2 ms for
the 40,000 indices of a VGA frame) but copies an ``array.array`` built from bytes with one memcpy.

Small messages are built with :func:`fill`, not the generated constructors: a constructor first builds
a default for every field (``Marker()`` builds 11 sub-messages, ~13 us) and then runs a Python property
setter per field, which made these many small messages cost more than the big arrays.
"""
from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from sensor_msgs.msg import PointCloud2, PointField, RegionOfInterest

from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray

from ..core.pipeline import LiftedObject
from ..core.render.colors import palette
from .conversions import CloudArrays, mono8_to_image, xyzrgb_to_pointcloud2

#: Colour of the points of a cloud without colour that belong to no object.
GRAY = 200

M = TypeVar('M')


@dataclass(frozen=True)
class _Layout:
    names: tuple[str, ...]  # fields in declaration order
    slots: tuple[str, ...]  # the attribute each is stored in
    direct: bool  # False: fill() calls the constructor
    fields: frozenset[str]


_LAYOUTS: dict[type, _Layout] = {}


def _layout(cls: type) -> _Layout:
    layout = _LAYOUTS.get(cls)
    if layout is None:
        names = tuple(cls.get_fields_and_field_types())
        slots = tuple('_' + n for n in names)
        # rosidl_generator_py keeps field `f` in slot `_f` next to a `_check_fields` flag; with the flag
        # on (ROS_PYTHON_CHECK_FIELDS=1) the constructor's type assertions are wanted, so it is used then
        direct = list(cls.__slots__) == [*slots, '_check_fields'] and not cls()._check_fields
        layout = _LAYOUTS[cls] = _Layout(names, slots, direct, frozenset(names))
    return layout


def fill(cls: type[M], **fields: Any) -> M:
    """``cls(**fields)`` with every field given, several times cheaper (see the module docstring).

    The values are stored as they are, so pass what the generated setter would store: Python ``int``,
    ``float``, ``bool`` and ``str``, sub-messages, lists of messages, ``array.array`` for numeric
    sequences, numpy arrays of the field's dtype for fixed-size arrays. Falls back to the constructor
    where the class lacks the generated slot layout or checks its fields (ROS_PYTHON_CHECK_FIELDS=1).
    """
    layout = _layout(cls)
    if fields.keys() != layout.fields:
        raise TypeError(f'{cls.__name__} needs every field: missing {sorted(layout.fields - fields.keys())}, '
                        f'unknown {sorted(fields.keys() - layout.fields)}')
    if not layout.direct:
        return cls(**fields)
    msg = cls.__new__(cls)
    msg._check_fields = False
    for name, slot in zip(layout.names, layout.slots):
        setattr(msg, slot, fields[name])
    return msg


def points(rows: Sequence[Sequence[float]]) -> list[Point]:
    """``[Point(x=x, y=y, z=z) for x, y, z in rows]`` (rows of Python floats), ~4x cheaper than that.

    As :func:`fill`, with the three slot writes inlined: a marker frame builds hundreds of points.
    """
    layout = _layout(Point)
    if not layout.direct or layout.slots != ('_x', '_y', '_z'):
        return [fill(Point, x=x, y=y, z=z) for x, y, z in rows]
    new = Point.__new__
    out = []
    for x, y, z in rows:
        p = new(Point)
        p._check_fields = False
        p._x, p._y, p._z = x, y, z
        out.append(p)
    return out


def _point(v: np.ndarray) -> Point:
    x, y, z = np.asarray(v, dtype=np.float64).tolist()
    return fill(Point, x=x, y=y, z=z)


def pose_at(position: Point) -> Pose:
    """Pose at ``position`` with the identity orientation (``Pose(position=position)``)."""
    return fill(Pose, position=position, orientation=fill(Quaternion, x=0.0, y=0.0, z=0.0, w=1.0))


def uint32_array(values: np.ndarray) -> array.array:
    """``array.array('I')`` of ``values`` via one byte copy (see the module docstring)."""
    return array.array('I', np.ascontiguousarray(values, dtype=np.uint32).tobytes())


def object_to_msg(obj: LiftedObject, header, xyz: np.ndarray | None = None,
                  rgb: np.ndarray | None = None) -> ObjectMask3D:
    """ObjectMask3D of one lifted object; ``xyz``/``rgb`` of the cloud fill ``object_cloud`` when given."""
    (x0, y0, w, h), crop = obj.mask_crop()
    g = obj.geometry
    sx, sy, sz = np.asarray(g.box_size, dtype=np.float64).tolist()
    if xyz is not None:
        idx = obj.point_indices
        colors = rgb[idx] if rgb is not None else np.full((len(idx), 3), 255, np.uint8)
        object_cloud = xyzrgb_to_pointcloud2(xyz[idx], colors, header)
    else:
        object_cloud = PointCloud2()
    return fill(
        ObjectMask3D, header=header, id=int(obj.id), class_id=int(obj.class_id), label=obj.label,
        confidence=float(obj.confidence),
        bbox_2d=np.array(obj.bbox_2d, dtype=np.float32),  # a copy, as the setter makes
        mask_roi=fill(RegionOfInterest, x_offset=int(x0), y_offset=int(y0), height=int(h), width=int(w),
                      do_rectify=False),
        mask=mono8_to_image(crop, header),
        point_indices=uint32_array(obj.point_indices),
        centroid=_point(g.centroid),
        bbox_3d_center=pose_at(_point(g.box_center)),
        bbox_3d_size=fill(Vector3, x=sx, y=sy, z=sz),
        object_cloud=object_cloud,
    )


def objects_to_array_msg(objects: Sequence[LiftedObject], header, image_header, cloud_width: int,
                         cloud_height: int, image_width: int, image_height: int, model: str,
                         xyz: np.ndarray | None = None, rgb: np.ndarray | None = None) -> ObjectMask3DArray:
    """ObjectMask3DArray for one frame (objects already sorted by descending confidence)."""
    return fill(
        ObjectMask3DArray, header=header, image_stamp=image_header.stamp, cloud_width=int(cloud_width),
        cloud_height=int(cloud_height), image_width=int(image_width), image_height=int(image_height),
        model=model, objects=[object_to_msg(o, header, xyz, rgb) for o in objects])


def _color_byte_offsets(cloud: PointCloud2) -> tuple[int, int, int] | None:
    """Byte offsets of R, G, B within a point of the cloud's packed ``rgb``/``rgba`` field, or None."""
    fields = {f.name: f for f in cloud.fields}
    field = fields.get('rgb', fields.get('rgba'))
    if field is None:
        return None
    off = int(field.offset)
    # packed 0x(AA)RRGGBB: B, G, R in memory order on little-endian, R, G, B after the alpha byte on big-endian
    return (off + 1, off + 2, off + 3) if cloud.is_bigendian else (off + 2, off + 1, off)


def annotated_cloud(cloud: PointCloud2, arrays: CloudArrays, groups: Sequence[np.ndarray],
                    in_place: bool = False) -> PointCloud2:
    """The input cloud with the points of group k painted in ``distinct_color(k)``, everything else as it was.

    A cloud with a packed colour field is copied as it is (one memcpy of its bytes, every field and the
    layout kept) and only the grouped points' R, G, B bytes are rewritten, later groups over earlier
    ones; the alpha byte of ``rgba`` stays. ``in_place`` paints the input's own buffer instead (which
    the result then shares): for a caller done with the input's colours, it saves copying the cloud
    (4.9 MB for VGA). A cloud without colour becomes x, y, z, rgb with the ungrouped points grey.
    """
    offsets = _color_byte_offsets(cloud) if arrays.rgb is not None else None
    if offsets is None:
        gray = np.full((len(arrays.xyz), 3), GRAY, np.uint8)
        return xyzrgb_to_pointcloud2(arrays.xyz, gray, cloud.header, arrays.width, arrays.height, groups=list(groups))
    if in_place and isinstance(cloud.data, array.array) and cloud.data.typecode == 'B':
        data = cloud.data  # what the generated class stores for uint8[]: writable
    else:
        data = array.array('B', cloud.data)  # the copy (one memcpy) the data setter would make
    _paint(data, cloud, max(int(arrays.width), 1), offsets, groups)
    fields = [fill(PointField, name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
              for f in cloud.fields]
    return fill(PointCloud2, header=cloud.header, height=cloud.height, width=cloud.width, fields=fields,
                is_bigendian=cloud.is_bigendian, point_step=cloud.point_step, row_step=cloud.row_step,
                data=data, is_dense=cloud.is_dense)


def _paint(data: array.array, cloud: PointCloud2, width: int, offsets: tuple[int, int, int],
           groups: Sequence[np.ndarray]) -> None:
    """Write ``distinct_color(k)`` into the R, G, B bytes (at ``offsets`` in a point) of group k's points.

    Per group and channel one scalar write through a strided view (one byte of every point, indexed by
    point number) when rows are not padded: ~3x faster than building per-point byte offsets and
    colour rows for all groups at once. Padded rows index the bytes themselves.
    """
    point_step = int(cloud.point_step)
    row_step = int(cloud.row_step) or width * point_step
    padded = row_step != width * point_step
    buf = np.frombuffer(data, dtype=np.uint8)  # writable view of the copy, dropped on return
    channels = [buf[off:] if padded else buf[off::point_step] for off in offsets]
    for idx, colour in zip(groups, palette(len(groups)).tolist()):
        pos = np.asarray(idx).astype(np.intp)
        if not len(pos):
            continue
        if padded:
            pos = (pos // width) * row_step + (pos % width) * point_step
        for channel, value in zip(channels, colour):
            channel[pos] = value
