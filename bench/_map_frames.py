"""Posed synthetic frames as the map node's inputs: shared by ``bench_map.py`` and ``soak_map.py``.

A frame is a ray-cast view of a ``furnished_room`` (``core/synthetic/multiview``) with its exact
detections, turned into what vizion3d_map_node subscribes to: an organised optical-frame XYZRGB
``PointCloud2`` (``points``) and an ``ObjectMask3DArray`` (``objects``) whose objects index that cloud
with exact ``point_indices`` (the mask's pixels that have depth, as vizion3d_node's lifted points do),
plus the pose world <- camera optical that a localisation would put on /tf.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.synthetic.multiview import EXACT_MASKS, MaskErrors, frame_masks, render_view

WORLD, CAMERA = 'odom', 'camera_optical'


@dataclass
class MapFrame:
    """One posed view: the map node's two input messages (stamps set when sent) and the pose."""

    cloud: object  # sensor_msgs/PointCloud2, organised, optical frame
    objects: object  # vizion3d_ros/ObjectMask3DArray indexing ``cloud``
    pose: np.ndarray  # (4, 4) camera optical -> world
    masks: int  # objects in the message
    points: int  # points with depth


def make_frame(room, pose: np.ndarray, camera, rng: np.random.Generator, max_masks: int = 10,
               errors: MaskErrors = EXACT_MASKS, shift: np.ndarray | None = None) -> MapFrame:
    """Render the view at ``pose`` and keep its ``max_masks`` largest detections as the objects message.

    ``shift`` moves the world: the frame's pose is the room's plus it (see ``bench_fusion.WORLD_SHIFT``).
    """
    from std_msgs.msg import Header

    from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray
    from vizion3d_ros.ros.conversions import xyzrgb_to_pointcloud2
    from vizion3d_ros.ros.messages import uint32_array

    view = render_view(room, pose, camera)
    fm = frame_masks(room, view, rng, errors)
    header = Header(frame_id=CAMERA)
    xyz = depth_to_points_optical(view.depth, camera)
    cloud = xyzrgb_to_pointcloud2(xyz, view.color.reshape(-1, 3), header, width=camera.width, height=camera.height)
    has_depth = np.isfinite(view.depth.reshape(-1))
    flat = fm.labels.reshape(-1)
    index = {v: np.flatnonzero((flat == v) & has_depth) for v in fm.meta}
    keep = sorted(index, key=lambda v: -len(index[v]))[:max_masks]
    objs = []
    for v in sorted(keep):
        m = fm.meta[v]
        o = ObjectMask3D(header=header, id=int(v), class_id=int(m['class_id']), label=m['label'],
                         confidence=float(m['confidence']))
        o.point_indices = uint32_array(index[v])
        objs.append(o)
    objects = ObjectMask3DArray(header=header, cloud_width=camera.width, cloud_height=camera.height,
                                image_width=camera.width, image_height=camera.height, model='truth', objects=objs)
    world = view.pose.copy()
    if shift is not None:
        world[:3, 3] += shift
    return MapFrame(cloud, objects, world, len(objs), int(has_depth.sum()))


def as_received(msg):
    """``msg`` after one trip through rclpy's (de)serialisation: its arrays as a subscriber gets them."""
    from rclpy.serialization import deserialize_message, serialize_message

    return deserialize_message(serialize_message(msg), type(msg))


def stamp(frame: MapFrame, ns: int) -> object:
    """Give both messages (and every object) of ``frame`` the stamp ``ns``; returns the stamp message."""
    from builtin_interfaces.msg import Time

    t = Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))
    frame.cloud.header.stamp = t
    frame.objects.header.stamp = t
    for o in frame.objects.objects:
        o.header.stamp = t
    return t


def pose_transform(pose: np.ndarray, t, parent: str = WORLD, child: str = CAMERA):
    """geometry_msgs/TransformStamped ``parent`` <- ``child`` of the 4x4 ``pose`` at stamp ``t``."""
    from geometry_msgs.msg import TransformStamped
    from scipy.spatial.transform import Rotation

    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id, msg.header.stamp = parent, child, t
    tr, q = msg.transform.translation, msg.transform.rotation
    tr.x, tr.y, tr.z = (float(x) for x in pose[:3, 3])
    q.x, q.y, q.z, q.w = (float(x) for x in Rotation.from_matrix(pose[:3, :3]).as_quat())
    return msg
