"""RViz markers for ObjectMask3DArray: a wireframe box and a label per object.

Pure message building, no node: :class:`ObjectMarkers` remembers which markers it showed last so that
vanished objects are deleted at once instead of lingering until their lifetime runs out, while marker
ids stay bounded (the object's index within its frame, reused frame after frame).

Namespaces: ``<namespace>/boxes`` (LINE_LIST, 12 edges of the oriented 3D box) and ``<namespace>/labels``
(TEXT_VIEW_FACING ``"<label> <confidence>"`` just above the box). Colours are per class, so a class keeps
its colour across frames even though object ids are not tracked.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray

from ..core.colors import distinct_color
from ..core.transforms import quaternion_matrix

# Corner k of a box has sign bit0 on x, bit1 on y, bit2 on z; an edge joins corners differing in one bit.
_CORNER_SIGNS = np.array([[(k >> b) & 1 for b in range(3)] for k in range(8)], dtype=np.float64) * 2.0 - 1.0
_I, _J = np.triu_indices(8, 1)
_ONE_BIT = ((_I ^ _J) & ((_I ^ _J) - 1)) == 0
BOX_EDGES = np.stack([_I[_ONE_BIT], _J[_ONE_BIT]], axis=1)  # (12, 2) corner indices

_OPTICAL_UP = (0.0, -1.0, 0.0)  # camera optical frames (REP 103 "_optical" suffix): y points down
_BODY_UP = (0.0, 0.0, 1.0)  # every other REP 103 frame: z points up


def _orientation(x: float, y: float, z: float, w: float) -> np.ndarray | None:
    """Rotation of a Pose orientation: identity for an all-zero quaternion (unset), None if not finite."""
    q = np.array([x, y, z, w], dtype=np.float64)
    if not np.all(np.isfinite(q)):
        return None
    return np.eye(3) if float(q @ q) < 1e-12 else quaternion_matrix(*q)


def box_corners(center: np.ndarray, rotation: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``(8, 3)`` corners of the box of edge lengths ``size`` along the columns of ``rotation``."""
    return np.asarray(center, float) + (_CORNER_SIGNS * (np.asarray(size, float) / 2.0)) @ rotation.T


def box_edge_points(center: np.ndarray, rotation: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``(24, 3)`` LINE_LIST vertices: the two ends of each of the 12 box edges."""
    return box_corners(center, rotation, size)[BOX_EDGES].reshape(24, 3)


def _xyz(v) -> np.ndarray:
    return np.array([v.x, v.y, v.z], dtype=np.float64)


def _box_of(obj: ObjectMask3D) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(center, rotation, size)`` of a drawable box, or None (NaN, negative or all-zero size)."""
    center, size = _xyz(obj.bbox_3d_center.position), _xyz(obj.bbox_3d_size)
    o = obj.bbox_3d_center.orientation
    rot = _orientation(o.x, o.y, o.z, o.w)
    if rot is None or not (np.all(np.isfinite(center)) and np.all(np.isfinite(size))):
        return None
    if np.any(size < 0) or float(size.max()) <= 0.0:
        return None
    return center, rot, size


def _points(xyz: np.ndarray) -> list[Point]:
    return [Point(x=x, y=y, z=z) for x, y, z in np.asarray(xyz, dtype=np.float64)]


class ObjectMarkers:
    """Turns each ObjectMask3DArray into a MarkerArray; stateful only to delete what vanished.

    ``up`` is the direction labels are lifted along, in the message's frame; by default ``-y`` for frames
    whose name contains ``optical`` (camera optical frames) and ``+z`` otherwise (REP 103). Not
    thread-safe: call from one thread (the node's worker).
    """

    def __init__(self, namespace: str = 'vizion3d', lifetime_s: float = 1.0, text_height: float = 0.08,
                 line_width: float = 0.01, up: Sequence[float] | None = None) -> None:
        if lifetime_s < 0 or text_height <= 0 or line_width <= 0:
            raise ValueError('lifetime_s must be >= 0, text_height and line_width > 0')
        self.namespace = namespace
        self.lifetime_s = float(lifetime_s)
        self.text_height = float(text_height)
        self.line_width = float(line_width)
        self.up = None if up is None else np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
        self.box_ns = f'{namespace}/boxes'
        self.label_ns = f'{namespace}/labels'
        self._shown: set[tuple[str, int]] = set()

    def _lifetime(self) -> Duration:
        sec = int(self.lifetime_s)
        return Duration(sec=sec, nanosec=int(round((self.lifetime_s - sec) * 1e9)) % 1_000_000_000)

    def _up_for(self, frame_id: str) -> np.ndarray:
        if self.up is not None:
            return self.up
        return np.array(_OPTICAL_UP if 'optical' in frame_id.lower() else _BODY_UP)

    def _marker(self, header, ns: str, mid: int, mtype: int, color: tuple[int, int, int]) -> Marker:
        r, g, b = (c / 255.0 for c in color)
        return Marker(header=header, ns=ns, id=mid, type=mtype, action=Marker.ADD, pose=Pose(),
                      color=ColorRGBA(r=r, g=g, b=b, a=1.0), lifetime=self._lifetime(), frame_locked=False)

    def update(self, msg: ObjectMask3DArray) -> MarkerArray:
        """Markers of one frame: ADD for each object's box and label, DELETE for last frame's extra ids."""
        header = msg.header
        up = self._up_for(header.frame_id)
        out: list[Marker] = []
        shown: set[tuple[str, int]] = set()
        for i, obj in enumerate(msg.objects):
            color = distinct_color(int(obj.class_id))
            box = _box_of(obj)
            anchor = None
            if box is not None:
                center, rot, size = box
                m = self._marker(header, self.box_ns, i, Marker.LINE_LIST, color)
                m.scale.x = self.line_width
                m.points = _points(box_edge_points(center, rot, size))
                out.append(m)
                shown.add((self.box_ns, i))
                # Half the box's extent along `up` puts the label just clear of its top.
                anchor = center + up * (float(np.abs(up @ rot) @ size) / 2.0)
            else:
                centroid = _xyz(obj.centroid)
                if len(obj.point_indices) > 0 and np.all(np.isfinite(centroid)):
                    anchor = centroid
            if anchor is None:
                continue
            pos = anchor + up * self.text_height
            t = self._marker(header, self.label_ns, i, Marker.TEXT_VIEW_FACING, color)
            t.pose.position = Point(x=float(pos[0]), y=float(pos[1]), z=float(pos[2]))
            t.scale.z = self.text_height
            t.text = f'{obj.label} {obj.confidence:.2f}'
            out.append(t)
            shown.add((self.label_ns, i))
        for ns, mid in sorted(self._shown - shown):
            out.append(Marker(header=header, ns=ns, id=mid, action=Marker.DELETE))
        self._shown = shown
        return MarkerArray(markers=out)

    def clear(self, header) -> MarkerArray:
        """One DELETEALL marker (empty ns: everything on this topic), e.g. on deactivate."""
        self._shown = set()
        return MarkerArray(markers=[Marker(header=header, ns='', id=0, action=Marker.DELETEALL)])
