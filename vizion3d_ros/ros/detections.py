"""ObjectMask3DArray as the standard vision_msgs/Detection3DArray, for consumers that only speak vision_msgs.

vision_msgs is optional (not every ROS install has it), so it is imported lazily: the node asks
:func:`vision_msgs_available` before creating the publisher, and :func:`to_detection3d_array` raises a
clear ImportError when the package is missing.
"""
from __future__ import annotations

from functools import lru_cache

from geometry_msgs.msg import Point, Pose, PoseWithCovariance, Quaternion, Vector3

from vizion3d_ros.msg import ObjectMask3DArray


@lru_cache(maxsize=1)
def vision_msgs_available() -> bool:
    """True when vision_msgs' Python messages can be imported here."""
    try:
        import vision_msgs.msg  # noqa: F401
    except ImportError:
        return False
    return True


def _copy_pose(p: Pose) -> Pose:
    o = p.orientation
    return Pose(position=Point(x=p.position.x, y=p.position.y, z=p.position.z),
                orientation=Quaternion(x=o.x, y=o.y, z=o.z, w=o.w))


def to_detection3d_array(msg: ObjectMask3DArray):
    """vision_msgs/Detection3DArray with one Detection3D per object, in the same header.

    bbox from ``bbox_3d_center``/``bbox_3d_size``; one hypothesis ``(label, confidence)`` posed at the
    centroid (covariance unknown: zeros); ``id`` is the object's id as a string (not tracked across frames).
    """
    try:
        from vision_msgs.msg import (
            BoundingBox3D,
            Detection3D,
            Detection3DArray,
            ObjectHypothesis,
            ObjectHypothesisWithPose,
        )
    except ImportError as exc:
        raise ImportError('vision_msgs is not installed: install ros-<distro>-vision-msgs (or the vision_msgs '
                          'wheel) to publish vision_msgs/Detection3DArray') from exc
    detections = []
    for obj in msg.objects:
        s = obj.bbox_3d_size
        c = obj.centroid
        hypothesis = ObjectHypothesisWithPose(
            hypothesis=ObjectHypothesis(class_id=obj.label, score=float(obj.confidence)),
            pose=PoseWithCovariance(pose=Pose(position=Point(x=c.x, y=c.y, z=c.z))))
        detections.append(Detection3D(
            header=msg.header, id=str(obj.id), results=[hypothesis],
            bbox=BoundingBox3D(center=_copy_pose(obj.bbox_3d_center), size=Vector3(x=s.x, y=s.y, z=s.z))))
    return Detection3DArray(header=msg.header, detections=detections)
