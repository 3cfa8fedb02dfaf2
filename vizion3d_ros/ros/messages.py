"""Building vizion3d_ros messages from core results."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from geometry_msgs.msg import Point, Pose, Vector3
from sensor_msgs.msg import RegionOfInterest

from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray

from ..core.pipeline import LiftedObject
from .conversions import mono8_to_image, xyzrgb_to_pointcloud2


def _point(v: np.ndarray) -> Point:
    return Point(x=float(v[0]), y=float(v[1]), z=float(v[2]))


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
        point_indices=np.asarray(obj.point_indices, dtype=np.uint32),
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
