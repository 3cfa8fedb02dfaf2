"""Camera intrinsics when the user gives none: from the image size, or from the point cloud itself.

Derived intrinsics are a guess. They are exact only for clouds that were back-projected with the same
guess (vizion3D's ``DepthEstimation`` with its defaults); for clouds from a real sensor (RGB-D, stereo,
LiDAR beside a camera) pass the calibrated ``fx, fy, cx, cy`` (and the extrinsic when the cloud is
not in the camera's frame). Stereo rigs in particular often put the principal point far from the
image centre, and a cloud that is not a depth map of the camera's own view has no "image" whose
extent could be recovered: both need explicit intrinsics.

Conventions are those of :mod:`.camera`: pixel centres at integer coordinates, OpenGL camera space
(X right, Y up, camera looking down -Z).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .pinhole import PinholeIntrinsics

#: vizion3D's focal-length guess: ``fx = fy = 0.85 * image width`` (about 61 degrees horizontal field of view).
FOCAL_FACTOR = 0.85
#: Image width of the synthetic front view when neither a size nor a focal length is given.
DEFAULT_RENDER_WIDTH = 640
#: A cloud wider than this (degrees, seen from the camera) cannot be flattened into one pinhole image.
MAX_SPAN_DEG = 150.0
#: More than this fraction of the cloud behind the camera means the cloud is not in camera space.
MAX_BEHIND_FRACTION = 0.02
#: Percentiles (low, 100 - low) of the robust angular extent.
ROBUST_PERCENTILE = 0.5
#: The full extent replaces the robust one unless it is this much wider (a few far outliers).
OUTLIER_WIDENING = 1.25
#: Free border (pixels) between the extreme points' pixel centres and the image edge. 0 is safe: a pixel
#: centre is half a pixel inside the image, far more than float rounding moves a projection.
MARGIN_PX = 0.0
#: Bounds of a derived image side (pixels).
MIN_SIDE, MAX_SIDE = 8, 8192


class IntrinsicsError(ValueError):
    """No usable camera could be derived; the message says what to pass instead."""


def derive_intrinsics(width: int, height: int, fx: float | None = None, fy: float | None = None,
                      cx: float | None = None, cy: float | None = None) -> PinholeIntrinsics:
    """Intrinsics for a ``width`` x ``height`` image: given values win, the rest follow vizion3D.

    Missing focal lengths are ``0.85 * width``; when only one of ``fx``/``fy`` is given the other
    copies it (square pixels), so a user's focal length is never mixed with a guess. The principal
    point defaults to ``(width / 2, height / 2)``, vizion3D's formula: with integer pixel centres
    that is half a pixel right of and below the geometric centre ``((w - 1) / 2, (h - 1) / 2)``, and
    it makes clouds built by vizion3D with its defaults project back onto their own pixels.
    """
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise ValueError(f'image size must be positive, got {width}x{height}')
    if fx is None and fy is None:
        fx = fy = FOCAL_FACTOR * width
    elif fx is None:
        fx = fy
    elif fy is None:
        fy = fx
    return PinholeIntrinsics(fx=float(fx), fy=float(fy), cx=float(width / 2.0 if cx is None else cx),
                             cy=float(height / 2.0 if cy is None else cy), width=width, height=height)


@dataclass(frozen=True)
class CloudIntrinsics:
    """A camera derived from a cloud, and how far it can be trusted.

    ``reliable`` is False when the cloud cannot be seen as one pinhole image (it wraps around the
    camera or lies partly behind it); ``warning`` then says why (it may also hold a note when the
    camera is usable but leaves some points out). ``fraction_inside`` is the share of the cloud's
    finite points that project into the image; ``span_deg`` the cloud's robust horizontal and
    vertical angular extent seen from the camera.
    """

    camera: PinholeIntrinsics
    reliable: bool
    warning: str | None
    fraction_inside: float
    span_deg: tuple[float, float]


def intrinsics_from_cloud(points_gl: np.ndarray, width: int | None = None, height: int | None = None,
                          fx: float | None = None, fy: float | None = None, cx: float | None = None,
                          cy: float | None = None) -> CloudIntrinsics:
    """A pinhole camera at the origin that sees the whole cloud (point-cloud-only mode, no image).

    The cloud must be in OpenGL camera space with the camera at the origin. Each point's direction
    gives its tangent-plane position ``(x / d, y / d)`` with ``d = -z``; the camera covers their
    extent (0.5-99.5 percentiles when a few outliers would otherwise widen it by more than 25 %).
    Given values win. Without a focal length the image is ``width`` pixels wide (default 640) and
    the focal length fits the extent into it; the height then follows from the cloud's aspect
    (or the fit is to ``height`` when only that is given). Square pixels are assumed. With all four
    intrinsics given and no size, the size is ``(2 cx, 2 cy)`` (principal point at the centre, as
    :func:`derive_intrinsics` puts it).

    Raises :class:`IntrinsicsError` when no point lies in front of the camera. Clouds that wrap
    around the camera (more than 150 degrees wide) or lie partly behind it (more than 2 %) give
    ``reliable=False``: such clouds need explicit intrinsics and an extrinsic into the camera.
    """
    pts = np.asarray(points_gl, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f'expected an (N, 3) array of points, got shape {pts.shape}')
    pts = pts[np.isfinite(pts).all(axis=1)]
    depth = -pts[:, 2]
    front = depth > 1e-6
    if not front.any():
        raise IntrinsicsError('no point of the cloud lies in front of the camera (z < 0 in OpenGL camera space): '
                              'the cloud is not in camera space; pass an extrinsic (camera <- cloud) '
                              'or the cloud in the right frame')
    notes: list[str] = []
    reliable = True
    behind = 1.0 - np.count_nonzero(front) / len(pts)
    if behind > MAX_BEHIND_FRACTION:
        reliable = False
        notes.append(f'{100 * behind:.0f}% of the points lie behind the camera')
    # angular extent over all points (those behind the camera included): catches 360-degree sweeps
    az = np.degrees(np.arctan2(pts[:, 0], depth))
    el = np.degrees(np.arctan2(pts[:, 1], np.hypot(pts[:, 0], depth)))
    span = (_robust_width(az), _robust_width(el))
    if max(span) > MAX_SPAN_DEG:
        reliable = False
        notes.append(f'the cloud spans {span[0]:.0f} x {span[1]:.0f} degrees around the camera '
                     f'(a pinhole image covers well under {MAX_SPAN_DEG:.0f})')
    tx = pts[front, 0] / depth[front]
    ty = pts[front, 1] / depth[front]
    x0, x1 = _extent(tx)
    y0, y1 = _extent(ty)
    all_given = None not in (fx, fy, cx, cy)
    if all_given and width is None and height is None:
        width, height = max(1, round(2 * cx)), max(1, round(2 * cy))
    f_x, f_y = _focal(fx, fy, width, height, x1 - x0, y1 - y0)
    width, cx = _axis(f_x, width, cx, x0, x1, flip=False)
    height, cy = _axis(f_y, height, cy, y0, y1, flip=True)
    cam = PinholeIntrinsics(fx=f_x, fy=f_y, cx=cx, cy=cy, width=width, height=height)
    u = f_x * tx + cx
    v = cy - f_y * ty
    inside = np.count_nonzero((u >= -0.5) & (u < width - 0.5) & (v >= -0.5) & (v < height - 0.5))
    fraction = inside / len(pts)
    if reliable and fraction < 0.999:
        notes.append(f'{100 * (1 - fraction):.1f}% of the points fall outside the derived image')
    warning = None
    if notes:
        warning = '; '.join(notes)
        if not reliable:
            warning += ('. Pass explicit intrinsics (fx, fy, cx, cy and the image size) and, when the cloud '
                        'is not in the camera frame, an extrinsic')
    return CloudIntrinsics(camera=cam, reliable=reliable, warning=warning, fraction_inside=float(fraction),
                           span_deg=(float(span[0]), float(span[1])))


def _robust_width(values: np.ndarray) -> float:
    lo, hi = np.percentile(values, [ROBUST_PERCENTILE, 100 - ROBUST_PERCENTILE])
    return float(hi - lo)


def _extent(t: np.ndarray) -> tuple[float, float]:
    """Full extent of ``t``, or its robust extent when a few outliers make the full one much wider."""
    full = float(t.min()), float(t.max())
    lo, hi = (float(v) for v in np.percentile(t, [ROBUST_PERCENTILE, 100 - ROBUST_PERCENTILE]))
    if full[1] - full[0] > OUTLIER_WIDENING * max(hi - lo, 1e-12):
        return lo, hi
    return full


def _focal(fx: float | None, fy: float | None, width: int | None, height: int | None, range_x: float,
           range_y: float) -> tuple[float, float]:
    if fx is not None or fy is not None:
        f_x = float(fx if fx is not None else fy)
        f_y = float(fy if fy is not None else fx)
        return f_x, f_y
    if width is None and height is not None:
        f = (int(height) - 1 - 2 * MARGIN_PX) / max(range_y, 1e-9)
    else:
        w = DEFAULT_RENDER_WIDTH if width is None else int(width)
        f = (w - 1 - 2 * MARGIN_PX) / max(range_x, 1e-9)
        if width is not None and height is not None:  # both fixed: the extent must fit both ways
            f = min(f, (int(height) - 1 - 2 * MARGIN_PX) / max(range_y, 1e-9))
    f = max(f, 1e-3)
    return f, f


def _axis(f: float, size: int | None, centre: float | None, t0: float, t1: float,
          flip: bool) -> tuple[int, float]:
    """Image size and principal point along one axis; ``flip`` for rows (image down, Y up)."""
    lo, hi = (-t1, -t0) if flip else (t0, t1)  # coordinate that grows with the pixel index
    if size is None:
        if centre is None:
            size = math.ceil(f * (hi - lo) + 1 + 2 * MARGIN_PX - 1e-3)
        else:  # reach the far edge of the extent from the given principal point
            size = math.ceil(centre + f * hi + 1 + MARGIN_PX - 1e-3)
        size = int(min(max(size, MIN_SIDE), MAX_SIDE))
    if centre is None:  # centre the extent in the image
        centre = (size - 1) / 2.0 - f * (lo + hi) / 2.0
    return int(size), float(centre)
