"""RViz markers for ObjectMask3DArray: a wireframe box and a label per object.

Pure message building, no node: :class:`ObjectMarkers` remembers which markers it showed last so that
vanished objects are deleted at once instead of lingering until their lifetime runs out, while marker
ids stay bounded (the object's index within its frame, reused frame after frame).

Namespaces: ``<namespace>/boxes`` (LINE_LIST, 12 edges of the oriented 3D box) and ``<namespace>/labels``
(TEXT_VIEW_FACING ``"<label> <confidence>"`` just above the box). Colours are per class, so a class keeps
its colour across frames even though object ids are not tracked.

Built for speed (a frame's markers cost ~1.6 ms through the generated constructors): the boxes of all
objects in one numpy pass, and the messages with :func:`vizion3d_ros.ros.messages.fill`.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Vector3
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray, MeshFile

from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray

from ..core.camera.transforms import quaternion_matrix
from ..core.render.colors import distinct_color
from .messages import fill, points, pose_at

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
    """``(..., 8, 3)`` corners of the boxes of edge lengths ``size`` along the columns of ``rotation``.

    ``center``/``size`` ``(..., 3)`` and ``rotation`` ``(..., 3, 3)``: one box or a stack of them.
    """
    center, size = np.asarray(center, float), np.asarray(size, float)
    return center[..., None, :] + (_CORNER_SIGNS * (size[..., None, :] / 2.0)) @ np.swapaxes(rotation, -1, -2)


def box_edge_points(center: np.ndarray, rotation: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``(..., 24, 3)`` LINE_LIST vertices: the two ends of each of the 12 box edges."""
    return box_corners(center, rotation, size)[..., BOX_EDGES.ravel(), :]


def _xyz(v) -> np.ndarray:
    return np.array([v.x, v.y, v.z], dtype=np.float64)


