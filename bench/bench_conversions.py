"""Message conversions: PointCloud2 <-> arrays and Image <-> arrays, against the straightforward ways.

Times ``vizion3d_ros.ros.conversions`` on messages built with the real generated sensor_msgs classes and
passed once through ``serialize_message`` / ``deserialize_message``, so ``data`` is the ``array.array``
rclpy hands a subscriber:

1. **cloud -> arrays**: ``pointcloud2_to_arrays`` plus ``cloud_to_camera_gl`` (the node's next step, which
   makes the contiguous OpenGL points) for the real TUM frame's organised 640x480 XYZRGB cloud, unorganised
   XYZRGB clouds of 10k to 2M points, and two strided layouts (32-byte PCL-style XYZRGB, 22-byte packed
   x y z intensity ring time);
2. **arrays -> colourised cloud**: the node's annotated cloud (objects painted over the input colours)
   built by ``recolor`` + ``xyzrgb_to_pointcloud2`` and by ``xyzrgb_to_pointcloud2(groups=...)``;
3. **publish side**: what the generated ``data`` setter costs per argument type, and
   ``serialize_message`` (what ``publish`` pays) / ``deserialize_message`` (what a subscriber pays);
4. **images**: ``image_to_rgb`` for VGA rgb8, bgr8, mono8 and ``rgb_to_image``.

Baselines, in the same run and interleaved with ours (round robin, garbage collection off): per point
(``struct`` per point, as sensor_msgs_py's ``read_points`` did before it returned numpy arrays; run on
the first ``--subset`` points and scaled linearly to the full size) and per field (one numpy copy per
field, ``column_stack``, ``tobytes``). Every baseline's output is checked against ours before timing.

Writes ``conversions.json``, ``conversions.md`` and ``conversions_scaling.png`` into ``--out``.

    source scripts/env.sh
    python bench/bench_conversions.py                     # ~1-2 min
    python bench/bench_conversions.py --quick --out /tmp/c # smoke run, a few seconds
"""
from __future__ import annotations

import argparse
import gc
import json
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from _machine import machine_info
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image, PointCloud2, PointField

from vizion3d_ros.core.camera.transforms import cloud_to_camera_gl, pose_matrix
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.render.colors import recolor
from vizion3d_ros.ros.conversions import (
    image_to_rgb,
    pointcloud2_to_arrays,
    rgb_to_image,
    xyzrgb_to_pointcloud2,
)
from vizion3d_ros.tools.scenes import load_scene

NAME = 'conversions'
TARGET_MS = 3.0
TARGET_POINTS = (250_000, 350_000)  # the "300k" cases the target applies to
OURS = 'ours'
NODE = 'node: annotated_cloud'


@dataclass
class Config:
    """What one run measures (the command-line options)."""

    repeats: int = 25
    warmup: int = 3
    budget_s: float = 8.0
    subset: int = 20_000
    sizes: tuple[int, ...] = (10_000, 100_000, 300_000, 1_000_000, 2_000_000)
    frame: str | None = None
    seed: int = 0
    out: str = 'docs/bench'


QUICK = dict(repeats=3, warmup=1, budget_s=1.0, subset=2_000, sizes=(10_000, 300_000))


# ----------------------------------------------------------------------------- timing

def spread_ms(seconds: list[float]) -> dict:
    """Median, p10, p90 (ms) and the number of timed runs."""
    p10, med, p90 = np.percentile(np.asarray(seconds) * 1e3, [10, 50, 90])
    return {'median_ms': float(med), 'p10_ms': float(p10), 'p90_ms': float(p90), 'runs': len(seconds)}


@dataclass
class Variant:
    """One way of doing a case's conversion: ``fn()`` does it on ``scale``-times fewer points (1 = all)."""

    fn: Callable[[], object]
    scale: float = 1.0
    subset: int | None = None


def time_interleaved(variants: dict[str, Variant], cfg: Config) -> dict[str, dict]:
    """Round-robin timing (the start rotates each round); stops after ``budget_s`` once 5 rounds ran."""
    names = list(variants)
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(cfg.warmup):
        for k in names:
            variants[k].fn()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for r in range(cfg.repeats):
            for k in names[r % len(names):] + names[:r % len(names)]:
                t = time.perf_counter()
                variants[k].fn()
                times[k].append((time.perf_counter() - t) * variants[k].scale)
            if r + 1 >= min(5, cfg.repeats) and time.perf_counter() - start > cfg.budget_s:
                break
    finally:
        gc.enable()
    return {k: {**spread_ms(times[k]), 'scaled_from': variants[k].subset} for k in names}


def speedups(stats: dict[str, dict], ours: str = OURS) -> dict[str, float]:
    """Median of each other variant over the median of ``ours``."""
    base = stats[ours]['median_ms']
    return {k: v['median_ms'] / base for k, v in stats.items() if k != ours}


