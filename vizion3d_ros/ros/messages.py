"""Building vizion3d_ros messages from core results.

Big per-object arrays reach the generated message classes as ``array.array``: their ``uint32[]``
setter stores ``array.array('I', value)``, which walks a numpy array element by element (~2 ms for
the 40,000 indices of a VGA frame) but copies an ``array.array`` built from bytes with one memcpy.
"""
from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np
from geometry_msgs.msg import Point, Pose, Vector3
from sensor_msgs.msg import PointCloud2, PointField, RegionOfInterest

from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray

from ..core.colors import palette
from ..core.pipeline import LiftedObject
from .conversions import CloudArrays, mono8_to_image, xyzrgb_to_pointcloud2

#: Colour of the points of a cloud without colour that belong to no object.
GRAY = 200


def _point(v: np.ndarray) -> Point:
    return Point(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def uint32_array(values: np.ndarray) -> array.array:
    """``array.array('I')`` of ``values`` via one byte copy (see the module docstring)."""
    return array.array('I', np.ascontiguousarray(values, dtype=np.uint32).tobytes())


def object_to_msg(obj: LiftedObject, header, xyz: np.ndarray | None = None,
                  rgb: np.ndarray | None = None) -> ObjectMask3D:
    """ObjectMask3D of one lifted object; ``xyz``/``rgb`` of the cloud fill ``object_cloud`` when given."""
    (x0, y0, w, h), crop = obj.mask_crop()
    g = obj.geometry
    msg = ObjectMask3D(
        header=header, id=int(obj.id), class_id=int(obj.class_id), label=obj.label,
        confidence=float(obj.confidence),
        bbox_2d=np.asarray(obj.bbox_2d, dtype=np.float32),
        mask_roi=RegionOfInterest(x_offset=x0, y_offset=y0, width=w, height=h, do_rectify=False),
        mask=mono8_to_image(crop, header),
        point_indices=uint32_array(obj.point_indices),
        centroid=_point(g.centroid),
        bbox_3d_center=Pose(position=_point(g.box_center)),
        bbox_3d_size=Vector3(x=float(g.box_size[0]), y=float(g.box_size[1]), z=float(g.box_size[2])),
    )
    if xyz is not None:
        idx = obj.point_indices
        colors = rgb[idx] if rgb is not None else np.full((len(idx), 3), 255, np.uint8)
        msg.object_cloud = xyzrgb_to_pointcloud2(xyz[idx], colors, header)
    return msg


def objects_to_array_msg(objects: Sequence[LiftedObject], header, image_header, cloud_width: int,
                         cloud_height: int, image_width: int, image_height: int, model: str,
                         xyz: np.ndarray | None = None, rgb: np.ndarray | None = None) -> ObjectMask3DArray:
    """ObjectMask3DArray for one frame (objects already sorted by descending confidence)."""
    return ObjectMask3DArray(
        header=header, image_stamp=image_header.stamp, cloud_width=int(cloud_width),
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


def annotated_cloud(cloud: PointCloud2, arrays: CloudArrays, groups: Sequence[np.ndarray]) -> PointCloud2:
    """The input cloud with the points of group k painted in ``distinct_color(k)``, everything else as it was.

    A cloud with a packed colour field is copied as it is (one memcpy of its bytes, every field and the
    layout kept) and only the grouped points' R, G, B bytes are rewritten; the alpha byte of ``rgba``
    stays. A cloud without colour becomes x, y, z, rgb with the ungrouped points grey.
    """
    offsets = _color_byte_offsets(cloud) if arrays.rgb is not None else None
    if offsets is None:
        gray = np.full((len(arrays.xyz), 3), GRAY, np.uint8)
        return xyzrgb_to_pointcloud2(arrays.xyz, gray, cloud.header, arrays.width, arrays.height, groups=list(groups))
    fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in cloud.fields]
    out = PointCloud2(header=cloud.header, height=cloud.height, width=cloud.width, fields=fields,
                      is_bigendian=cloud.is_bigendian, point_step=cloud.point_step, row_step=cloud.row_step,
                      is_dense=cloud.is_dense)
    out.data = cloud.data  # the setter copies the bytes (once; passed to the constructor it would copy twice)
    groups = [np.asarray(g) for g in groups]
    if not any(len(g) for g in groups):
        return out
    idx = np.concatenate(groups).astype(np.int64)
    colors = np.repeat(palette(len(groups)), [len(g) for g in groups], axis=0)
    width = max(int(arrays.width), 1)
    row_step = int(cloud.row_step) or width * int(cloud.point_step)
    start = (idx // width) * row_step + (idx % width) * int(cloud.point_step)
    buf = np.frombuffer(out.data, dtype=np.uint8)  # writable view of the copy
    for channel, off in enumerate(offsets):
        buf[start + off] = colors[:, channel]
    return out
