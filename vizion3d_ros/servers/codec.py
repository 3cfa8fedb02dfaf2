"""What the vizion3D-compatible servers share, whatever the transport: limits, uploads, results, errors.

Request limits, the decoding and checking of the uploaded cloud, image and options, the encoding of
results, and the request errors.

Every problem with a request is a :class:`RequestError` subclass whose message says what is wrong and
which carries both meanings of the problem: the HTTP status (``http_status``) and the gRPC status code
name (``grpc_code``). The REST server (:mod:`.rest`) and the gRPC server answer with them as they are;
nothing here imports a web or RPC framework.

Non-finite points (NaN or infinite coordinates, as depth cameras write for pixels without depth) are
kept in place: they never project into a mask, so they are never part of an object, and every index in
a response is an index into the cloud exactly as the client sent it. Dropping them would renumber the
points behind the client's back; rejecting them would refuse every organised depth-camera cloud. A
cloud without a single finite point is empty (:class:`BadRequestError`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.io.plyio import PlyError, is_ply, parse_ply, parse_ply_header, ply_bytes

__all__ = ['AnnotationOptions', 'BadRequestError', 'BusyError', 'Cloud', 'EncodedAnnotation', 'EncodedResult',
           'ForbiddenError', 'InvalidFieldError', 'Limits', 'PayloadTooLargeError', 'RequestError', 'UnavailableError',
           'UnsupportedMediaError', 'decode_image', 'decode_point_cloud', 'encode_mask_png', 'encode_result']

MB = 1 << 20


# --------------------------------------------------------------------------------------------------
# Errors


class RequestError(Exception):
    """A request the server cannot serve; ``str(error)`` says why, for the client."""

    http_status = 400
    grpc_code = 'INVALID_ARGUMENT'


class BadRequestError(RequestError):
    """Unreadable PLY or image, an empty cloud, intrinsics no camera can have."""


class PayloadTooLargeError(RequestError):
    """Over one of the server's :class:`Limits`."""

    http_status = 413
    grpc_code = 'RESOURCE_EXHAUSTED'


class UnsupportedMediaError(RequestError):
    """A file that is not a PLY (for the cloud) or not an image (for the image) at all."""

    http_status = 415


class InvalidFieldError(RequestError):
    """A missing, empty, ill-typed or out-of-range field."""

    http_status = 422


class ForbiddenError(RequestError):
    """Something this server was told not to do (a per-request model with ``--no-model-override``)."""

    http_status = 403
    grpc_code = 'PERMISSION_DENIED'


class UnavailableError(RequestError):
    """The model cannot be had right now (missing file, download impossible) or the server is full."""

    http_status = 503
    grpc_code = 'UNAVAILABLE'


class BusyError(UnavailableError):
    """Every worker is busy and the queue is full: the client may retry later."""

    def __init__(self, running: int, waiting: int) -> None:
        super().__init__(f'the server is busy: {running} requests running and {waiting} waiting, its limit '
                         '(--workers, --queue); retry later')


# --------------------------------------------------------------------------------------------------
# Limits


@dataclass(frozen=True)
class Limits:
    """What one request may hold: the whole body (bytes), the cloud (points) and the image (pixels)."""

    max_upload_bytes: int = 500 * MB
    max_points: int = 20_000_000
    max_image_pixels: int = 50_000_000

    def check_upload(self, size: int) -> None:
        """Raise :class:`PayloadTooLargeError` when ``size`` bytes are over the upload limit."""
        if size > self.max_upload_bytes:
            raise self.upload_error(size)

    def upload_error(self, size: int | None) -> PayloadTooLargeError:
        """The error for a body of ``size`` bytes; None: found over the limit while it streamed in."""
        what = 'the request body' if size is None else f'the request body ({_size(size)})'
        return PayloadTooLargeError(f"{what} is over this server's limit of {_size(self.max_upload_bytes)} "
                               '(--max-upload-mb)' + ('; counted while it streamed in' if size is None else ''))


def _size(n: int) -> str:
    return f'{n / MB:.1f} MB' if n >= MB else f'{n} bytes'


# --------------------------------------------------------------------------------------------------
# Inputs


@dataclass
class Cloud:
    """A decoded cloud: ``(N, 3)`` float64 points in the file's order and ``(N, 3)`` colours or None.

    Colours are uint8, or floats in [0, 1] when the file stores them as floats (the API scales those).
    """

    points: np.ndarray
    colors: np.ndarray | None

    def __len__(self) -> int:
        return len(self.points)


