"""rosbag2 recordings (sqlite3 or MCAP) as posed RGB-D sequences, read without ROS.

A robot records its camera and its tf; the offline fusion wants posed frames. This reader gives a bag the
same :class:`~.posed.PosedSequence` interface as a posed folder or a TUM sequence, using the pure-Python
``rosbags`` library (no rclpy, no tf2, no running graph), so a bag can be fused on any machine.

What is read:

- **Colour**: a ``sensor_msgs/msg/Image`` topic in ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` or ``mono8``
  (decoded to RGB uint8).
- **Depth**: a ``sensor_msgs/msg/Image`` topic in ``16UC1`` / ``mono16`` (millimetres) or ``32FC1``
  (metres), 0 or NaN meaning no depth; or an organised ``sensor_msgs/msg/PointCloud2`` (height > 1, x, y, z
  fields in the colour camera's optical frame), whose z is the depth. Depth is assumed registered to the
  colour image (same pixel grid); a frame whose sizes differ raises :class:`~.posed.FrameError`.
- **Intrinsics**: ``K``, ``width`` and ``height`` of a ``sensor_msgs/msg/CameraInfo`` topic (the images are
  assumed rectified: distortion is not applied), or a camera passed in.
- **Poses**: ``tf2_msgs/msg/TFMessage`` on ``/tf`` and ``/tf_static`` (any topic of that type; those whose
  name ends in ``tf_static`` are static). The tree is built here: static links are constant, dynamic ones
  are interpolated at the colour image's ``header.stamp`` between the two nearest samples (linear in
  translation, spherical in rotation) and held constant for up to ``tf_tolerance`` beyond their first and
  last sample (tf2 itself refuses to extrapolate). The pose is world <- camera as a 4x4 float64 matrix. The
  camera frame is the colour message's ``header.frame_id`` unless ``camera_frame`` is given; ROS names the
  optical frame (X right, Y down, Z forward) of a camera ``*_optical_frame``, and the depth is along its Z.
  Nothing is rotated: a ``camera_frame`` that is not an optical frame gives that frame's pose (a warning
  says so), so name the optical frame. The world frame is the root of the tree the camera frame hangs from
  (``map``, ``odom``, ``world``...) unless ``world_frame`` is given. A bag without tf is refused, unless
  ``static_camera=True`` says the camera did not move: every frame then has the identity pose (the world is
  the camera frame) and tf is not read.

A topic not named is chosen when exactly one candidate exists (for colour, rgb/bgr topics before mono8
ones; for the camera info, the only one, else the ``camera_info`` beside the colour topic); otherwise
:class:`~.posed.PosedFolderError` lists the candidates and the argument to pass. Each colour image is paired
with the depth message nearest in stamp within ``max_dt``; colour images left without depth or pose are
listed in ``skipped`` with the reason, as :class:`~.tum.TumSequence` does.

Memory: opening reads the bag once, keeping of each image or cloud message only its stamp, frame id and
where it is (connection, receive time, rank among messages received at that time); tf and camera info
messages are small and read whole. A frame's two messages are read again (by receive time, which both
storage formats index) and decoded when the frame is asked for, so a bag of any length costs the index and
one frame. Decoding is vectorised: strided ``numpy`` views of the message data, honouring ``step`` /
``row_step`` padding and ``is_bigendian``. The bag stays open while frames are read (``close()``, or use
the sequence as a context manager); one sequence is not meant to be read from several threads at once.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..camera.pinhole import PinholeIntrinsics
from ..camera.poses import interpolate_poses
from .posed import FrameError, PosedFolderError, PosedFrame, PosedRGBD, PosedSequence, _few
from .rgbd import RGBDFrame

IMAGE = 'sensor_msgs/msg/Image'
CLOUD = 'sensor_msgs/msg/PointCloud2'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'
#: Colour encodings read: channels per pixel and the channels that give R, G, B.
COLOR_ENCODINGS = {'rgb8': (3, [0, 1, 2]), 'bgr8': (3, [2, 1, 0]), 'rgba8': (4, [0, 1, 2]),
                   'bgra8': (4, [2, 1, 0]), 'mono8': (1, [0, 0, 0])}
#: Depth encodings read: the pixel type and its units per metre.
DEPTH_ENCODINGS = {'16UC1': (np.uint16, 1000.0), 'mono16': (np.uint16, 1000.0), '32FC1': (np.float32, 1.0)}
#: ``sensor_msgs/msg/PointField`` data types a cloud's z may have.
_FLOAT_FIELDS = {7: np.float32, 8: np.float64}
_NS = 1_000_000_000


@cache
def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)  # these four message types are the same in every ROS 2 release


@dataclass(frozen=True)
class MessageRef:
    """Where one image or cloud message is in the bag, and its header (what the index keeps of it)."""

    topic: str
    connection: int  # the rosbags connection id
    log_time: int  # ns: when the bag received it (both storages index by it)
    rank: int  # among this connection's messages received at ``log_time``
    stamp: int  # ns: header.stamp
    frame_id: str


@dataclass(frozen=True)
class BagFrame(PosedFrame):
    """A frame of a bag: ``color_path`` and ``depth_path`` are the bag, the messages are referenced."""

    color: MessageRef
    depth: MessageRef


# -- decoding (messages of rosbags or of rclpy: anything with the message's fields) --------------------

def image_to_rgb(msg: Any, where: str = 'image') -> np.ndarray:
    """A colour ``sensor_msgs/Image`` (:data:`COLOR_ENCODINGS`) as ``(H, W, 3)`` uint8 RGB (a copy)."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise ValueError(f'{where}: encoding {msg.encoding!r} is not a colour encoding read here '
                         f'({", ".join(COLOR_ENCODINGS)})')
    channels, order = COLOR_ENCODINGS[msg.encoding]
    return np.ascontiguousarray(_pixels(msg, channels, np.uint8, where)[:, :, order])


