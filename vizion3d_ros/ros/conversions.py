"""Zero-copy conversions between sensor_msgs messages and numpy arrays.

sensor_msgs_py and cv_bridge are missing on many installs and slow on large clouds; these functions
read message buffers in place with ``np.frombuffer`` and structured dtypes, and fill outgoing buffers
in place and hand them over without a copy (see :func:`_with_data`). Malformed messages raise
:class:`MessageFormatError` with a message that says exactly what is wrong (the node counts and logs them).

Numpy runs an ``(N, 3)`` operation on strided or broadcast operands with a 3-element inner loop, several
times slower than three 1-D passes over the columns, so per-point arrays are copied column by column.
"""
from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib import recfunctions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from ..core.camera.pinhole import PinholeIntrinsics
from ..core.render.colors import palette


class MessageFormatError(ValueError):
    """A message that cannot be interpreted; the text is meant for the user."""


def _message_buffer(nbytes: int) -> tuple[array.array, np.ndarray]:
    """Zeroed ``array.array('B')`` for a message's ``data`` and a writable uint8 numpy view of it.

    Repeating a one-byte array allocates much faster than ``array('B', bytes(n))`` (one pass, not three).
    The view must be dropped before the array is handed over (a live view blocks resizing it).
    """
    data = array.array('B', b'\0') * nbytes
    return data, np.frombuffer(data, dtype=np.uint8)


def _with_data(cls, data: array.array, **fields):
    """A ``cls`` message (Image, PointCloud2) that holds ``data`` itself, not a copy.

    The generated ``data`` setter stores ``array.array('B', value)`` (a memcpy: 2.5 ms for a 2M-point
    cloud, ~15 ms when the new pages are not mapped yet) unless the message checks its fields, in
    which case an ``array.array('B')`` is kept as it is; older generators have no ``check_fields`` and
    always keep it. Checking also asserts the types of the other fields (pass plain ints and bools)
    and of later assignments to this message. A numpy array or memoryview would be copied element by
    element either way.
    """
    msg = cls(check_fields=True, **fields) if '_check_fields' in cls.__slots__ else cls(**fields)
    msg.data = data
    return msg