def decode_point_cloud(data: bytes | memoryview | None, limits: Limits = Limits(),
                       name: str = 'point_cloud_ply') -> Cloud:
    """Decode a PLY upload (ASCII or binary; ``x y z`` and optional ``red green blue`` vertex properties)."""
    if data is None or len(data) == 0:
        raise InvalidFieldError(f'{name} is empty: send the point cloud as a PLY file')
    if not is_ply(data):
        raise UnsupportedMediaError(f'{name} is not a PLY file: it must start with a "ply" line, '
                               f'it starts with {_start(data)}')
    try:
        header = parse_ply_header(data)
        vertex = header.element('vertex')
        if vertex is not None and vertex.count > limits.max_points:
            if header.format != 'ascii':  # a header that its body contradicts is a broken file, not a big one
                parse_ply(data, header=header)
            raise PayloadTooLargeError(f'{name} holds {vertex.count} points, over this server\'s limit of '
                                  f'{limits.max_points} (--max-points)')
        table = parse_ply(data, header=header)
    except PlyError as exc:
        raise BadRequestError(f'{name} is not a readable PLY: {exc}') from None
    names = set(table.dtype.names or ())
    if not {'x', 'y', 'z'} <= names:
        raise BadRequestError(f'{name}: the PLY vertices have no x, y, z properties (they have '
                         f'{", ".join(table.dtype.names or ()) or "none"})')
    if len(table) == 0:
        raise BadRequestError(f'{name} holds no points: the point cloud is empty')
    points = np.stack([table['x'], table['y'], table['z']], axis=1).astype(np.float64)
    if not np.isfinite(points).all(axis=1).any():
        raise BadRequestError(f'{name} holds no finite point: all {len(points)} points have NaN or infinite '
                         'coordinates, so the point cloud is empty')
    colors = None
    if {'red', 'green', 'blue'} <= names:
        colors = _colors(np.stack([table['red'], table['green'], table['blue']], axis=1))
    return Cloud(points=points, colors=colors)