def image_to_depth(msg: Any, where: str = 'depth image') -> np.ndarray:
    """A depth ``sensor_msgs/Image`` (:data:`DEPTH_ENCODINGS`) as ``(H, W)`` float32 metres, NaN = no depth."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ValueError(f'{where}: encoding {msg.encoding!r} is not a depth encoding read here '
                         f'({", ".join(DEPTH_ENCODINGS)})')
    dtype, per_metre = DEPTH_ENCODINGS[msg.encoding]
    depth = _pixels(msg, 1, dtype, where)[:, :, 0].astype(np.float32)
    if per_metre != 1.0:
        depth /= np.float32(per_metre)
    return _no_depth_to_nan(depth)


def cloud_to_depth(msg: Any, where: str = 'cloud') -> np.ndarray:
    """An organised ``sensor_msgs/PointCloud2`` in the optical frame as ``(H, W)`` float32 depth (its z)."""
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in 'xyz' if n not in fields]
    if missing:
        raise ValueError(f'{where}: no {", ".join(missing)} field (fields: {", ".join(fields) or "none"})')
    z = fields['z']
    if z.datatype not in _FLOAT_FIELDS:
        raise ValueError(f'{where}: field z has PointField datatype {z.datatype}, not FLOAT32 (7) or FLOAT64 (8)')
    dt = np.dtype(_FLOAT_FIELDS[z.datatype]).newbyteorder('>' if msg.is_bigendian else '<')
    h, w, point_step, row_step = int(msg.height), int(msg.width), int(msg.point_step), int(msg.row_step)
    if h < 2 or w < 1:
        raise ValueError(f'{where}: a cloud of {w}x{h} points is not organised (height must be > 1)')
    if z.offset + dt.itemsize > point_step or row_step < w * point_step:
        raise ValueError(f'{where}: field z at byte {z.offset} does not fit point_step {point_step} / row_step '
                         f'{row_step} for {w} points a row')
    buf = _bytes(msg.data)
    need = (h - 1) * row_step + (w - 1) * point_step + z.offset + dt.itemsize
    if buf.size < need:
        raise ValueError(f'{where}: {buf.size} bytes of data for {w}x{h} points (row_step {row_step}); '
                         f'{need} needed')
    zs = np.ndarray((h, w), dt, buffer=buf, offset=z.offset, strides=(row_step, point_step))
    return _no_depth_to_nan(zs.astype(np.float32))


def _pixels(msg: Any, channels: int, dtype: Any, where: str) -> np.ndarray:
    """A read-only ``(H, W, channels)`` view of an image message's data, honouring ``step`` and byte order."""
    dt = np.dtype(dtype).newbyteorder('>' if msg.is_bigendian else '<')
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * channels * dt.itemsize
    if h < 1 or w < 1:
        raise ValueError(f'{where}: empty image ({w}x{h})')
    if step < row:
        raise ValueError(f'{where}: step {step} is shorter than a row of {w} {msg.encoding} pixels ({row} bytes)')
    buf = _bytes(msg.data)
    need = (h - 1) * step + row
    if buf.size < need:
        raise ValueError(f'{where}: {buf.size} bytes of data for a {w}x{h} {msg.encoding} image with step '
                         f'{step}; {need} needed')
    return np.ndarray((h, w, channels), dt, buffer=buf, strides=(step, channels * dt.itemsize, dt.itemsize))