# ----------------------------------------------------------------------------- messages

@dataclass(frozen=True)
class Layout:
    """A PointCloud2 point layout: (name, offset, PointField datatype) per field and the point size."""

    name: str
    point_step: int
    fields: tuple[tuple[str, int, int], ...]
    about: str


F32, U32, U16 = PointField.FLOAT32, PointField.UINT32, PointField.UINT16
XYZRGB16 = Layout('xyzrgb16', 16, (('x', 0, F32), ('y', 4, F32), ('z', 8, F32), ('rgb', 12, F32)),
                  'x y z rgb, 16 bytes (what the node and the player publish)')
XYZRGB32 = Layout('xyzrgb32', 32, (('x', 0, F32), ('y', 4, F32), ('z', 8, F32), ('rgb', 16, F32)),
                  'x y z (padded to 16) rgb (padded to 32): PCL PointXYZRGB')
XYZIRT22 = Layout('xyzirt22', 22, (('x', 0, F32), ('y', 4, F32), ('z', 8, F32), ('intensity', 12, F32),
                                   ('ring', 16, U16), ('time', 18, F32)),
                  'x y z intensity ring(uint16) time packed in 22 bytes: no colour, unaligned floats')
_NUMPY = {F32: '<f4', U32: '<u4', U16: '<u2'}


def received(msg):
    """``msg`` as a subscriber gets it: serialised and deserialised by rclpy (``data`` an array.array)."""
    return deserialize_message(serialize_message(msg), type(msg))


def make_cloud(layout: Layout, xyz: np.ndarray, rgb: np.ndarray, width: int, height: int) -> PointCloud2:
    """A received PointCloud2 of ``layout`` holding ``xyz`` (and ``rgb`` where the layout has colour)."""
    names = [f[0] for f in layout.fields]
    dtype = np.dtype({'names': names, 'formats': [_NUMPY[f[2]] for f in layout.fields],
                      'offsets': [f[1] for f in layout.fields], 'itemsize': layout.point_step})
    pts = np.zeros(len(xyz), dtype)
    for k, c in enumerate('xyz'):
        pts[c] = xyz[:, k]
    if 'rgb' in names:
        c = rgb.astype(np.uint32)
        pts['rgb'] = ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)
    if 'intensity' in names:
        pts['intensity'] = np.linspace(0, 100, len(xyz), dtype=np.float32)
        pts['ring'] = np.arange(len(xyz)) % 64
        pts['time'] = np.linspace(0, 0.1, len(xyz), dtype=np.float32)
    msg = PointCloud2(height=height, width=width, is_bigendian=False, point_step=layout.point_step,
                      row_step=layout.point_step * width, is_dense=bool(np.isfinite(xyz).all()),
                      fields=[PointField(name=n, offset=o, datatype=t, count=1) for n, o, t in layout.fields])
    msg.data = pts.tobytes()
    return received(msg)


