"""Pinhole camera model and projection of OpenGL-space points to pixels."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Intrinsics of an undistorted (rectified) pinhole camera, in pixels.

    ``width``/``height`` are the image size the intrinsics belong to; projections outside it are
    reported as invalid rather than clipped, so no point is ever given a pixel it does not fall on.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(v) for v in values):
            raise ValueError(f'intrinsics must be finite, got fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy}')
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f'focal lengths must be positive, got fx={self.fx} fy={self.fy}')
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'image size must be positive, got {self.width}x{self.height}')

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> PinholeIntrinsics:
        """Build from a 3x3 camera matrix (row-major, as in ``sensor_msgs/CameraInfo.k``)."""
        km = np.asarray(k, dtype=np.float64).reshape(3, 3)
        return cls(fx=float(km[0, 0]), fy=float(km[1, 1]), cx=float(km[0, 2]), cy=float(km[1, 2]),
                   width=int(width), height=int(height))

    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Projection:
    """Pixels of projected points: ``valid`` marks points in front of the camera and inside the image.

    ``depth`` (metres along the viewing axis) and ``uf``/``vf`` (column/row plus 0.5, so truncation
    gives the pixel) are given for valid points only, in the order of ``indices``
    (``np.flatnonzero(valid)``, the valid points' indices into the projected array). The integer
    ``pixels`` (flat index ``v * width + u``, int64), ``u`` and ``v`` are derived on first use: an
    organised cloud seen from its own camera never needs them (see :meth:`on_own_pixels`).
    """

    valid: np.ndarray
    depth: np.ndarray
    indices: np.ndarray
    uf: np.ndarray
    vf: np.ndarray
    width: int
    height: int

    @cached_property
    def pixels(self) -> np.ndarray:
        """Flat pixel index ``v * width + u`` of each valid point (int64, for indexing)."""
        pixels = self.vf.astype(np.int64)
        pixels *= self.width
        pixels += self.uf.astype(np.int64)
        return pixels

    @property
    def u(self) -> np.ndarray:
        """Column of each valid point (int32)."""
        return self.uf.astype(np.int32)

    @property
    def v(self) -> np.ndarray:
        """Row of each valid point (int32)."""
        return self.vf.astype(np.int32)

    @property
    def all_valid(self) -> bool:
        """Every point projects into the image (then ``indices`` is simply ``0..N-1``)."""
        return self.indices.size == self.valid.size

    def on_own_pixels(self) -> bool:
        """Point ``i`` lands on pixel ``i`` for every valid point: an organised cloud from this camera.

        Such a cloud is its own z-buffer. The check costs two int32 conversions and compares against
        the pixel grid when every point is valid (no flat indices built), one comparison otherwise.
        """
        w, h = self.width, self.height
        if self.valid.size != w * h:
            return False
        if not self.all_valid:
            return bool(np.array_equal(self.pixels, self.indices))
        cols = self.u.reshape(h, w) == np.arange(w, dtype=np.int32)
        return bool(cols.all()) and bool((self.v.reshape(h, w) == np.arange(h, dtype=np.int32)[:, None]).all())


_ARANGE = np.arange(0)


def _arange(n: int) -> np.ndarray:
    """Read-only ``np.arange(n)`` (int64), shared: every all-valid projection of a big cloud needs one."""
    global _ARANGE
    if _ARANGE.size < n:
        _ARANGE = np.arange(n)
        _ARANGE.flags.writeable = False
    return _ARANGE[:n]


def project_gl(points_gl: np.ndarray, cam: PinholeIntrinsics, min_depth: float = 1e-6) -> Projection:
    """Project OpenGL camera-space points (camera looks down -Z, Y up) to integer pixels.

    A point at ``(x, y, z)`` with ``d = -z > 0`` lands at column ``fx * x / d + cx`` and row
    ``cy - fy * y / d``. Pixel centres sit at integer coordinates (OpenCV / ROS convention, as
    ``depth_image_proc`` uses), so pixel ``(u, v)`` covers ``[u - 0.5, u + 0.5) x [v - 0.5, v + 0.5)``
    and a point back-projected from a pixel lands in the middle of it.
    Non-finite points and points behind the camera are invalid. This runs on every frame: one fused
    pass (``cv2.transform``) maps the points to homogeneous pixels ``(u d, v d, d)``, then a few
    float32 passes divide and test (a VGA cloud projects in well under a millisecond).
    """
    import cv2

    pts = np.asarray(points_gl, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f'expected an (N, 3) array of points, got shape {pts.shape}')
    if len(pts) == 0:
        hom = np.zeros((0, 3), np.float32)
    else:
        k = np.array([[cam.fx, 0.0, -(cam.cx + 0.5)], [0.0, -cam.fy, -(cam.cy + 0.5)], [0.0, 0.0, -1.0]],
                     np.float32)  # the +0.5 makes truncation below round to the nearest pixel centre
        hom = cv2.transform(np.ascontiguousarray(pts).reshape(-1, 1, 3), k).reshape(-1, 3)
    depth = hom[:, 2]
    with np.errstate(invalid='ignore', divide='ignore', over='ignore'):
        uf = np.divide(hom[:, 0], depth)
        vf = np.divide(hom[:, 1], depth)
        valid = depth > min_depth  # False for NaN
        valid &= uf >= 0
        valid &= uf < cam.width
        valid &= vf >= 0
        valid &= vf < cam.height
    if valid.all():
        idx = _arange(valid.size)
    else:
        idx = np.flatnonzero(valid)  # one pass to find them, then gathers (cheaper than three boolean masks)
        uf, vf, depth = uf[idx], vf[idx], depth[idx]
    return Projection(valid=valid, depth=depth, indices=idx, uf=uf, vf=vf, width=cam.width, height=cam.height)