def _bytes(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    try:
        return np.frombuffer(data, np.uint8)  # bytes, memoryview, array.array('B') (rclpy)
    except TypeError:
        return np.asarray(data, np.uint8)


def _no_depth_to_nan(depth: np.ndarray) -> np.ndarray:
    with np.errstate(invalid='ignore'):
        depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth


def _stamp(header: Any) -> int:
    return int(header.stamp.sec) * _NS + int(header.stamp.nanosec)


def _stem(stamp: int) -> str:
    sec, nsec = divmod(stamp, _NS)
    return f'{sec}.{nsec:09d}'


# -- the transform tree ---------------------------------------------------------------------------------

@dataclass
class _Link:
    """parent <- child: samples sorted by stamp (one for a static link)."""

    parent: str
    static: bool
    stamps: np.ndarray  # (M,) int64 ns
    translations: np.ndarray  # (M, 3)
    quaternions: np.ndarray  # (M, 4) x, y, z, w


class TransformTree:
    """The frames of a bag's ``/tf`` and ``/tf_static``: each frame has one parent; poses at any stamps.

    ``transforms`` are ``(parent, child, stamp_ns, translation, quaternion_xyzw, static)``. A frame given
    two parents, or both a static and a dynamic link, is refused (ValueError), as is a cycle. A static link
    keeps its last value; a dynamic one keeps the last sample of each stamp.
    """

    def __init__(self, transforms: Iterable[tuple[str, str, int, Sequence[float], Sequence[float], bool]],
                 tolerance: float = 0.005) -> None:
        self.tolerance_ns = int(round(tolerance * _NS))
        grouped: dict[str, tuple[str, bool, list]] = {}
        for parent, child, stamp, t, q, static in transforms:
            if child == parent:
                raise ValueError(f'tf: frame {child!r} is given as its own parent')
            prev = grouped.setdefault(child, (parent, static, []))
            if prev[0] != parent:
                raise ValueError(f'tf: frame {child!r} has two parents ({prev[0]!r} and {parent!r})')
            if prev[1] != static:
                raise ValueError(f'tf: {parent} -> {child} is published both on a static and a dynamic tf topic')
            prev[2].append((stamp, *t, *q))
        self.links: dict[str, _Link] = {}
        for child, (parent, static, rows) in grouped.items():
            samples = np.array(rows, dtype=np.float64)
            stamps = np.array([r[0] for r in rows], dtype=np.int64)
            if static:
                stamps, samples = stamps[-1:], samples[-1:]
            else:
                order = np.argsort(stamps, kind='stable')
                stamps, samples = stamps[order], samples[order]
                last = np.append(stamps[1:] != stamps[:-1], True)  # the last sample of each stamp
                stamps, samples = stamps[last], samples[last]
            q = samples[:, 4:]
            norm = np.linalg.norm(q, axis=1)
            if not (np.isfinite(samples[:, 1:]).all() and (norm > 1e-9).all()):
                raise ValueError(f'tf: {parent} -> {child} has a transform that is not finite or a zero quaternion')
            self.links[child] = _Link(parent, static, stamps, samples[:, 1:4], q / norm[:, None])
        self.frames = set(self.links) | {link.parent for link in self.links.values()}
        for frame in self.links:
            self.root(frame)  # refuses cycles

    def root(self, frame: str) -> str:
        """The root of the tree ``frame`` hangs from (``frame`` itself if it has no parent)."""
        seen = [frame]
        while frame in self.links:
            frame = self.links[frame].parent
            if frame in seen:
                raise ValueError(f'tf: the frames {" -> ".join(seen)} -> {frame} form a cycle')
            seen.append(frame)
        return frame

    def to_root(self, frame: str, stamps: np.ndarray) -> tuple[np.ndarray, list[str | None], str]:
        """Poses root <- ``frame`` at each stamp (ns) as ``(N, 4, 4)``, why each is unknown (or None), and the root."""
        stamps = np.asarray(stamps, dtype=np.int64)
        poses = np.tile(np.eye(4), (len(stamps), 1, 1))
        problems: list[str | None] = [None] * len(stamps)
        while frame in self.links:
            link = self.links[frame]
            step, outside = self._at(link, stamps)
            poses = step @ poses
            for k in np.flatnonzero(outside):
                if problems[k] is None:
                    s0, s1 = link.stamps[0], link.stamps[-1]
                    problems[k] = (f'stamp {_stem(int(stamps[k]))} is outside the tf samples of {link.parent} -> '
                                   f'{frame} ({_stem(int(s0))} to {_stem(int(s1))}, '
                                   f'tolerance {self.tolerance_ns / 1e6:g} ms)')
            frame = link.parent
        return poses, problems, frame

    def _at(self, link: _Link, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poses parent <- child at each stamp, and which stamps lie outside the link's samples (plus tolerance)."""
        s = link.stamps
        if link.static:
            outside = np.zeros(len(stamps), bool)
        else:
            outside = (stamps < s[0] - self.tolerance_ns) | (stamps > s[-1] + self.tolerance_ns)
        # held at the ends: within the tolerance that is the pose wanted, beyond it `outside` says so
        return interpolate_poses(s, link.translations, link.quaternions, stamps), outside


def _rigid_inverse(poses: np.ndarray) -> np.ndarray:
    inv = np.tile(np.eye(4), (len(poses), 1, 1))
    rt = np.transpose(poses[:, :3, :3], (0, 2, 1))
    inv[:, :3, :3] = rt
    inv[:, :3, 3] = -(rt @ poses[:, :3, 3, None])[:, :, 0]
    return inv


# -- the sequence ---------------------------------------------------------------------------------------

class BagSequence(PosedSequence):
    """The posed colour + depth frames of a rosbag2 (a folder with ``metadata.yaml``, or a .db3 / .mcap file).

    ``image_topic``, ``depth_topic`` and ``info_topic`` choose the topics (default: the only candidate);
    ``camera`` replaces the CameraInfo topic; ``world_frame`` and ``camera_frame`` the tf frames (default:
    the root of the camera's tree, and the colour images' ``header.frame_id``); ``max_dt`` (s) is how far
    apart a colour and a depth stamp may be; ``tf_tolerance`` (s) how far beyond its samples a dynamic tf
    link is held; ``static_camera`` gives every frame the identity pose without reading tf. After opening:
    ``frames``, ``skipped`` ((name, reason) of colour images left out), ``warnings`` (what was assumed), the
    topics and frames used, ``camera`` and ``depth_scale`` (units per metre of the depth topic: 1000 for
    millimetres, 1 for metres).
    """

    def __init__(self, path: str | Path, image_topic: str | None = None, depth_topic: str | None = None,
                 info_topic: str | None = None, world_frame: str | None = None, camera_frame: str | None = None,
                 max_dt: float = 0.02, tf_tolerance: float = 0.005, camera: PinholeIntrinsics | None = None,
                 static_camera: bool = False) -> None:
        self.path = Path(path)
        self.image_topic, self.depth_topic, self.info_topic = image_topic, depth_topic, info_topic
        self.world_frame, self.camera_frame = world_frame, camera_frame
        self.max_dt, self.tf_tolerance, self.static_camera = max_dt, tf_tolerance, static_camera
        self.frames: list[BagFrame] = []
        self.skipped: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self._reader: Any = None
        self._reader = self._open()
        try:
            self._index(camera)
        except BaseException:
            self.close()
            raise

    # -- opening

    def _open(self) -> Any:
        from rosbags.rosbag2 import Reader, ReaderError

        if not self.path.exists():
            raise PosedFolderError(f'{self.path}: no such rosbag2 (a folder with metadata.yaml, or a .db3 or '
                                   '.mcap file)')
        try:
            reader = Reader(self.path)
            reader.open()
        except (ReaderError, OSError, ValueError, KeyError) as exc:
            raise PosedFolderError(f'{self.path}: not a readable rosbag2 ({exc})') from exc
        return reader

    def _fail(self, what: str) -> PosedFolderError:
        return PosedFolderError(f'{self.path}: {what}')

    def _index(self, camera: PinholeIntrinsics | None) -> None:
        types: dict[str, set[str]] = {}
        for c in self._reader.connections:
            types.setdefault(c.topic, set()).add(c.msgtype)
        self._types = {t: next(iter(s)) for t, s in types.items() if len(s) == 1}

        def listing(wanted: tuple[str, ...]) -> str:
            return _few(sorted(t for t, ty in self._types.items() if ty in wanted), 8) or 'none'

        for arg, topic, wanted in (('image_topic', self.image_topic, (IMAGE,)),
                                   ('depth_topic', self.depth_topic, (IMAGE, CLOUD)),
                                   ('info_topic', self.info_topic, (CAMERA_INFO,))):
            if topic is None:
                continue
            if topic not in types:
                raise self._fail(f'{arg} {topic}: no such topic (topics of type {" or ".join(wanted)}: '
                                 f'{listing(wanted)})')
            if self._types.get(topic) not in wanted:
                raise self._fail(f'{arg} {topic} carries {" and ".join(sorted(types[topic]))}, not '
                                 f'{" or ".join(wanted)}')
        if self.image_topic and self.depth_topic:
            pictures = [self.image_topic, self.depth_topic]
        else:
            pictures = sorted(t for t, ty in self._types.items() if ty in (IMAGE, CLOUD))
        infos = ([self.info_topic] if self.info_topic else
                 [] if camera is not None else sorted(t for t, ty in self._types.items() if ty == CAMERA_INFO))
        tfs = [] if self.static_camera else sorted(t for t, ty in self._types.items() if ty == TF_MESSAGE)
        refs, kinds, cameras, transforms, undecodable = self._scan(pictures, infos, tfs)

        self._choose_topics(refs, kinds)
        self.camera = camera if camera is not None else self._camera_from_info(cameras)
        encoding = kinds[self.depth_topic][1]
        self.depth_scale = DEPTH_ENCODINGS[encoding][1] if encoding in DEPTH_ENCODINGS else 1.0
        chosen = (self.image_topic, self.depth_topic)
        self.skipped = [(name, why) for topic, name, why in undecodable if topic in chosen]
        self._associate(refs[self.image_topic], refs[self.depth_topic], transforms)

    def _scan(self, pictures: list[str], infos: list[str], tfs: list[str]):
        """Read the bag once: the image and cloud index, what each topic carries, cameras, tf, undecodable messages."""
        from rosbags.serde import SerdeError

        store = _typestore()
        wanted = set(pictures) | set(infos) | set(tfs)
        connections = [c for c in self._reader.connections if c.topic in wanted]
        refs: dict[str, list[MessageRef]] = {t: [] for t in pictures}
        kinds: dict[str, tuple[str, str]] = {}  # topic -> ('color' | 'depth' | 'other', encoding or what)
        cameras: dict[str, dict[tuple, bool]] = {t: {} for t in infos}  # topic -> {(k, w, h): has distortion}
        transforms: list[tuple] = []
        undecodable: list[tuple[str, str, str]] = []  # (topic, name, reason)
        last: dict[int, tuple[int, int]] = {}  # connection -> (receive time, rank) of its latest message
        for conn, log_time, raw in self._reader.messages(connections=connections):
            topic = conn.topic
            if topic in refs:
                prev = last.get(conn.id)
                rank = prev[1] + 1 if prev and prev[0] == log_time else 0
                last[conn.id] = (log_time, rank)
            try:
                msg = store.deserialize_cdr(raw, conn.msgtype)
            except SerdeError as exc:
                if topic in refs:
                    undecodable.append((topic, f'{topic} message received at {_stem(log_time)}',
                                        f'cannot be decoded ({exc})'))
                continue
            if topic in refs:
                refs[topic].append(MessageRef(topic, conn.id, log_time, rank, _stamp(msg.header),
                                              msg.header.frame_id))
                if topic not in kinds:
                    kinds[topic] = _kind(msg, conn.msgtype)
            elif topic in cameras:
                key = (tuple(float(v) for v in msg.k), int(msg.width), int(msg.height))
                cameras[topic][key] = cameras[topic].get(key, False) or bool(np.any(np.asarray(msg.d) != 0))
            else:
                static = topic.endswith('tf_static')
                for tr in msg.transforms:
                    t, q = tr.transform.translation, tr.transform.rotation
                    transforms.append((tr.header.frame_id.lstrip('/'), tr.child_frame_id.lstrip('/'),
                                       _stamp(tr.header), (t.x, t.y, t.z), (q.x, q.y, q.z, q.w), static))
        return refs, kinds, cameras, transforms, undecodable

    def _choose_topics(self, refs: dict[str, list[MessageRef]], kinds: dict[str, tuple[str, str]]) -> None:
        def described(topics: list[str]) -> str:
            return ', '.join(f'{t} ({_describe(kinds.get(t))})' for t in topics) or 'none'

        pictures = sorted(refs)
        given = (('image_topic', self.image_topic, 'color'), ('depth_topic', self.depth_topic, 'depth'))
        for arg, topic, kind in given:
            if topic is not None and kinds.get(topic, ('', ''))[0] != kind:
                raise self._fail(f'{arg} {topic}: {_describe(kinds.get(topic))}, not a '
                                 f'{"colour image" if kind == "color" else "depth image or organised cloud"}')
        if self.image_topic is None:
            colour = [t for t in pictures if kinds.get(t, ('', ''))[0] == 'color']
            rgb = [t for t in colour if kinds[t][1] != 'mono8']
            self.image_topic = self._only(rgb or colour, 'colour image topic', 'image_topic',
                                          f'image and cloud topics: {described(pictures)}')
        if self.depth_topic is None:
            depth = [t for t in pictures if kinds.get(t, ('', ''))[0] == 'depth']
            self.depth_topic = self._only(depth, 'depth image or organised cloud topic', 'depth_topic',
                                          f'image and cloud topics: {described(pictures)}')

    def _only(self, candidates: list[str], what: str, arg: str, context: str) -> str:
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise self._fail(f'no {what} ({context})')
        raise self._fail(f'{len(candidates)} candidates for the {what}: {", ".join(candidates)}; pass {arg}= '
                         'to choose one')

    def _camera_from_info(self, cameras: dict[str, dict[tuple, bool]]) -> PinholeIntrinsics:
        if self.info_topic is None:
            candidates = sorted(t for t, seen in cameras.items() if seen)
            beside = self.image_topic.rsplit('/', 1)[0] + '/camera_info'
            if len(candidates) > 1 and beside in candidates:
                candidates = [beside]
            self.info_topic = self._only(candidates, 'sensor_msgs/msg/CameraInfo topic', 'info_topic',
                                         f'CameraInfo topics: {", ".join(sorted(cameras)) or "none"}; or pass '
                                         'camera=')
        seen = cameras[self.info_topic]
        if not seen:
            raise self._fail(f'info_topic {self.info_topic}: no readable message')
        if len(seen) > 1:
            raise self._fail(f'{self.info_topic}: the camera changes within the bag ({len(seen)} different K / '
                             'sizes); pass camera= to choose one')
        (k, width, height), distorted = next(iter(seen.items()))
        try:
            cam = PinholeIntrinsics.from_matrix(np.array(k), width, height)
        except ValueError as exc:
            raise self._fail(f'{self.info_topic}: K {list(k)} is not a camera ({exc})') from exc
        if distorted:
            self.warnings.append(f'{self.info_topic} has distortion coefficients; they are not applied (the images '
                                 'are taken as rectified)')
        return cam

    def _associate(self, colors: list[MessageRef], depths: list[MessageRef], transforms: list[tuple]) -> None:
        """Pair colour with depth by stamp, pose the pairs and fill ``frames`` and ``skipped``."""
        colors = sorted(colors, key=lambda r: r.stamp)
        depths = sorted(depths, key=lambda r: r.stamp)
        if not colors or not depths:
            raise self._fail(f'no readable message on {self.image_topic if not colors else self.depth_topic}')
        cs = np.array([r.stamp for r in colors], np.int64)
        ds = np.array([r.stamp for r in depths], np.int64)
        hi = np.clip(np.searchsorted(ds, cs), 0, len(ds) - 1)
        lo = np.clip(hi - 1, 0, len(ds) - 1)
        near = np.where(np.abs(ds[lo] - cs) <= np.abs(ds[hi] - cs), lo, hi)
        paired = np.abs(ds[near] - cs) <= int(round(self.max_dt * _NS))
        reasons: list[str | None] = [None if p else f'no message on {self.depth_topic} within '
                                     f'{self.max_dt * 1e3:g} ms' for p in paired]
        poses = np.tile(np.eye(4), (len(colors), 1, 1))
        if not self.static_camera:
            self._pose(colors, np.flatnonzero(paired), poses, reasons, transforms)
        for k, ref in enumerate(colors):
            if reasons[k] is not None:
                self.skipped.append((_stem(ref.stamp), reasons[k]))
                continue
            self.frames.append(BagFrame(len(self.frames), _stem(ref.stamp), self.path, self.path, poses[k].copy(), ref,
                                        depths[near[k]]))
        if not self.frames:
            first = self.skipped[0] if self.skipped else ('', 'none')
            raise self._fail(f'no colour image on {self.image_topic} has both depth and a pose ({len(self.skipped)} '
                             f'skipped; first {first[0]}: {first[1]})')
        f = self.frames[0]
        if f.depth.frame_id and f.color.frame_id and f.depth.frame_id != f.color.frame_id:
            self.warnings.append(f'{self.depth_topic} is in frame {f.depth.frame_id!r}, {self.image_topic} in '
                                 f'{f.color.frame_id!r}: the depth is taken as registered to the colour image')

    def _pose(self, colors: list[MessageRef], which: np.ndarray, poses: np.ndarray, reasons: list[str | None],
              transforms: list[tuple]) -> None:
        """World <- camera of the colour messages ``which`` into ``poses``; a reason where there is none."""
        if not transforms:
            raise self._fail('no /tf or /tf_static message, so the frames have no poses; pass static_camera=True '
                             'if the camera did not move (every frame then has the identity pose)')
        try:
            tree = TransformTree(transforms, self.tf_tolerance)
        except ValueError as exc:
            raise self._fail(str(exc)) from exc
        known = _few(sorted(tree.frames), 8)
        for arg, frame in (('camera_frame', self.camera_frame), ('world_frame', self.world_frame)):
            if frame is not None and frame not in tree.frames:
                raise self._fail(f'{arg} {frame!r} is not a tf frame (frames: {known})')
        by_frame: dict[str, list[int]] = {}
        for k in which:
            by_frame.setdefault(self.camera_frame or colors[k].frame_id.lstrip('/'), []).append(int(k))
        for cam_frame, ks in by_frame.items():
            if cam_frame not in tree.frames:
                why = (f'camera frame {cam_frame!r} is not a tf frame (frames: {known})' if cam_frame else
                       'the colour message has no header.frame_id; pass camera_frame=')
                for k in ks:
                    reasons[k] = why
                continue
            if self.world_frame is None:
                self.world_frame = tree.root(cam_frame)
            if self.camera_frame is None:
                self.camera_frame = cam_frame
            if 'optical' not in cam_frame:
                self.warnings.append(f'camera frame {cam_frame!r} is not named as an optical frame: poses are those '
                                     'of this frame, not rotated; name the optical frame with camera_frame=')
            stamps = np.array([colors[k].stamp for k in ks], np.int64)
            root_cam, problems, root = tree.to_root(cam_frame, stamps)
            if root == self.world_frame:
                world_cam = root_cam
            else:
                root_world, world_problems, world_root = tree.to_root(self.world_frame, stamps)
                if world_root != root:
                    for k in ks:
                        reasons[k] = (f'no tf chain from {cam_frame!r} (tree of {root!r}) to the world frame '
                                      f'{self.world_frame!r} (tree of {world_root!r})')
                    continue
                world_cam = _rigid_inverse(root_world) @ root_cam
                problems = [p or q for p, q in zip(problems, world_problems)]
            for j, k in enumerate(ks):
                poses[k] = world_cam[j]
                if problems[j] is not None:
                    reasons[k] = problems[j]

    # -- reading frames

    def __getitem__(self, i: int) -> PosedRGBD:
        """Frame ``i`` decoded from the bag; :class:`FrameError` if its messages cannot be read."""
        from rosbags.rosbag2 import ReaderError
        from rosbags.serde import SerdeError

        f = self.frames[i]
        try:
            color = image_to_rgb(self._message(f.color), f.color.topic)
            depth_msg = self._message(f.depth)
            if self._types[f.depth.topic] == CLOUD:
                depth = cloud_to_depth(depth_msg, f.depth.topic)
            else:
                depth = image_to_depth(depth_msg, f.depth.topic)
            cam = self.camera
            if color.shape[:2] != (cam.height, cam.width) or depth.shape != color.shape[:2]:
                raise ValueError(f'colour {color.shape[1]}x{color.shape[0]}, depth {depth.shape[1]}x{depth.shape[0]}'
                                 f' and camera {cam.width}x{cam.height} sizes differ')
        except (OSError, ValueError, ReaderError, SerdeError) as exc:
            raise FrameError(f'{self.path}: frame {f.stem}: {exc}') from exc
        return PosedRGBD(frame=RGBDFrame(color=color, depth=depth, camera=self.camera, name=f.stem), pose=f.pose,
                         index=f.index, stem=f.stem)

    def _message(self, ref: MessageRef) -> Any:
        """The message ``ref`` points to, read again from the bag and deserialised."""
        if self._reader is None:
            self._reader = self._open()
        conn = {c.id: c for c in self._reader.connections}.get(ref.connection)
        if conn is None:
            raise ValueError(f'{ref.topic}: not in the bag any more')
        raws = [raw for _, _, raw in self._reader.messages(connections=[conn], start=ref.log_time,
                                                          stop=ref.log_time + 1)]
        if ref.rank >= len(raws):
            raise ValueError(f'{ref.topic}: the message received at {_stem(ref.log_time)} is no longer in the bag')
        store = _typestore()
        # the rank of equal receive times should be stable; the header stamp says which one it is anyway
        for k in [ref.rank, *(k for k in range(len(raws)) if k != ref.rank)]:
            msg = store.deserialize_cdr(raws[k], conn.msgtype)
            if _stamp(msg.header) == ref.stamp and (len(raws) == 1 or msg.header.frame_id == ref.frame_id):
                return msg
        raise ValueError(f'{ref.topic}: the message received at {_stem(ref.log_time)} has changed since the bag '
                         'was opened')

    def close(self) -> None:
        """Close the bag (reading a frame afterwards opens it again)."""
        reader, self._reader = self._reader, None
        if reader is not None and reader.is_open:
            reader.close()

    def __enter__(self) -> BagSequence:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {**self.__dict__, '_reader': None}  # an open bag does not travel to another process


def _kind(msg: Any, msgtype: str) -> tuple[str, str]:
    """What a topic carries, from one of its messages: ('color' | 'depth' | 'other', encoding or description)."""
    if msgtype == IMAGE:
        enc = msg.encoding
        kind = 'color' if enc in COLOR_ENCODINGS else 'depth' if enc in DEPTH_ENCODINGS else 'other'
        return kind, enc
    names = {f.name for f in msg.fields}
    if msg.height > 1 and {'x', 'y', 'z'} <= names:
        return 'depth', f'organised cloud {msg.width}x{msg.height}'
    return 'other', f'cloud {msg.width}x{msg.height} with fields {",".join(sorted(names)) or "none"}'


def _describe(kind: tuple[str, str] | None) -> str:
    if kind is None:
        return 'no readable message'
    return kind[1] if kind[0] != 'other' or kind[1].startswith('cloud') else f'encoding {kind[1]}'