def _colors(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    if rgb.dtype.kind in 'iu':  # 16-bit or wider integers: scale a 0-65535 range down, clip the rest
        scale = 257.0 if rgb.size and rgb.max() > 255 else 1.0
        return np.clip(np.round(rgb / scale), 0, 255).astype(np.uint8)
    return np.nan_to_num(rgb.astype(np.float64))  # floats: [0, 1] or [0, 255], as the API takes them


def _start(data: bytes | memoryview) -> str:
    head = bytes(data[:16])
    return repr(head) + ('...' if len(data) > 16 else '')


#: Signatures of the image formats OpenCV reads (the first bytes of the file).
_IMAGE_MAGIC = (
    (b'\x89PNG\r\n\x1a\n', 'PNG'), (b'\xff\xd8\xff', 'JPEG'), (b'BM', 'BMP'), (b'II*\x00', 'TIFF'),
    (b'MM\x00*', 'TIFF'), (b'GIF87a', 'GIF'), (b'GIF89a', 'GIF'), (b'\x00\x00\x00\x0cjP  ', 'JPEG 2000'),
    (b'\xffO\xffQ', 'JPEG 2000'), (b'#?RADIANCE', 'HDR'), (b'#?RGBE', 'HDR'), (b'v/1\x01', 'OpenEXR'),
    (b'\x59\xa6\x6a\x95', 'Sun raster'), (b'PF', 'PFM'), (b'Pf', 'PFM'),
) + tuple((f'P{k}'.encode(), 'PNM') for k in range(1, 8))


def image_format(data: bytes | memoryview) -> str | None:
    """The image format that ``data`` starts with (``'PNG'``, ``'JPEG'``, ...), or None."""
    head = bytes(data[:16])
    if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
        return 'WebP'
    if head[4:8] == b'ftyp' and head[8:12] in (b'avif', b'avis', b'heic', b'mif1'):
        return 'AVIF'
    return next((fmt for magic, fmt in _IMAGE_MAGIC if head.startswith(magic)), None)


def image_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """``(width, height)`` from the header of a PNG, JPEG, GIF or BMP, without decoding; None otherwise."""
    head = bytes(data[:32])
    fmt = image_format(head)
    if fmt == 'PNG' and len(head) >= 24 and head[12:16] == b'IHDR':
        return int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')
    if fmt == 'GIF' and len(head) >= 10:
        return int.from_bytes(head[6:8], 'little'), int.from_bytes(head[8:10], 'little')
    if fmt == 'BMP' and len(head) >= 26:
        return (abs(int.from_bytes(head[18:22], 'little', signed=True)),
                abs(int.from_bytes(head[22:26], 'little', signed=True)))
    if fmt == 'JPEG':
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """The size in the first start-of-frame segment (SOF0-SOF15 but DHT, JPG and DAC)."""
    i, n = 2, len(data)
    for _ in range(10_000):
        while i < n and data[i] == 0xFF:
            i += 1
        if i + 1 >= n:
            return None
        marker = data[i]
        i += 1
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            continue
        if i + 2 > n:
            return None
        length = int.from_bytes(data[i:i + 2], 'big')
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 7 > n:
                return None
            return int.from_bytes(data[i + 5:i + 7], 'big'), int.from_bytes(data[i + 3:i + 5], 'big')
        if length < 2:
            return None
        i += length
    return None


def decode_image(data: bytes | memoryview | None, limits: Limits = Limits(), name: str = 'image') -> np.ndarray | None:
    """An ``(H, W, 3)`` uint8 RGB image from an upload; None when there is none (the front view is rendered)."""
    if data is None or len(data) == 0:
        return None
    import cv2

    fmt = image_format(data)
    size = image_size(data)
    if size is not None:
        _check_pixels(size[0], size[1], limits, name)
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        bgr, detail = None, ' '.join(str(exc).split())[-200:]
    else:
        detail = None
    if bgr is None:
        if fmt is None:
            raise UnsupportedMediaError(f'{name} is not an image: it starts with {_start(data)}; send a PNG, JPEG, '
                                        'BMP, TIFF or WebP file (or no image, to segment a view rendered from the '
                                        'cloud)')
        raise BadRequestError(f'{name} could not be decoded: the {fmt} data is truncated or corrupt'
                         + (f' ({detail})' if detail else ''))
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise BadRequestError(f'{name} decoded to an unexpected {bgr.shape} {bgr.dtype} array')
    _check_pixels(bgr.shape[1], bgr.shape[0], limits, name)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _check_pixels(width: int, height: int, limits: Limits, name: str) -> None:
    if width <= 0 or height <= 0:
        raise BadRequestError(f'{name} declares an impossible size of {width}x{height} pixels')
    if width * height > limits.max_image_pixels:
        raise PayloadTooLargeError(f'{name} is {width}x{height} pixels, over this server\'s limit of '
                              f'{limits.max_image_pixels / 1e6:g} megapixels (--max-image-mp)')


@dataclass
class AnnotationOptions:
    """The request's fields besides the files, checked on creation (:class:`InvalidFieldError` when wrong).

    Fields left at None take the Python API's defaults and derivation
    (:class:`~vizion3d_ros.core.api.ObjectMaskAnnotation3DConfig`). ``model_backend`` None or empty is
    the server's model. ``lift_mode``, ``classes``, ``imgsz`` and ``cloud_frame`` are this server's own
    additions; clients that do not send them get the API's defaults.
    """

    model_backend: str | None = None
    return_object_clouds: bool = False
    return_annotated_cloud: bool = False
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    conf_threshold: float | None = None
    iou_threshold: float | None = None
    lift_mode: str | None = None
    classes: str | None = None
    imgsz: int | None = None
    cloud_frame: str | None = None

    def __post_init__(self) -> None:
        from ..core.api import CLOUD_FRAMES, EXTERNAL
        from ..core.lifting.lift import LIFT_MODES

        for name in ('fx', 'fy', 'cx', 'cy', 'conf_threshold', 'iou_threshold'):
            setattr(self, name, _number(name, getattr(self, name)))
        for name in ('fx', 'fy'):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InvalidFieldError(f'{name} must be a positive focal length in pixels, got {value:g}')
        for name in ('conf_threshold', 'iou_threshold'):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise InvalidFieldError(f'{name} must be in [0, 1], got {value:g}')
        if self.imgsz is not None:
            if isinstance(self.imgsz, bool) or not float(self.imgsz).is_integer():
                raise InvalidFieldError(f'imgsz must be a whole number of pixels, got {self.imgsz!r}')
            self.imgsz = int(self.imgsz)
            if not 32 <= self.imgsz <= 4096:
                raise InvalidFieldError(f'imgsz must be in [32, 4096] pixels, got {self.imgsz}')
        for name, allowed in (('lift_mode', LIFT_MODES), ('cloud_frame', CLOUD_FRAMES)):
            value = getattr(self, name) or None
            if value is not None and value not in allowed:
                raise InvalidFieldError(f'{name} must be one of {", ".join(allowed)}, got {value!r}')
            setattr(self, name, value)
        self.model_backend = (self.model_backend or '').strip() or None
        if self.model_backend == EXTERNAL:
            raise InvalidFieldError(f"model_backend '{EXTERNAL}' takes masks, which this server does not accept: "
                               'give a checkpoint path or URL, or leave it empty for the server\'s model')
        self.classes = (self.classes or '').strip() or None

    def config(self, device: str = 'auto') -> Any:
        """The :class:`~vizion3d_ros.core.api.ObjectMaskAnnotation3DConfig` of these options."""
        from ..core.api import ObjectMaskAnnotation3DConfig

        given = {k: getattr(self, k) for k in ('fx', 'fy', 'cx', 'cy', 'conf_threshold', 'iou_threshold',
                                               'lift_mode', 'classes', 'imgsz') if getattr(self, k) is not None}
        return ObjectMaskAnnotation3DConfig(device=device, **given)


def _number(name: str, value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidFieldError(f'{name} must be a number, got {value!r}') from None
    if not math.isfinite(number):
        raise InvalidFieldError(f'{name} must be finite, got {value!r}')
    return number


# --------------------------------------------------------------------------------------------------
# Outputs


@dataclass
class EncodedAnnotation:
    """One object of a response, transport-neutral: bytes where REST sends base64 and gRPC raw bytes."""

    label: str
    class_id: int
    confidence: float
    bbox_2d: list[float]
    mask_png: bytes
    point_indices: np.ndarray  # (M,) int64 into the input cloud's order
    point_coords: np.ndarray  # (M, 3) float64, the input cloud's coordinates
    object_cloud_ply: bytes | None


@dataclass
class EncodedResult:
    """A whole response: annotations by descending confidence, the annotated cloud (PLY) or None, and more.

    ``warnings``, ``synthesized_image`` and ``timings_ms`` are extras that the vizion3D response has no
    field for: servers may put them in headers or metadata.
    """

    annotations: list[EncodedAnnotation]
    annotated_cloud_ply: bytes | None
    backend_used: str
    warnings: list[str] = field(default_factory=list)
    synthesized_image: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)


def encode_mask_png(mask: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of a boolean mask: 255 = object, 0 = background."""
    import cv2

    ok, png = cv2.imencode('.png', np.asarray(mask, dtype=bool).astype(np.uint8) * np.uint8(255))
    if not ok:
        raise RuntimeError('OpenCV could not encode a mask as PNG')
    return png.tobytes()


def encode_result(result: Any, cloud: Cloud, options: AnnotationOptions) -> EncodedResult:
    """Encode an :class:`~vizion3d_ros.core.api.ObjectMaskAnnotation3DResult` of ``cloud``.

    Object clouds come from the result's (``output_format='numpy'``) object clouds, so the request must
    have asked the API for them when ``options.return_object_clouds``; the annotated cloud is the input's
    points in their order with the result's instance colours. PLYs are binary little-endian, float
    ``x y z`` and uchar ``red green blue``.
    """
    annotations = []
    for ann in result.annotations:
        ply = None
        if options.return_object_clouds and ann.object_cloud is not None:
            rgb = np.clip(np.round(np.asarray(ann.object_cloud)[:, 3:6] * 255.0), 0, 255).astype(np.uint8)
            ply = ply_bytes(ann.point_coords, rgb)
        annotations.append(EncodedAnnotation(
            label=str(ann.label), class_id=int(ann.class_id), confidence=float(ann.confidence),
            bbox_2d=[float(v) for v in ann.bbox_2d], mask_png=encode_mask_png(ann.mask_2d),
            point_indices=np.asarray(ann.point_indices, dtype=np.int64), point_coords=np.asarray(ann.point_coords),
            object_cloud_ply=ply))
    annotated = ply_bytes(cloud.points, result.annotated_colors) if options.return_annotated_cloud else None
    return EncodedResult(annotations=annotations, annotated_cloud_ply=annotated, backend_used=result.backend_used,
                         warnings=list(result.warnings), synthesized_image=bool(result.synthesized_image),
                         timings_ms=dict(result.timings_ms))
