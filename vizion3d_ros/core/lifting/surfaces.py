"""Where the visible surface breaks: depth jumps and creases of a depth image.

Real masks are a few pixels too wide. The spilled pixels lie on surfaces that continue outside the
object (the wall behind it, the floor it stands on), separated from the object by a depth jump (the
wall) or a crease (the floor meeting the object's face). Cutting the mask at those breaks and keeping
the parts connected to the mask's core drops the spill and keeps the object.
"""
from __future__ import annotations

import numpy as np

from ..camera.pinhole import PinholeIntrinsics
from ..jit import array, kernel


def row_col(flat: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of flat pixel indices: ``np.divmod(flat, width)``, several times faster for int64."""
    r = flat // width
    return r, flat - r * width


def far_edges(z: np.ndarray, valid: np.ndarray, jump_rel: float = 0.03, jump_abs: float = 0.01) -> np.ndarray:
    """Pixels behind one of their 8 neighbours by more than ``jump_rel * depth + jump_abs``.

    Behind some neighbour n means z > z_n (1 + rel) + abs, i.e. behind the nearest one, which a 3x3
    minimum filter gives (all 8 neighbours: a jump traced through diagonal steps must still close
    4-connected regions).
    """
    import cv2

    nearest = cv2.erode(np.where(valid, z, np.inf).astype(np.float32), np.ones((3, 3), np.uint8),
                        borderType=cv2.BORDER_REPLICATE)
    with np.errstate(invalid='ignore'):
        return z > nearest * np.float32(1.0 + jump_rel) + np.float32(jump_abs)


def crease_pixels(z: np.ndarray, cam: PinholeIntrinsics, blocked: np.ndarray, step: int, crease_deg: float,
                  where: np.ndarray, origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Crease test at the pixels of ``where``: ``(flat indices tested, True where creased)``.

    A pixel is a crease when its forward and backward normals (``step`` px stencils) differ by more than
    ``crease_deg``: on a plane both are equal whatever the viewing angle; at a kink they take the two
    sides' normals. Stencils that touch a ``blocked`` pixel (a depth jump, no depth) claim nothing, and
    neither do pixels within ``step`` of the image's edge. ``crease_deg >= 180`` disables the test.
    ``origin`` is the ``(row, column)`` of the arrays' first pixel in the image ``cam`` describes, so
    that a caller may pass a part of that image (indices stay those of the part).
    """
    import cv2

    h, w = blocked.shape
    if crease_deg >= 180:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    k = 2 * step + 1
    b = np.ascontiguousarray(blocked).view(np.uint8)
    free = ~(cv2.dilate(b, np.ones((1, k), np.uint8)).view(bool) | cv2.dilate(b, np.ones((k, 1), np.uint8)).view(bool))
    free &= where
    free[:, :step] = free[:, w - step:] = False
    free[:step] = free[h - step:] = False
    idx = np.flatnonzero(free)
    if idx.size == 0:
        return idx, np.zeros(0, bool)
    if z.dtype != np.float32:
        z = z.astype(np.float32)
    cos_max = float(np.cos(np.deg2rad(crease_deg)))
    hit = _creased(z, idx, w, int(step), int(origin[0]), int(origin[1]), np.float32(1.0 / cam.fx),
                   np.float32(1.0 / cam.fy), np.float32(cam.cx), np.float32(cam.cy), float(np.float32(cos_max ** 2)),
                   cos_max)
    return idx, hit


def _sig_creased():
    from numba import types

    i8, f4, f8 = types.int64, types.float32, types.float64
    return types.boolean[::1](array('float32', 2), array('int64', 1), i8, i8, i8, i8, f4, f4, f4, f4, f8, f8)


@kernel(_sig_creased)
def _creased(z, idx, w, step, oy, ox, ax, ay, cx, cy, cos2, cos_max):  # pragma: no cover - compiled
    """The crease test of :func:`crease_pixels` at the flat pixels ``idx`` of ``z`` (row width ``w``).

    Back-projects the pixel and its four neighbours ``step`` px away (pixel ``(y + oy, x + ox)`` of the
    camera with inverse focal lengths ``ax``, ``ay`` and centre ``cx``, ``cy``) and compares the normal of
    the forward tangents with those that swap in the backward x or y tangent: creased where either
    angle exceeds ``acos(cos_max)`` (``cos2`` is ``cos_max**2`` rounded to float32). The arithmetic is
    numpy's (float64, the depth differences in float32), so the answers are the same bit for bit.
    """
    out = np.empty(idx.size, np.bool_)
    for j in range(idx.size):
        y = idx[j] // w
        x = idx[j] - y * w
        d0, dxf, dxb = z[y, x], z[y, x + step], z[y, x - step]
        dyf, dyb = z[y + step, x], z[y - step, x]
        u = np.float64(x + ox)
        v = np.float64(y + oy)
        x0 = (u - cx) * ax * d0
        y0 = (v - cy) * ay * d0
        # tangents: forward x, backward x, forward y, backward y (x, y in float64, depth in float32)
        fxx = (u + step - cx) * ax * dxf - x0
        fxy = (v - cy) * ay * dxf - y0
        fxz = dxf - d0
        bxx = x0 - (u - step - cx) * ax * dxb
        bxy = y0 - (v - cy) * ay * dxb
        bxz = d0 - dxb
        fyx = (u - cx) * ax * dyf - x0
        fyy = (v + step - cy) * ay * dyf - y0
        fyz = dyf - d0
        byx = x0 - (u - cx) * ax * dyb
        byy = y0 - (v - step - cy) * ay * dyb
        byz = d0 - dyb
        # normals: forward x forward; backward x with forward y; forward x with backward y
        n0, n1, n2 = fxy * fyz - fxz * fyy, fxz * fyx - fxx * fyz, fxx * fyy - fxy * fyx
        a0, a1, a2 = bxy * fyz - bxz * fyy, bxz * fyx - bxx * fyz, bxx * fyy - bxy * fyx
        b0, b1, b2 = fxy * byz - fxz * byy, fxz * byx - fxx * byz, fxx * byy - fxy * byx
        nn = n0 * n0 + n1 * n1 + n2 * n2
        creased = False
        for m0, m1, m2 in ((a0, a1, a2), (b0, b1, b2)):
            dot = n0 * m0 + n1 * m1 + n2 * m2
            mm = nn * (m0 * m0 + m1 * m1 + m2 * m2)
            if cos_max > 0:
                creased |= dot < 0 or dot * dot < cos2 * mm
            else:
                creased |= dot < cos_max * np.sqrt(mm)
        out[j] = creased
    return out


def depth_noise(depth: np.ndarray, jump_rel: float = 0.03) -> float:
    """Depth noise as ``sigma / depth**2`` (the way structured-light and ToF noise grows).

    From the second difference along rows, ``z[u-1] - 2 z[u] + z[u+1]``, which has sigma
    ``sqrt(6) * s`` on noisy planes and is ~0 on noise-free ones; every 4th row is enough.
    """
    ratios = _second_differences(np.asarray(depth, dtype=np.float32), np.float32(jump_rel))
    if ratios.size < 100:
        return 0.0
    # mean, not median: quantised depth (Kinect-style disparity steps) is flat between steps, which
    # makes the median zero; E|d2| = sqrt(6) * sigma * sqrt(2 / pi) for Gaussian noise
    return float(np.mean(ratios) / (np.sqrt(6.0) * np.sqrt(2.0 / np.pi)))


def _sig_second_differences():
    from numba import types

    return types.float32[::1](array('float32', 2), types.float32)


@kernel(_sig_second_differences)
def _second_differences(z, jump_rel):  # pragma: no cover - compiled
    """``|d2| / z**2`` of the finite second differences along every 4th row, smaller than ``jump_rel * z``.

    In raster order and in float32, as numpy computes them (``d2 = z[u-1] - 2 z[u] + z[u+1]``).
    """
    h, w = z.shape
    out = np.empty(max(((h + 3) // 4) * (w - 2), 0), np.float32)
    n = 0
    two = np.float32(2.0)
    for y in range(0, h, 4):
        for x in range(1, w - 1):
            zc = z[y, x]
            d2 = z[y, x - 1] - two * zc + z[y, x + 1]
            if np.isfinite(d2) and abs(d2) < jump_rel * zc:
                out[n] = abs(d2) / (zc * zc)
                n += 1
    return out[:n]


def typical_depth(z: np.ndarray) -> float:
    """Median of the finite depths of every 4th row and column (nan when there are none)."""
    sub = _finite_sample(z)
    return float(np.median(sub)) if sub.size else float('nan')


def _finite_sample(z: np.ndarray) -> np.ndarray:
    """Finite values of every 4th row and column (enough for a typical depth)."""
    sub = z[::4, ::4]
    sub = sub[np.isfinite(sub)]
    return sub if sub.size else z[np.isfinite(z)]


def noise_needs_smoothing(noise: float) -> bool:
    """Whether depth noise of ``noise`` (sigma / depth**2) is worth smoothing: from 2 mm at 3 m on."""
    return noise >= 2e-4


def smooth_depth(z: np.ndarray, valid: np.ndarray, noise: float) -> np.ndarray:
    """Edge-preserving smoothing (bilateral, range 3 sigma) of noisy depth; as is when noise-free.

    Depth sensors' noise grows with the square of depth and ruins normals from neighbouring pixels;
    a range well below the jump tolerance smooths it without blurring across object edges. Pixels
    without depth (``valid`` False) come out as inf.
    """
    import cv2

    if not noise_needs_smoothing(noise) or not valid.any():
        return z
    sigma = 3.0 * noise * typical_depth(z) ** 2
    sm = cv2.bilateralFilter(np.where(valid, z, 0).astype(np.float32), 5, sigma, 2.0)
    return np.where(valid, sm, np.float32(np.inf))