def _boxes(objects: Sequence[ObjectMask3D]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(drawable, centers, rotations, sizes)`` of every object's box, as arrays over the objects.

    A box is drawable unless its centre, size or orientation is not finite, or its size is negative or
    all zero. One numpy pass over all boxes instead of a dozen tiny-array calls per object; rotations
    are computed once per distinct orientation (nearly always the identity).
    """
    n = len(objects)
    rows, rotations = [], []
    by_quaternion: dict[bytes, np.ndarray | None] = {}
    for obj in objects:
        c, s, o = obj.bbox_3d_center.position, obj.bbox_3d_size, obj.bbox_3d_center.orientation
        rows.append((c.x, c.y, c.z, s.x, s.y, s.z))
        key = struct.pack('4d', o.x, o.y, o.z, o.w)  # bitwise: -0.0 and 0.0 may rotate differently
        if key not in by_quaternion:
            by_quaternion[key] = _orientation(o.x, o.y, o.z, o.w)
        rotations.append(by_quaternion[key])
    values = np.array(rows, dtype=np.float64).reshape(n, 6)
    centers, sizes = values[:, :3].copy(), values[:, 3:].copy()
    oriented = np.array([r is not None for r in rotations], dtype=bool)
    drawable = (oriented & np.isfinite(values).all(axis=1) & ~(sizes < 0).any(axis=1)
                & (sizes.max(axis=1, initial=-np.inf) > 0.0))
    stack = np.array([np.eye(3) if r is None else r for r in rotations], dtype=np.float64).reshape(n, 3, 3)
    return drawable, centers, stack, sizes


@lru_cache(maxsize=1024)
def _rgb(class_id: int) -> tuple[float, float, float]:
    """``distinct_color(class_id)`` scaled to 0..1 (cached: the hue maths is per object otherwise)."""
    r, g, b = distinct_color(class_id)
    return r / 255.0, g / 255.0, b / 255.0


class ObjectMarkers:
    """Turns each ObjectMask3DArray into a MarkerArray; stateful only to delete what vanished.

    ``up`` is the direction labels are lifted along, in the message's frame; by default ``-y`` for frames
    whose name contains ``optical`` (camera optical frames) and ``+z`` otherwise (REP 103).
    ``stable_ids`` (the map's MapObject3DArray, whose ids persist): marker id = object id, colour per id
    and the label reads ``"<label> #<id>"``, so RViz follows one object across messages. Not thread-safe:
    call from one thread (the node's worker).
    """

    def __init__(self, namespace: str = 'vizion3d', lifetime_s: float = 1.0, text_height: float = 0.08,
                 line_width: float = 0.01, up: Sequence[float] | None = None, stable_ids: bool = False) -> None:
        if lifetime_s < 0 or text_height <= 0 or line_width <= 0:
            raise ValueError('lifetime_s must be >= 0, text_height and line_width > 0')
        self.namespace = namespace
        self.lifetime_s = float(lifetime_s)
        self.text_height = float(text_height)
        self.line_width = float(line_width)
        self.up = None if up is None else np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
        self.box_ns = f'{namespace}/boxes'
        self.label_ns = f'{namespace}/labels'
        self.stable_ids = bool(stable_ids)
        self._shown: set[tuple[str, int]] = set()

    def _lifetime(self) -> Duration:
        sec = int(self.lifetime_s)
        return fill(Duration, sec=sec, nanosec=int(round((self.lifetime_s - sec) * 1e9)) % 1_000_000_000)

    def _up_for(self, frame_id: str) -> np.ndarray:
        if self.up is not None:
            return self.up
        return np.array(_OPTICAL_UP if 'optical' in frame_id.lower() else _BODY_UP)

    def update(self, msg: ObjectMask3DArray) -> MarkerArray:
        """Markers of one frame: ADD for each object's box and label, DELETE for last frame's extra ids.

        Every marker gets its own sub-messages except the empty, unused ``texture`` and ``mesh_file``,
        which the markers of one call share (as they share ``msg.header``).
        """
        header = msg.header
        up = self._up_for(header.frame_id)
        objects = msg.objects
        drawable, centers, rotations, sizes = _boxes(objects)
        centers, rotations, sizes = centers[drawable], rotations[drawable], sizes[drawable]
        boxes = iter(box_edge_points(centers, rotations, sizes).tolist())
        # Half the box's extent along `up` puts the label just clear of its top.
        half = (np.abs(up @ rotations)[:, None, :] @ sizes[:, :, None])[:, 0, 0]
        above = iter((centers + up * (half / 2.0)[:, None] + up * self.text_height).tolist())
        texture, mesh_file = CompressedImage(), MeshFile()

        def marker(ns: str, mid: int, mtype: int, rgb: tuple[float, float, float], pose: Pose, scale: Vector3,
                   pts: list[Point], text: str) -> Marker:
            r, g, b = rgb
            return fill(Marker, header=header, ns=ns, id=mid, type=mtype, action=Marker.ADD, pose=pose,
                        scale=scale, color=fill(ColorRGBA, r=r, g=g, b=b, a=1.0), lifetime=self._lifetime(),
                        frame_locked=False, points=pts, colors=[], texture_resource='', texture=texture,
                        uv_coordinates=[], text=text, mesh_resource='', mesh_file=mesh_file,
                        mesh_use_embedded_materials=False)

        out: list[Marker] = []
        shown: set[tuple[str, int]] = set()
        for i, obj in enumerate(objects):
            mid = int(obj.id) if self.stable_ids else i
            rgb = _rgb(mid if self.stable_ids else int(obj.class_id))
            if drawable[i]:
                out.append(marker(self.box_ns, mid, Marker.LINE_LIST, rgb,
                                  pose_at(fill(Point, x=0.0, y=0.0, z=0.0)),
                                  fill(Vector3, x=self.line_width, y=0.0, z=0.0), points(next(boxes)), ''))
                shown.add((self.box_ns, mid))
                x, y, z = next(above)
            else:
                centroid = _xyz(obj.centroid)
                has_points = obj.point_count > 0 if self.stable_ids else len(obj.point_indices) > 0
                if not (has_points and np.all(np.isfinite(centroid))):
                    continue
                x, y, z = (centroid + up * self.text_height).tolist()
            text = f'{obj.label} #{obj.id}' if self.stable_ids else f'{obj.label} {obj.confidence:.2f}'
            out.append(marker(self.label_ns, mid, Marker.TEXT_VIEW_FACING, rgb, pose_at(fill(Point, x=x, y=y, z=z)),
                              fill(Vector3, x=0.0, y=0.0, z=self.text_height), [], text))
            shown.add((self.label_ns, mid))
        for ns, mid in sorted(self._shown - shown):
            out.append(Marker(header=header, ns=ns, id=mid, action=Marker.DELETE))
        self._shown = shown
        return fill(MarkerArray, markers=out)

    def clear(self, header) -> MarkerArray:
        """One DELETEALL marker (empty ns: everything on this topic), e.g. on deactivate."""
        self._shown = set()
        return MarkerArray(markers=[Marker(header=header, ns='', id=0, action=Marker.DELETEALL)])