def _copy_columns(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` (casting), one pass per last-axis column unless both are contiguous."""
    if src.flags.c_contiguous and dst.flags.c_contiguous and src.dtype == dst.dtype:
        dst[...] = src  # one memcpy
        return
    for k in range(src.shape[-1]):  # see the module docstring
        dst[..., k] = src[..., k]


# ----------------------------------------------------------------------------- images

_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1, '8UC1': 1, '8UC3': 3}
SUPPORTED_IMAGE_ENCODINGS = tuple(_CHANNELS)


def image_to_rgb(msg: Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB view of a colour or mono image (no copy, except for mono8).

    Supports rgb8, bgr8, rgba8, bgra8, mono8 (and 8UC1/8UC3, read as mono8/bgr8), with row padding
    (``step`` larger than ``width * channels``).
    """
    enc = msg.encoding
    if enc not in _CHANNELS:
        raise MessageFormatError(f'unsupported image encoding {enc!r}; supported: '
                                 f'{", ".join(SUPPORTED_IMAGE_ENCODINGS)}')
    h, w, ch = int(msg.height), int(msg.width), _CHANNELS[enc]
    if h == 0 or w == 0:
        raise MessageFormatError(f'empty image ({w}x{h})')
    step = int(msg.step)
    if step < w * ch:
        raise MessageFormatError(f'image step {step} is smaller than width*channels = {w * ch}')
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size < step * (h - 1) + w * ch:
        raise MessageFormatError(f'image data has {buf.size} bytes, {enc} {w}x{h} with step {step} '
                                 f'needs {step * h}')
    img = np.lib.stride_tricks.as_strided(buf, shape=(h, w, ch), strides=(step, ch, 1), writeable=False)
    if ch == 1:
        gray = np.empty((h, w, 3), dtype=np.uint8)
        for k in range(3):
            gray[:, :, k] = img[:, :, 0]
        return gray
    if enc in ('bgr8', 'bgra8', '8UC3'):
        return img[:, :, 2::-1]
    return img[:, :, :3]


def _image_msg(arr: np.ndarray, encoding: str, header) -> Image:
    """Image holding ``arr`` (``(H, W)`` or ``(H, W, C)``, cast to uint8), rows unpadded."""
    h, w = arr.shape[:2]
    data, raw = _message_buffer(arr.size)
    if arr.ndim == 3:
        _copy_columns(raw.reshape(arr.shape), arr)
    else:
        raw.reshape(arr.shape)[...] = arr
    del raw  # the array must not stay exported (see _message_buffer)
    msg = _with_data(Image, data, height=int(h), width=int(w), encoding=encoding, is_bigendian=0,
                     step=int(arr.size // h) if h else 0)
    if header is not None:
        msg.header = header
    return msg


def rgb_to_image(rgb: np.ndarray, header=None, encoding: str = 'rgb8') -> Image:
    """Build an rgb8 (or bgr8) Image from an ``(H, W, 3)`` uint8 RGB array."""
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f'expected (H, W, 3) uint8, got {arr.shape}')
    if encoding == 'bgr8':
        arr = arr[:, :, ::-1]
    elif encoding != 'rgb8':
        raise ValueError(f'encoding must be rgb8 or bgr8, got {encoding!r}')
    return _image_msg(arr, encoding, header)


def mono8_to_image(mask: np.ndarray, header=None) -> Image:
    """mono8 Image from a 2D bool or uint8 array (True/non-zero -> 255)."""
    arr = np.asarray(mask)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if not arr.size:
        arr = np.zeros((0, 0), np.uint8)
    return _image_msg(arr, 'mono8', header)


# ----------------------------------------------------------------------------- point clouds

_FIELD_DTYPES = {PointField.INT8: 'i1', PointField.UINT8: 'u1', PointField.INT16: 'i2',
                 PointField.UINT16: 'u2', PointField.INT32: 'i4', PointField.UINT32: 'u4',
                 PointField.FLOAT32: 'f4', PointField.FLOAT64: 'f8'}


@dataclass
class CloudArrays:
    """Views of a PointCloud2's points.

    ``xyz`` is ``(N, 3)`` float32 (a strided view, may hold NaN), ``rgb`` ``(N, 3)`` uint8 or None;
    ``width``/``height`` keep the organisation.
    """

    xyz: np.ndarray
    rgb: np.ndarray | None
    width: int
    height: int

    @property
    def organized(self) -> bool:
        """True for image-like clouds (height > 1)."""
        return self.height > 1


def pointcloud2_to_arrays(msg: PointCloud2) -> CloudArrays:
    """Read x, y, z (float32) and packed rgb/rgba of a PointCloud2 without copying the buffer."""
    fields = {f.name: f for f in msg.fields}
    for name in ('x', 'y', 'z'):
        if name not in fields:
            raise MessageFormatError(f'point cloud has no {name!r} field (fields: {sorted(fields) or "none"})')
        f = fields[name]
        if f.datatype != PointField.FLOAT32 or f.count not in (0, 1):
            raise MessageFormatError(f'point cloud field {name!r} must be one FLOAT32 '
                                     f'(datatype {PointField.FLOAT32}), got datatype {f.datatype} count {f.count}')
    w, h, ps, rs = int(msg.width), int(msg.height), int(msg.point_step), int(msg.row_step)
    n = w * h
    color_name = 'rgb' if 'rgb' in fields else ('rgba' if 'rgba' in fields else None)
    if color_name and fields[color_name].datatype not in (PointField.FLOAT32, PointField.UINT32,
                                                          PointField.INT32):
        raise MessageFormatError(f'point cloud field {color_name!r} must be packed 4-byte colour, '
                                 f'got datatype {fields[color_name].datatype}')
    for f in msg.fields:
        size = np.dtype(_FIELD_DTYPES.get(f.datatype, 'u1')).itemsize * max(int(f.count), 1)
        if f.datatype not in _FIELD_DTYPES and f.name in ('x', 'y', 'z', color_name):
            raise MessageFormatError(f'field {f.name!r} has unknown datatype {f.datatype}')
        if f.offset + size > ps and f.name in ('x', 'y', 'z', color_name):
            raise MessageFormatError(f'field {f.name!r} (offset {f.offset}, {size} bytes) does not fit in '
                                     f'point_step {ps}')
    used = [('x', fields['x'].offset, 4), ('y', fields['y'].offset, 4), ('z', fields['z'].offset, 4)]
    if color_name:
        used.append((color_name, fields[color_name].offset, 4))
    for a, (name_a, off_a, size_a) in enumerate(used):
        for name_b, off_b, size_b in used[a + 1:]:
            if off_a < off_b + size_b and off_b < off_a + size_a:
                raise MessageFormatError(f'point cloud fields {name_a!r} (offset {off_a}) and {name_b!r} '
                                         f'(offset {off_b}) overlap')
    if n == 0:
        raise MessageFormatError(f'point cloud is empty ({w}x{h} points)')
    if h > 1 or rs:
        if rs < w * ps:
            raise MessageFormatError(f'row_step {rs} is smaller than width*point_step = {w * ps}')
    else:
        rs = w * ps
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    needed = rs * (h - 1) + w * ps
    if buf.size < needed:
        raise MessageFormatError(f'point cloud data has {buf.size} bytes but {w}x{h} points with '
                                 f'point_step {ps} and row_step {rs} need {needed}')
    if buf.size > rs * h:
        raise MessageFormatError(f'point cloud data has {buf.size} bytes, more than row_step*height = {rs * h}: '
                                 'the layout fields do not describe the data')
    end = '>' if msg.is_bigendian else '<'
    names = ['x', 'y', 'z']
    formats = [end + 'f4'] * 3
    offsets = [fields[c].offset for c in names]
    if color_name:
        off = fields[color_name].offset
        # packed 0x00RRGGBB: bytes are B, G, R in memory order on little-endian, reversed on big-endian
        byte_r, byte_g, byte_b = (off + 1, off + 2, off + 3) if msg.is_bigendian else (off + 2, off + 1, off)
        names += ['r', 'g', 'b']
        formats += ['u1'] * 3
        offsets += [byte_r, byte_g, byte_b]
    dtype = np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': ps})
    if rs == w * ps:
        pts = buf[:needed].view(dtype)  # zero-copy
    else:  # padded rows: drop the padding (one copy)
        rows = np.lib.stride_tricks.as_strided(buf, shape=(h, w * ps), strides=(rs, 1), writeable=False)
        pts = np.ascontiguousarray(rows).reshape(-1).view(dtype)
    xyz = recfunctions.structured_to_unstructured(pts[['x', 'y', 'z']], copy=False)
    if xyz.dtype.byteorder == '>':
        native = np.empty(xyz.shape, dtype=np.float32)
        _copy_columns(native, xyz)
        xyz = native
    rgb = recfunctions.structured_to_unstructured(pts[['r', 'g', 'b']]) if color_name else None
    return CloudArrays(xyz=xyz, rgb=rgb, width=w, height=h)


def _write_packed_rgb(rgb: np.ndarray, out: np.ndarray) -> None:
    """Write ``(N, 3)`` RGB as little-endian ``0x00RRGGBB`` into zeroed ``(N, 4)`` uint8 ``out`` (B, G, R, 0)."""
    for k in range(3):
        out[:, k] = rgb[:, 2 - k]


def _check_rgb(rgb: np.ndarray, n: int) -> np.ndarray:
    """``rgb`` as an array, which must be ``(n, 3)`` (ValueError otherwise)."""
    c = np.asarray(rgb)
    if c.shape != (n, 3):
        raise ValueError(f'expected ({n}, 3) RGB colours, got shape {c.shape}')
    return c


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """``(N, 3)`` uint8 RGB -> ``(N,)`` uint32 ``0x00RRGGBB`` (the bit pattern RViz reads from 'rgb')."""
    c = _check_rgb(rgb, len(rgb))
    packed = np.zeros(len(c), dtype='<u4')
    _write_packed_rgb(c, packed.view(np.uint8).reshape(-1, 4))
    return packed.astype(np.uint32, copy=False)


def _xyzrgb_fields() -> list[PointField]:
    # fresh objects per message: messages are mutable and must not share field descriptions
    return [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
            for i, n in enumerate(('x', 'y', 'z', 'rgb'))]


def xyzrgb_to_pointcloud2(xyz: np.ndarray, rgb: np.ndarray, header=None, width: int | None = None,
                          height: int = 1, groups: Sequence[np.ndarray] = ()) -> PointCloud2:
    """PointCloud2 with fields x, y, z, rgb (16-byte points) from ``(N, 3)`` float32 and uint8 arrays.

    ``width``/``height`` keep an organised layout (``width * height == N``); default unorganised.
    ``groups`` (point indices or boolean masks) paints group k in ``core.colors.distinct_color(k)``,
    later groups over earlier ones: the same colours as ``core.colors.recolor(rgb, groups)``, but
    written as one packed word per point into the message buffer, without an ``(N, 3)`` copy.
    The buffer is filled in place and handed to the message without another copy (see :func:`_with_data`).
    """
    xyz = np.asarray(xyz).reshape(-1, 3)
    n = len(xyz)
    rgb = _check_rgb(rgb, n)
    width = n if width is None else int(width)
    if width * height != n:
        raise ValueError(f'width*height = {width}*{height} does not match {n} points')
    data, raw = _message_buffer(16 * n)
    points = raw.reshape(n, 16)
    floats = points.view('<f4')
    _copy_columns(floats[:, :3], xyz)
    _write_packed_rgb(rgb, points[:, 12:])
    if len(groups):
        packed = floats.view('<u4')[:, 3]
        for idx, colour in zip(groups, pack_rgb(palette(len(groups)))):
            packed[idx] = colour
        del packed
    # the colour words are finite as floats too (top byte 0), so one contiguous pass checks x, y, z
    is_dense = bool(np.isfinite(floats).all())
    del raw, points, floats  # no view may outlive this call (see _message_buffer)
    msg = _with_data(PointCloud2, data, height=int(height), width=width, fields=_xyzrgb_fields(),
                     is_bigendian=False, point_step=16, row_step=16 * width, is_dense=is_dense)
    if header is not None:
        msg.header = header
    return msg


# ----------------------------------------------------------------------------- camera info

INTRINSICS_SOURCES = ('auto', 'K', 'P')


class CameraInfoError(MessageFormatError):
    """CameraInfo that cannot be used with its image; ``reason`` is the node's drop key.

    ``bad_camera_info`` for unusable matrices, binning or ROI; ``camera_info_size_mismatch`` when the image
    is not the size the CameraInfo describes.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics of the image as received, and where they came from (for logs and diagnostics)."""

    intrinsics: PinholeIntrinsics
    #: 'K' or 'P': the CameraInfo matrix the focal lengths and principal point were read from.
    matrix: str
    #: True when K was used although the CameraInfo has non-zero distortion (the node does not undistort).
    distortion_ignored: bool


def is_rectified(msg: CameraInfo) -> bool:
    """P is set (finite, non-zero focal lengths) and the distortion is empty or all zeros."""
    p = np.asarray(msg.p, dtype=np.float64)
    d = np.asarray(msg.d, dtype=np.float64)
    p_set = p.size == 12 and bool(np.all(np.isfinite(p))) and p[0] != 0 and p[5] != 0
    return p_set and (d.size == 0 or bool(np.all(d == 0)))


def camera_model(msg: CameraInfo, image_width: int, image_height: int, source: str = 'auto') -> CameraModel:
    """Pinhole intrinsics for an ``image_width`` x ``image_height`` image described by ``msg``.

    ``source``: 'K' (raw image), 'P' (rectified image) or 'auto' (P when :func:`is_rectified`, else K).
    Binning and ROI are applied as the driver applied them to the image: with ``b = binning`` (0 = 1)
    and the ROI offset ``o``, ``f' = f / b`` and ``c' = (c - o - (b - 1) / 2) / b`` (a binned pixel's
    centre is the centre of its b x b block; image_geometry omits the half-pixel term). The image must be
    ``roi.width / b`` x ``roi.height / b`` (ROI set) or ``width / b`` x ``height / b`` (width and height
    set); a 0x0 CameraInfo without ROI accepts any size. Raises :class:`CameraInfoError`.
    """
    if source not in INTRINSICS_SOURCES:
        raise ValueError(f'intrinsics source must be one of {INTRINSICS_SOURCES}, got {source!r}')
    use_p = source == 'P' or (source == 'auto' and is_rectified(msg))
    if use_p:
        m = np.asarray(msg.p, dtype=np.float64)
        if m.size != 12:
            raise CameraInfoError('bad_camera_info', f'camera_info P has {m.size} values, expected 12')
        fx, fy, cx, cy = m[0], m[5], m[2], m[6]
    else:
        m = np.asarray(msg.k, dtype=np.float64)
        if m.size != 9:
            raise CameraInfoError('bad_camera_info', f'camera_info K has {m.size} values, expected 9')
        fx, fy, cx, cy = m[0], m[4], m[2], m[5]
    name = 'P' if use_p else 'K'
    if not all(np.isfinite([fx, fy, cx, cy])) or fx <= 0 or fy <= 0:
        raise CameraInfoError('bad_camera_info', f'camera_info {name} is not a valid camera matrix (fx={fx}, '
                              f'fy={fy}, cx={cx}, cy={cy}: focal lengths must be finite and positive)'
                              + ('' if use_p or source == 'K' else '; set intrinsics_source:=P if P is valid'))
    bx, by = max(int(msg.binning_x), 1), max(int(msg.binning_y), 1)
    w, h = int(msg.width), int(msg.height)
    roi = msg.roi
    has_roi = bool(roi.width and roi.height)
    if has_roi:
        ox, oy = int(roi.x_offset), int(roi.y_offset)
        if w and h and (ox + roi.width > w or oy + roi.height > h):
            raise CameraInfoError('bad_camera_info', f'camera_info ROI (offset {ox},{oy}, size {roi.width}x'
                                  f'{roi.height}) does not fit in the {w}x{h} sensor')
        expected = (int(roi.width) // bx, int(roi.height) // by)
    else:
        ox = oy = 0
        expected = (w // bx, h // by) if (w or h) else None
    if expected is not None and expected != (image_width, image_height):
        how = [f'binning {bx}x{by}'] if (bx, by) != (1, 1) else []
        if has_roi:
            how.append(f'ROI {roi.width}x{roi.height} at {ox},{oy}')
        raise CameraInfoError('camera_info_size_mismatch',
                              f'camera_info is for {expected[0]}x{expected[1]} images'
                              + (f' ({w}x{h} sensor, {", ".join(how)})' if how else '')
                              + f' but the image is {image_width}x{image_height}')
    cam = PinholeIntrinsics(fx=float(fx) / bx, fy=float(fy) / by, cx=(float(cx) - ox - (bx - 1) / 2) / bx,
                            cy=(float(cy) - oy - (by - 1) / 2) / by, width=int(image_width),
                            height=int(image_height))
    d = np.asarray(msg.d, dtype=np.float64)
    return CameraModel(cam, name, distortion_ignored=not use_p and bool(d.size and np.any(d != 0)))


def camera_info_to_intrinsics(msg: CameraInfo, image_width: int, image_height: int,
                              source: str = 'auto') -> PinholeIntrinsics:
    """Pinhole intrinsics of the image (see :func:`camera_model`)."""
    return camera_model(msg, image_width, image_height, source).intrinsics
