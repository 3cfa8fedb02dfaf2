"""vizion3d_node's outputs recorded in a rosbag2 (objects, the cloud, /tf) as the map node's input, offline.

A robot records what the map node listens to (``ros2 bag record /objects /camera/depth_registered/points
/tf /tf_static``); ``vizion3d-fuse --bag`` then rebuilds the map from it with the node's own
:class:`~.integrator.MapIntegrator` and parameters, and ``vizion3d_player --bag`` plays it back into a
live map node: both see the same frames, so both build the same map. The messages are read with
rosbags and turned into rclpy messages by rclpy's own deserialiser (the package's types are not in
rosbags' type store); /tf with rosbags' standard types into a :class:`~...core.io.bag.TransformTree`.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.io.bag import TransformTree
from ...core.io.posed import PosedFolderError
from ..stamps import stamp_ns

OBJECTS_TYPE = 'vizion3d_ros/msg/ObjectMask3DArray'
CLOUD_TYPE = 'sensor_msgs/msg/PointCloud2'
TF_TYPE = 'tf2_msgs/msg/TFMessage'


def holds_objects(path: str | Path) -> bool:
    """True when the bag at ``path`` has a vizion3d_ros/ObjectMask3DArray topic (False if it is no bag)."""
    try:
        from rosbags.highlevel import AnyReader

        with AnyReader([Path(path)]) as reader:
            return any(c.msgtype == OBJECTS_TYPE for c in reader.connections)
    except Exception:  # noqa: BLE001 - not a bag, unreadable: the RGB-D reader says why
        return False


@dataclass
class RecordedFrame:
    """One recorded frame: objects and cloud with the same stamp, and the pose (None: ``reason`` says why)."""

    stamp: int
    objects: object  # vizion3d_ros/ObjectMask3DArray
    cloud: object  # sensor_msgs/PointCloud2
    pose: np.ndarray | None
    reason: str | None = None


class RecordedMap:
    """The frames of a recorded bag, in stamp order, each with its pose world_frame <- cloud frame.

    ``objects_topic`` / ``points_topic`` default to the only objects topic and to the PointCloud2 topic
    whose stamps match the objects' (vizion3d_node stamps its objects with the cloud's header).
    Objects without a cloud of the same stamp are counted in :attr:`unpaired`. Messages are read when
    iterated, one frame at a time (a long bag does not fit in memory); the scan reads only headers.
    """

    def __init__(self, path: str | Path, world_frame: str = 'odom', objects_topic: str | None = None,
                 points_topic: str | None = None) -> None:
        from rosbags.typesys import Stores, get_typestore

        self.path, self.world_frame = Path(path), world_frame.lstrip('/')
        store = get_typestore(Stores.ROS2_KILTED)
        with self._open() as reader:
            by_type: dict[str, list] = {}
            for c in reader.connections:
                by_type.setdefault(c.msgtype, []).append(c)
            self._objects = self._pick(by_type.get(OBJECTS_TYPE, []), objects_topic, 'objects')
            tf_conns = [c for c in by_type.get(TF_TYPE, []) if c.topic in ('/tf', '/tf_static')]
            clouds = by_type.get(CLOUD_TYPE, [])
            if points_topic is not None:
                clouds = self._pick(clouds, points_topic, 'points')
            objects: set[int] = set()
            cloud_stamps: dict[str, dict[int, str]] = {}
            transforms = []
            for conn, _, raw in reader.messages(connections=self._objects + tf_conns + clouds):
                if conn.msgtype == OBJECTS_TYPE:
                    objects.add(header_of(raw)[0])
                elif conn.msgtype == CLOUD_TYPE:
                    stamp, frame = header_of(raw)
                    cloud_stamps.setdefault(conn.topic, {})[stamp] = frame
                else:
                    for tr in store.deserialize_cdr(raw, conn.msgtype).transforms:
                        t, q = tr.transform.translation, tr.transform.rotation
                        transforms.append((tr.header.frame_id.lstrip('/'), tr.child_frame_id.lstrip('/'),
                                           stamp_ns(tr.header), (t.x, t.y, t.z), (q.x, q.y, q.z, q.w),
                                           conn.topic == '/tf_static'))
        matches = {t: {s: f for s, f in st.items() if s in objects} for t, st in cloud_stamps.items()}
        if not any(matches.values()):
            raise PosedFolderError(f'{path}: no PointCloud2 topic has clouds with the stamps of the objects '
                                   f'({len(objects)} messages on {self._objects[0].topic})')
        self.objects_topic = self._objects[0].topic
        self.points_topic = max(matches, key=lambda t: len(matches[t]))
        paired = matches[self.points_topic]
        self.unpaired = len(objects) - len(paired)
        try:
            self.tree = TransformTree(transforms)
        except ValueError as exc:
            raise PosedFolderError(f'{path}: {exc}') from exc
        self.stamps = sorted(paired)
        self.poses, self.reasons = self._place(self.stamps, [paired[s] for s in self.stamps])

    def _open(self):
        from rosbags.highlevel import AnyReader

        try:
            reader = AnyReader([self.path])
            reader.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises several kinds for a folder that is not a bag
            raise PosedFolderError(f'{self.path}: not a readable rosbag2 ({exc})') from exc
        return _Closing(reader)

    @staticmethod
    def _pick(conns: list, topic: str | None, what: str) -> list:
        if topic is not None:
            conns = [c for c in conns if c.topic == topic]
            if not conns:
                raise PosedFolderError(f'no {what} topic {topic!r} of the expected type in the bag')
        topics = sorted({c.topic for c in conns})
        if len(topics) != 1:
            raise PosedFolderError(f'{"no" if not topics else "several"} {what} topics in the bag'
                                   + (f' ({", ".join(topics)}): choose one' if topics else ''))
        return conns

    def _place(self, stamps: list[int], frames: list[str]) -> tuple[list[np.ndarray | None], list[str | None]]:
        """Pose world <- cloud frame at each stamp from the bag's tf, or why there is none."""
        poses: list[np.ndarray | None] = [None] * len(stamps)
        reasons: list[str | None] = [None] * len(stamps)
        by_frame: dict[str, list[int]] = {}
        for k, frame in enumerate(frames):
            by_frame.setdefault(frame.lstrip('/'), []).append(k)
        for frame, ks in by_frame.items():
            at = np.array([stamps[k] for k in ks], np.int64)
            if frame == self.world_frame:
                for k in ks:
                    poses[k] = np.eye(4)
                continue
            if frame not in self.tree.frames or self.world_frame not in self.tree.frames:
                for k in ks:
                    reasons[k] = f'no tf between {self.world_frame!r} and {frame!r} in the bag'
                continue
            cloud_to_root, problems, root = self.tree.to_root(frame, at)
            world_to_root, wproblems, wroot = self.tree.to_root(self.world_frame, at)
            for j, k in enumerate(ks):
                if root != wroot:
                    reasons[k] = f'{frame!r} and {self.world_frame!r} are in different tf trees'
                elif problems[j] or wproblems[j]:
                    reasons[k] = problems[j] or wproblems[j]
                else:
                    poses[k] = np.linalg.inv(world_to_root[j]) @ cloud_to_root[j]
        return poses, reasons

    def __len__(self) -> int:
        return len(self.stamps)

    def __iter__(self) -> Iterator[RecordedFrame]:
        """Each paired frame with its pose (or the reason there is none), in bag order, read as it goes."""
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import PointCloud2

        from vizion3d_ros.msg import ObjectMask3DArray

        index = {s: k for k, s in enumerate(self.stamps)}
        waiting: dict[int, list] = {}  # stamp -> [objects, cloud]
        with self._open() as reader:
            topics = {(self.objects_topic, OBJECTS_TYPE), (self.points_topic, CLOUD_TYPE)}
            conns = [c for c in reader.connections if (c.topic, c.msgtype) in topics]  # this reader's own
            for conn, _, raw in reader.messages(connections=conns):
                stamp = header_of(raw)[0]
                if stamp not in index:
                    continue
                slot = waiting.setdefault(stamp, [None, None])
                if conn.msgtype == OBJECTS_TYPE:
                    slot[0] = deserialize_message(raw, ObjectMask3DArray)
                else:
                    slot[1] = deserialize_message(raw, PointCloud2)
                if slot[0] is not None and slot[1] is not None:
                    del waiting[stamp]
                    k = index[stamp]
                    yield RecordedFrame(stamp, slot[0], slot[1], self.poses[k], self.reasons[k])


class _Closing:
    def __init__(self, reader) -> None:
        self.reader = reader

    def __enter__(self):
        return self.reader

    def __exit__(self, *exc: object) -> None:
        self.reader.close()


def header_of(raw: bytes | memoryview) -> tuple[int, str]:
    """``(stamp ns, frame_id)`` of a CDR-serialised message that starts with a std_msgs/Header, unparsed.

    CDR: a 4-byte encapsulation header (byte 1: 1 = little endian), then the Header: int32 sec, uint32
    nanosec, uint32 string length (with its NUL) and the characters. Reading just these bytes lets a
    scan of a long bag skip deserialising every cloud.
    """
    b = bytes(raw[:4096])
    order = '<' if b[1] & 1 else '>'
    sec, nanosec, n = np.frombuffer(b, np.dtype(f'{order}u4'), 3, 4)
    sec = int(np.int32(np.uint32(sec)))
    frame = b[16:16 + int(n) - 1].decode('utf-8', 'replace') if n else ''
    return sec * 1_000_000_000 + int(nanosec), frame