def unorganised(frame_xyz: np.ndarray, frame_rgb: np.ndarray, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``n`` of the frame's valid points drawn with replacement, with 2 mm jitter, and their colours."""
    valid = np.flatnonzero(np.isfinite(frame_xyz).all(axis=1))
    pick = rng.choice(valid, n)
    xyz = frame_xyz[pick] + rng.normal(scale=0.002, size=(n, 3)).astype(np.float32)
    return xyz.astype(np.float32), frame_rgb[pick]


def object_groups(n: int, width: int, height: int, rng, count: int = 6) -> list[np.ndarray]:
    """Point indices of ``count`` objects: 100x80-pixel boxes of an organised cloud, 3 % each otherwise."""
    if height > 1:
        groups = []
        for _ in range(count):
            x0, y0 = rng.integers(0, width - 100), rng.integers(0, height - 80)
            rows, cols = np.mgrid[y0:y0 + 80, x0:x0 + 100]
            groups.append((rows * width + cols).ravel().astype(np.uint32))
        return groups
    return [np.sort(rng.choice(n, max(n * 3 // 100, 1), replace=False)).astype(np.uint32) for _ in range(count)]


# ----------------------------------------------------------------------------- clouds: the ways

_STRUCT = {PointField.INT8: 'b', PointField.UINT8: 'B', PointField.INT16: 'h', PointField.UINT16: 'H',
           PointField.INT32: 'i', PointField.UINT32: 'I', PointField.FLOAT32: 'f', PointField.FLOAT64: 'd'}


def _colour_field(msg) -> str | None:
    names = {f.name for f in msg.fields}
    return 'rgb' if 'rgb' in names else ('rgba' if 'rgba' in names else None)


def _unpack_rgb(packed: np.ndarray) -> np.ndarray:
    packed = packed.astype(np.uint32)
    return np.column_stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255]).astype(np.uint8)


def read_ours(msg):
    """What the node does: arrays of the message, then its contiguous OpenGL points."""
    arrays = pointcloud2_to_arrays(msg)
    return cloud_to_camera_gl(arrays.xyz), arrays.rgb


def read_per_point(msg, limit: int):
    """One ``struct`` unpack per point (x, y, z and packed colour bits), then arrays from the tuples."""
    fields = {f.name: f for f in msg.fields}
    colour = _colour_field(msg)
    wanted = sorted((fields[c] for c in ('x', 'y', 'z', colour) if c), key=lambda f: f.offset)
    fmt, pos = '>' if msg.is_bigendian else '<', 0
    for f in wanted:
        fmt += 'x' * (f.offset - pos) + ('I' if f.name == colour else _STRUCT[f.datatype])
        pos = f.offset + struct.calcsize('<' + _STRUCT[f.datatype])
    unpack = struct.Struct(fmt).unpack_from
    order = [f.name for f in wanted]
    w, ps, rs = msg.width, msg.point_step, msg.row_step
    data = msg.data
    rows = np.array([unpack(data, (i // w) * rs + (i % w) * ps) for i in range(min(limit, w * msg.height))])
    gl = (rows[:, [order.index(c) for c in 'xyz']] * [1.0, -1.0, -1.0]).astype(np.float32)
    return gl, (_unpack_rgb(rows[:, order.index(colour)]) if colour else None)


def read_per_field(msg):
    """One numpy copy per field out of the ``(N, point_step)`` bytes, stacked, then the axis flip."""
    w, h, ps, rs = msg.width, msg.height, msg.point_step, msg.row_step
    raw = np.frombuffer(msg.data, np.uint8)[:rs * h].reshape(h, rs)[:, :w * ps].reshape(w * h, ps)
    end = '>' if msg.is_bigendian else '<'
    offsets = {f.name: f.offset for f in msg.fields}

    def column(name: str, kind: str) -> np.ndarray:
        return raw[:, offsets[name]:offsets[name] + 4].copy().view(end + kind)[:, 0]

    xyz = np.column_stack([column(c, 'f4') for c in 'xyz'])
    gl = xyz * np.array([1, -1, -1], np.float32)
    colour = _colour_field(msg)
    return gl, (_unpack_rgb(column(colour, 'u4')) if colour else None)


def write_ours_recolor(xyz, rgb, groups, width, height):
    """The node's annotated cloud before ``messages.annotated_cloud``: ``core.colors.recolor``, then the message."""
    return xyzrgb_to_pointcloud2(xyz, recolor(rgb, groups), None, width, height)


def write_ours_groups(xyz, rgb, groups, width, height):
    """The same cloud with the painting done on the packed colours in the message buffer."""
    return xyzrgb_to_pointcloud2(xyz, rgb, None, width, height, groups=groups)


def _fields16() -> list[PointField]:
    return [PointField(name=n, offset=o, datatype=t, count=1) for n, o, t in XYZRGB16.fields]


def write_per_field(xyz, rgb, groups, width, height):
    """The previous implementation (commit 08292b6): (N, 4) float32 block, packed colours, ``tobytes``."""
    colors = recolor(rgb, groups)
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    buf = np.empty((len(xyz), 4), dtype=np.float32)
    buf[:, :3] = xyz
    c = np.asarray(colors, dtype=np.uint32)
    buf.view(np.uint32)[:, 3] = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    return PointCloud2(height=height, width=width, fields=_fields16(), is_bigendian=False, point_step=16,
                       row_step=16 * width, is_dense=bool(np.isfinite(xyz).all()), data=buf.tobytes())


def write_per_point(xyz, rgb, groups, width, height):
    """``struct.pack`` per point into ``bytes``, after the same ``recolor``."""
    colors = recolor(rgb, groups)
    pack = struct.Struct('<fffI').pack
    data = b''.join([pack(x, y, z, (r << 16) | (g << 8) | b)
                     for (x, y, z), (r, g, b) in zip(xyz.tolist(), colors.tolist())])
    return PointCloud2(height=height, width=width, fields=_fields16(), is_bigendian=False, point_step=16,
                       row_step=16 * width, is_dense=bool(np.isfinite(xyz).all()), data=data)


def _check_read(msg, limit: int) -> None:
    gl, rgb = read_ours(msg)
    for name, (gl_b, rgb_b) in {'per-field': read_per_field(msg), 'per-point': read_per_point(msg, limit)}.items():
        k = len(gl_b)
        if not (np.array_equal(gl[:k], gl_b, equal_nan=True) and (rgb is None) == (rgb_b is None)
                and (rgb is None or np.array_equal(rgb[:k], rgb_b))):
            raise RuntimeError(f'{name} read differs from ours on {msg.width}x{msg.height} points')


def _check_write(messages: dict[str, PointCloud2]) -> None:
    """Same bytes as ours (a subset's message: the same leading bytes); same is_dense at full size."""
    ours = messages[OURS]
    ref = bytes(ours.data)
    for name, msg in messages.items():
        data = bytes(msg.data)
        if data != ref[:len(data)] or (len(data) == len(ref) and msg.is_dense != ours.is_dense):
            raise RuntimeError(f'{name} builds a different cloud than ours')


# ----------------------------------------------------------------------------- clouds: the cases

@dataclass
class CloudCase:
    """One cloud: its name, layout, the points and colours (as the node has them) and the objects."""

    name: str
    layout: Layout
    xyz: np.ndarray
    rgb: np.ndarray
    width: int
    height: int

    @property
    def points(self) -> int:
        return self.width * self.height


def cloud_cases(cfg: Config, frame, rng) -> list[CloudCase]:
    """The organised frame, the unorganised sweep and the strided layouts."""
    h, w = frame.depth.shape
    fxyz = depth_to_points_optical(frame.depth, frame.camera)
    frgb = np.ascontiguousarray(frame.color).reshape(-1, 3)
    cases = [CloudCase(f'{frame.name}_{w}x{h}', XYZRGB16, fxyz, frgb, w, h)]
    for n in cfg.sizes:
        xyz, rgb = unorganised(fxyz, frgb, n, rng)
        cases.append(CloudCase(f'unorganised_{_short(n)}', XYZRGB16, xyz, rgb, n, 1))
    for layout in (XYZRGB32, XYZIRT22):
        for n in [s for s in cfg.sizes if s >= 300_000][:1] + [s for s in cfg.sizes if s > 1_000_000]:
            xyz, rgb = unorganised(fxyz, frgb, n, rng)
            cases.append(CloudCase(f'{layout.name}_{_short(n)}', layout, xyz, rgb, n, 1))
    return cases


def _short(n: int) -> str:
    return f'{n // 1_000_000}M' if n % 1_000_000 == 0 else f'{n // 1000}k'


def _row(case: CloudCase, stats: dict, **extra) -> dict:
    return {'case': case.name, 'points': case.points, 'layout': case.layout.name, 'organised': case.height > 1,
            'variants': stats, 'speedup': speedups(stats), **extra}


def bench_read(case: CloudCase, cfg: Config) -> dict:
    msg = make_cloud(case.layout, case.xyz, case.rgb, case.width, case.height)
    limit = min(cfg.subset, case.points)
    _check_read(msg, limit)
    stats = time_interleaved({
        OURS: Variant(lambda: read_ours(msg)),
        'per-field': Variant(lambda: read_per_field(msg)),
        'per-point': Variant(lambda: read_per_point(msg, limit), case.points / limit,
                             limit if limit < case.points else None),
    }, cfg)
    return _row(case, stats)


def bench_read_extrinsic(case: CloudCase, cfg: Config) -> dict:
    """The node's read with a ``cloud_to_camera`` extrinsic set (a cloud from another sensor)."""
    msg = make_cloud(case.layout, case.xyz, case.rgb, case.width, case.height)
    t = pose_matrix([0.05, -0.02, 0.1], [0.01, 0.02, 0.03, 1.0])
    stats = time_interleaved({OURS: Variant(lambda: cloud_to_camera_gl(pointcloud2_to_arrays(msg).xyz, t))}, cfg)
    return _row(case, stats, note='cloud_to_camera set: cloud_to_camera_gl applies a 4x4 in float64')


def _node_builder():
    """``messages.annotated_cloud`` (cloud, arrays, groups) where this checkout's node has it, else None."""
    from vizion3d_ros.ros import messages
    return getattr(messages, 'annotated_cloud', None)


def bench_write(case: CloudCase, cfg: Config, rng) -> dict:
    """Inputs as the node has them: the views ``pointcloud2_to_arrays`` returns for the received cloud."""
    cloud = make_cloud(case.layout, case.xyz, case.rgb, case.width, case.height)
    arrays = pointcloud2_to_arrays(cloud)
    xyz, rgb, w, h = arrays.xyz, arrays.rgb, case.width, case.height
    groups = object_groups(case.points, w, h, rng)
    limit = min(cfg.subset, case.points)
    sub = (np.ascontiguousarray(xyz[:limit]), np.ascontiguousarray(rgb[:limit]),
           [g[g < limit] for g in groups], limit, 1)
    ways = {OURS: write_ours_groups, 'recolor + ours': write_ours_recolor}
    node = _node_builder()
    if node is not None:
        ways[NODE] = lambda *_: node(cloud, arrays, groups)
    ways['per-field (previous)'] = write_per_field
    _check_write({**{k: f(xyz, rgb, groups, w, h) for k, f in ways.items()},
                  'per-point': write_per_point(*sub)})
    variants = {k: Variant(lambda f=f: f(xyz, rgb, groups, w, h)) for k, f in ways.items()}
    variants['per-point'] = Variant(lambda: write_per_point(*sub), case.points / limit,
                                    limit if limit < case.points else None)
    painted = len(np.unique(np.concatenate(groups)))
    return _row(case, time_interleaved(variants, cfg), painted_points=painted)


# ----------------------------------------------------------------------------- publish side

def bench_publish(case: CloudCase, cfg: Config) -> list[dict]:
    """``data`` setter per argument type, construction as the node does it, (de)serialisation."""
    msg = xyzrgb_to_pointcloud2(case.xyz, case.rgb, None, case.width, case.height)
    nbytes = len(msg.data)
    limit = min(cfg.subset, case.points) * 16
    as_array, as_bytes = msg.data, bytes(msg.data)
    as_numpy = np.frombuffer(as_bytes, np.uint8)
    target, checked = PointCloud2(), PointCloud2(check_fields=True)
    blob = serialize_message(msg)
    ops = {
        'xyzrgb_to_pointcloud2': Variant(lambda: xyzrgb_to_pointcloud2(case.xyz, case.rgb, None, case.width,
                                                                       case.height)),
        'data = array.array': Variant(lambda: setattr(target, 'data', as_array)),
        'data = array.array, check_fields=True': Variant(lambda: setattr(checked, 'data', as_array)),
        'data = bytes': Variant(lambda: setattr(target, 'data', as_bytes)),
        'data = memoryview': Variant(lambda: setattr(target, 'data', memoryview(as_bytes)[:limit]),
                                     nbytes / limit, limit // 16),
        'PointCloud2(data=ndarray)': Variant(lambda: PointCloud2(data=as_numpy[:limit]), nbytes / limit, limit // 16),
        'serialize_message': Variant(lambda: serialize_message(msg)),
        'deserialize_message': Variant(lambda: deserialize_message(blob, PointCloud2)),
    }
    stats = time_interleaved(ops, cfg)
    return [{'case': case.name, 'points': case.points, 'bytes': nbytes, 'operation': k, **v} for k, v in stats.items()]


# ----------------------------------------------------------------------------- images

def image_msg(rgb: np.ndarray, encoding: str) -> Image:
    """A received Image of the frame in ``encoding`` (rgb8, bgr8 or mono8)."""
    if encoding == 'mono8':
        arr = np.ascontiguousarray(rgb.mean(axis=2).astype(np.uint8))
    else:
        arr = np.ascontiguousarray(rgb if encoding == 'rgb8' else rgb[:, :, ::-1])
    h, w = arr.shape[:2]
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=arr.size // h)
    msg.data = arr.tobytes()
    return received(msg)


_CHANNEL_ORDER = {'rgb8': (0, 1, 2), 'bgr8': (2, 1, 0), 'mono8': (0, 0, 0)}


def image_copy(msg):
    """The usual cv_bridge-less way: ``np.array(msg.data)``, reshape, then a contiguous RGB copy."""
    ch = 1 if msg.encoding == 'mono8' else 3
    img = np.array(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)[:, :msg.width * ch]
    img = img.reshape(msg.height, msg.width, ch)
    if msg.encoding == 'mono8':
        return np.dstack([img[:, :, 0]] * 3)
    return img[:, :, ::-1].copy() if msg.encoding == 'bgr8' else img


def image_per_pixel(msg, limit: int):
    """One Python tuple per pixel, in RGB order."""
    ch = 1 if msg.encoding == 'mono8' else 3
    a, b, c = _CHANNEL_ORDER[msg.encoding]
    w, step, data = msg.width, msg.step, msg.data
    offs = [(i // w) * step + (i % w) * ch for i in range(limit)]
    return np.array([(data[o + a], data[o + b], data[o + c]) for o in offs], np.uint8)


def bench_image_read(rgb: np.ndarray, encoding: str, cfg: Config) -> dict:
    msg = image_msg(rgb, encoding)
    n = msg.width * msg.height
    limit = min(cfg.subset, n)
    ours = image_to_rgb(msg)
    if not (np.array_equal(ours, image_copy(msg))
            and np.array_equal(ours.reshape(-1, 3)[:limit], image_per_pixel(msg, limit))):
        raise RuntimeError(f'{encoding}: the baselines read a different image than ours')
    stats = time_interleaved({
        OURS: Variant(lambda: image_to_rgb(msg)),
        'ours + contiguous copy': Variant(lambda: np.ascontiguousarray(image_to_rgb(msg))),
        'np.array copy': Variant(lambda: image_copy(msg)),
        'per-pixel': Variant(lambda: image_per_pixel(msg, limit), n / limit, limit),
    }, cfg)
    return {'case': f'{msg.width}x{msg.height} {encoding}', 'encoding': encoding, 'pixels': n,
            'variants': stats, 'speedup': speedups(stats)}


def bench_image_write(rgb: np.ndarray, encoding: str, cfg: Config) -> dict:
    h, w = rgb.shape[:2]
    arr = rgb if encoding == 'rgb8' else rgb[:, :, ::-1]
    rows = max(cfg.subset // w, 1)

    def with_tobytes():  # the previous implementation
        return Image(height=h, width=w, encoding=encoding, step=3 * w, data=np.ascontiguousarray(arr).tobytes())

    def with_ndarray():  # Image(data=array): the generated constructor iterates the array
        return Image(height=rows, width=w, encoding=encoding, step=3 * w,
                     data=np.ascontiguousarray(arr[:rows]).ravel())

    if bytes(rgb_to_image(rgb, encoding=encoding).data) != bytes(with_tobytes().data):
        raise RuntimeError(f'{encoding}: rgb_to_image builds a different image')
    stats = time_interleaved({
        OURS: Variant(lambda: rgb_to_image(rgb, encoding=encoding)),
        'tobytes (previous)': Variant(with_tobytes),
        'data=ndarray': Variant(with_ndarray, h / rows, rows * w),
    }, cfg)
    return {'case': f'{w}x{h} {encoding}', 'encoding': encoding, 'pixels': h * w, 'variants': stats,
            'speedup': speedups(stats)}


# ----------------------------------------------------------------------------- the run

def target(read: list[dict], write: list[dict]) -> dict:
    """The issue's target: 300k-point conversions <= 3 ms each way (median), per case."""
    def check(rows: list[dict], variant: str) -> dict:
        cases = {r['case']: r['variants'][variant]['median_ms'] for r in rows
                 if TARGET_POINTS[0] <= r['points'] <= TARGET_POINTS[1] and variant in r['variants']
                 and 'note' not in r}
        return {'median_ms': cases, 'met': bool(cases) and max(cases.values()) <= TARGET_MS}
    out = {'limit_ms': TARGET_MS, 'read': check(read, OURS), 'write': check(write, OURS),
           'write_recolor_first': check(write, 'recolor + ours'), 'write_node': check(write, NODE)}
    out['met'] = out['read']['met'] and out['write']['met']
    return out


def run(cfg: Config, log=print) -> dict:
    rng = np.random.default_rng(cfg.seed)
    frame = load_scene(cfg.frame)
    machine = machine_info()
    cases = cloud_cases(cfg, frame, rng)
    result = {'name': NAME, 'machine': machine, 'config': asdict(cfg), 'frame': frame.name,
              'read': [], 'write': [], 'publish': [], 'image_read': [], 'image_write': []}
    for case in cases:
        log(f'read  {case.name}')
        result['read'].append(bench_read(case, cfg))
    result['read'].append(bench_read_extrinsic(cases[0], cfg))
    for case in [c for c in cases if c.layout is XYZRGB16]:
        log(f'write {case.name}')
        result['write'].append(bench_write(case, cfg, rng))
    for case in [c for c in cases if c.layout is XYZRGB16 and c.points >= 300_000]:
        log(f'publish {case.name}')
        result['publish'] += bench_publish(case, cfg)
    rgb = np.ascontiguousarray(frame.color)
    for enc in ('rgb8', 'bgr8', 'mono8'):
        log(f'image {enc}')
        result['image_read'].append(bench_image_read(rgb, enc, cfg))
    for enc in ('rgb8', 'bgr8'):
        result['image_write'].append(bench_image_write(rgb, enc, cfg))
    result['target'] = target(result['read'], result['write'])
    return result


def write_outputs(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    plot_scaling(result, out / f'{NAME}_scaling.png')
    (out / f'{NAME}.json').write_text(json.dumps(result, indent=1))
    (out / f'{NAME}.md').write_text(markdown(result))


# ----------------------------------------------------------------------------- report

def _cell(s: dict) -> str:
    mark = '*' if s.get('scaled_from') else ''
    return f"{s['median_ms']:.3g}{mark} ({s['p10_ms']:.3g}-{s['p90_ms']:.3g})"


def _table(rows: list[dict], first: list[str], key: Callable[[dict], list[str]]) -> list[str]:
    names = list(rows[0]['variants'])
    others = [n for n in names if n != OURS]
    head = first + [f'{n} ms' for n in names] + [f'x vs {n}' for n in others] + ['runs']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        v = r['variants']
        cells = key(r) + [_cell(v[n]) if n in v else '' for n in names]
        cells += [f"{r['speedup'][n]:.0f}" if r['speedup'].get(n, 0) >= 10 else f"{r['speedup'].get(n, 0):.1f}"
                  if n in r['speedup'] else '' for n in others]
        cells.append(str(v[OURS]['runs']))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def markdown(r: dict) -> str:
    """The ``## `` section for docs/BENCHMARKS.md."""
    m, c, t = r['machine'], r['config'], r['target']
    layouts = {x.name: x.about for x in (XYZRGB16, XYZRGB32, XYZIRT22)}

    def cloud_key(row):
        return [row['case'], f"{row['points']:,}", row['layout']]

    def verdict(part: dict) -> str:
        cases = ', '.join(f'{k} {v:.2f} ms' for k, v in part['median_ms'].items())
        return f"**{'met' if part['met'] else 'missed'}** ({cases})"

    read = [x for x in r['read'] if 'note' not in x]
    extrinsic = [x for x in r['read'] if 'note' in x]
    lines = [
        '## Message conversions (PointCloud2, Image)', '',
        f"`bench/bench_conversions.py` on {m['cpu']} ({m['cpu_count']} cores, load average "
        f"{', '.join(f'{x:.1f}' for x in m['load_average'] or [])} at start), Python {m['python']}, "
        f"numpy {m['numpy']}, "
        f"commit {m['git_commit']}{' + uncommitted changes' if m.get('uncommitted_changes') else ''}, {m['date']}.", '',
        f"**Target: a 300k-point cloud converts in <= {TARGET_MS:g} ms each way (median).** "
        f"Cloud -> arrays: {verdict(t['read'])}. Arrays -> colourised cloud: {verdict(t['write'])}. "
        f"The node's annotated cloud by `recolor` then `xyzrgb_to_pointcloud2` (before `messages.annotated_cloud`): "
        f"{verdict(t['write_recolor_first'])}"
        + (f"; `messages.annotated_cloud` {verdict(t['write_node'])}." if t['write_node']['median_ms'] else '.'), '',
        'Messages are built with the real generated sensor_msgs classes and passed once through rclpy\'s '
        '`serialize_message`/`deserialize_message`, so `data` is the `array.array` a subscriber gets. '
        f"The frame is `{r['frame']}`; unorganised clouds are its valid points drawn with replacement plus 2 mm "
        'jitter. All ways of a case run interleaved (round robin, GC off) after '
        f"{c['warmup']} warm-up runs; up to {c['repeats']} rounds, fewer once a case took {c['budget_s']:g} s. "
        'Cells: median (p10-p90) in ms; `x vs` = baseline median / our median. '
        f"`*` = run on the first {c['subset']:,} points (pixels) and scaled linearly to the full size. "
        'Each baseline\'s output was checked equal to ours before timing.', '',
        'Layouts: ' + '; '.join(f'`{k}` {v}' for k, v in layouts.items()) + '.', '',
        '### PointCloud2 -> arrays', '',
        '`ours` = `pointcloud2_to_arrays` (zero-copy views of x, y, z and r, g, b in the message buffer) + '
        '`cloud_to_camera_gl` (the contiguous float32 OpenGL points the node feeds the pipeline). `per-field`: '
        'one copy per field, `column_stack`, flip. `per-point`: one `struct.unpack_from` per point '
        '(as `read_points` of older sensor_msgs_py), `np.array` of the tuples.', '',
        *_table(read, ['case', 'points', 'layout'], cloud_key), '',
    ]
    for x in extrinsic:
        s = x['variants'][OURS]
        lines += [f"With a `cloud_to_camera` extrinsic ({x['case']}): {_cell(s)} ms ({x['note']}; not part of "
                  'the target, which is for the camera-frame cloud).', '']
    lines += [
        '### Arrays -> colourised PointCloud2', '',
        'The node\'s annotated cloud: the input colours with 6 objects painted in their instance colours '
        '(100x80-pixel boxes on the organised cloud, 3 % of the points each otherwise), x y z rgb 16-byte points. '
        'Inputs are the views `pointcloud2_to_arrays` returns. `ours` = `xyzrgb_to_pointcloud2(..., groups=)` '
        '(paints the packed colour words in the message buffer); `recolor + ours` = `core.colors.recolor` '
        'then `xyzrgb_to_pointcloud2`, as the node did before `messages.annotated_cloud`; '
        '`node: annotated_cloud` (where `ros/messages.py` has it) = the node\'s builder that copies the received '
        'cloud and repaints the objects\' colour bytes; `per-field (previous)` = `xyzrgb_to_pointcloud2` before '
        'this benchmark (an (N, 4) float32 block and `tobytes`, after `recolor`); `per-point` = `recolor`, then '
        '`struct.pack` per point.', '',
        *_table(r['write'], ['case', 'points', 'layout'], cloud_key), '',
        '### Publish side', '',
        '`xyzrgb_to_pointcloud2` = building the message from contiguous arrays (no painting). '
        'The generated `data` setter stores `array.array(\'B\', value)`: one memcpy for an array.array or bytes, an '
        'element-by-element loop for a memoryview or numpy array (`*`: scaled from a '
        f"{c['subset']:,}-point slice); a message made with `check_fields=True` (as `xyzrgb_to_pointcloud2` "
        'makes it) keeps an array.array as it is. `serialize_message` is what `publish` pays on top of building '
        'the message '
        '(conversion to the C message and CDR); `deserialize_message` is what a subscriber pays before our '
        'conversion runs.', '',
        '| cloud | bytes | operation | median ms (p10-p90) | runs |', '|---|---|---|---|---|',
    ]
    lines += [f"| {p['case']} | {p['bytes']:,} | `{p['operation']}` | {_cell(p)} | {p['runs']} |" for p in r['publish']]
    lines += [
        '', '### Image <-> array', '',
        '`image_to_rgb` returns a view of the message buffer for rgb8 and bgr8 (channel order by strides) and a copy '
        'for mono8; `ours + contiguous copy` adds `np.ascontiguousarray` for a like-for-like comparison with the '
        'copying baselines. `np.array copy` = `np.array(msg.data).reshape(...)` then a contiguous RGB copy; '
        '`per-pixel` = one tuple per pixel.', '',
        *_table(r['image_read'], ['image'], lambda x: [x['case']]), '',
        '`rgb_to_image` fills the message\'s `array.array` in place; `tobytes (previous)` = '
        '`Image(data=arr.tobytes())`; `data=ndarray` = `Image(data=array)`, which the generated constructor '
        'iterates element by element.', '',
        *_table(r['image_write'], ['image'], lambda x: [x['case']]), '',
        f'![Conversion time vs points](bench/{NAME}_scaling.png)', '',
    ]
    return '\n'.join(lines)


def plot_scaling(r: dict, path: Path) -> Path:
    """Time vs points, log-log, for the unorganised XYZRGB sweep: read and write, ours and the baselines."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, part, title in zip(axes, ('read', 'write'), ('PointCloud2 -> arrays', 'arrays -> colourised PointCloud2')):
        rows = sorted((x for x in r[part] if x['case'].startswith('unorganised_')), key=lambda x: x['points'])
        for name in rows[0]['variants']:
            pts = np.array([x['points'] for x in rows])
            s = [x['variants'][name] for x in rows]
            med = np.array([v['median_ms'] for v in s])
            err = [med - [v['p10_ms'] for v in s], np.array([v['p90_ms'] for v in s]) - med]
            scaled = any(v['scaled_from'] for v in s)
            ax.errorbar(pts, med, yerr=err, marker='o', capsize=3, linestyle='--' if scaled else '-',
                        label=name + (' (scaled from a subset)' if scaled else ''))
        ax.axhline(TARGET_MS, color='gray', linewidth=0.8, linestyle=':')
        ax.axvline(300_000, color='gray', linewidth=0.8, linestyle=':')
        ax.text(300_000, TARGET_MS, f' {TARGET_MS:g} ms target at 300k', fontsize=8, va='bottom', color='gray')
        ax.set(xscale='log', yscale='log', xlabel='points', ylabel='median ms (p10-p90)', title=title)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"unorganised XYZRGB clouds, {r['machine']['cpu_count']} cores, commit {r['machine']['git_commit']}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    d = Config()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--repeats', type=int, default=d.repeats, help='timed rounds per case (default %(default)s)')
    p.add_argument('--warmup', type=int, default=d.warmup, help='untimed rounds first (default %(default)s)')
    p.add_argument('--budget', type=float, default=d.budget_s, help='stop a case after this many s once 5 rounds '
                   'ran (default %(default)s)')
    p.add_argument('--subset', type=int, default=d.subset, help='points the per-point/per-pixel baselines run on '
                   '(default %(default)s)')
    p.add_argument('--sizes', default=','.join(map(str, d.sizes)), help='unorganised cloud sizes (default %(default)s)')
    p.add_argument('--frame', default=None, help="RGB-D folder or 'bus' (default: ../shared TUM frame)")
    p.add_argument('--out', default=d.out, help='output folder (default %(default)s)')
    p.add_argument('--quick', action='store_true', help='smoke run: 3 rounds, 10k and 300k points, a few seconds')
    a = p.parse_args(argv)
    cfg = Config(repeats=a.repeats, warmup=a.warmup, budget_s=a.budget, subset=a.subset,
                 sizes=tuple(int(s) for s in a.sizes.split(',') if s), frame=a.frame, out=a.out)
    if a.quick:
        cfg = Config(**{**asdict(cfg), **QUICK})
    result = run(cfg)
    write_outputs(result, Path(cfg.out))
    t = result['target']
    print(f"target <= {TARGET_MS:g} ms at 300k: read {'met' if t['read']['met'] else 'MISSED'}, "
          f"write {'met' if t['write']['met'] else 'MISSED'}; wrote {cfg.out}/{NAME}.json, .md, _scaling.png")
    return 0


if __name__ == '__main__':
    sys.exit(main())
