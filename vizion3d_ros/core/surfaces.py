"""Where the visible surface breaks: depth jumps and creases of a depth image.

Real masks are a few pixels too wide. The spilled pixels lie on surfaces that continue outside the
object (the wall behind it, the floor it stands on), separated from the object by a depth jump (the
wall) or a crease (the floor meeting the object's face). Cutting the mask at those breaks and keeping
the parts connected to the mask's core drops the spill and keeps the object.
"""
from __future__ import annotations

import numpy as np

from .camera import PinholeIntrinsics


def row_col(flat: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of flat pixel indices: ``np.divmod(flat, width)``, several times faster for int64."""
    r = flat // width
    return r, flat - r * width


def _cross(a: tuple, b: tuple) -> tuple:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _angle_above(n1: tuple, n2: tuple, cos_max: float) -> np.ndarray:
    """True where the angle between the (unnormalised) vectors exceeds acos(cos_max) (NaN: False)."""
    dot = n1[0] * n2[0] + n1[1] * n2[1] + n1[2] * n2[2]
    nn = (n1[0] ** 2 + n1[1] ** 2 + n1[2] ** 2) * (n2[0] ** 2 + n2[1] ** 2 + n2[2] ** 2)
    with np.errstate(invalid='ignore'):
        return (dot < 0) | (dot * dot < np.float32(cos_max ** 2) * nn) if cos_max > 0 else dot < cos_max * np.sqrt(nn)


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
    ys, xs = row_col(idx, w)
    ys += origin[0]
    xs += origin[1]
    zf = np.ascontiguousarray(z, dtype=np.float32).reshape(-1)
    ax = np.float32(1.0 / cam.fx)
    ay = np.float32(1.0 / cam.fy)

    def point(offset: int, dy: int, dx: int) -> tuple:
        d = zf[idx + offset]
        return ((xs + dx - np.float32(cam.cx)) * ax * d, (ys + dy - np.float32(cam.cy)) * ay * d, d)

    p0, pxf, pxb = point(0, 0, 0), point(step, 0, step), point(-step, 0, -step)
    pyf, pyb = point(step * w, step, 0), point(-step * w, -step, 0)
    fx = [a - c for a, c in zip(pxf, p0)]
    bx = [c - a for a, c in zip(pxb, p0)]
    fy = [a - c for a, c in zip(pyf, p0)]
    by = [c - a for a, c in zip(pyb, p0)]
    n_ff = _cross(fx, fy)
    cos_max = float(np.cos(np.deg2rad(crease_deg)))
    # a kink across columns shows in the x tangents, one across rows in the y tangents
    return idx, _angle_above(n_ff, _cross(bx, fy), cos_max) | _angle_above(n_ff, _cross(fx, by), cos_max)


def depth_noise(depth: np.ndarray, jump_rel: float = 0.03) -> float:
    """Depth noise as ``sigma / depth**2`` (the way structured-light and ToF noise grows).

    From the second difference along rows, ``z[u-1] - 2 z[u] + z[u+1]``, which has sigma
    ``sqrt(6) * s`` on noisy planes and is ~0 on noise-free ones; every 4th row is enough.
    """
    z = np.asarray(depth, dtype=np.float32)[::4]
    with np.errstate(invalid='ignore'):
        d2 = z[:, :-2] - 2 * z[:, 1:-1] + z[:, 2:]
        zc = z[:, 1:-1]
        ok = np.isfinite(d2) & (np.abs(d2) < jump_rel * zc)
    if ok.sum() < 100:
        return 0.0
    # mean, not median: quantised depth (Kinect-style disparity steps) is flat between steps, which
    # makes the median zero; E|d2| = sqrt(6) * sigma * sqrt(2 / pi) for Gaussian noise
    return float(np.mean(np.abs(d2[ok]) / zc[ok] ** 2) / (np.sqrt(6.0) * np.sqrt(2.0 / np.pi)))


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


def smooth_depth(z: np.ndarray, valid: np.ndarray, noise: float,
                 regions: list[tuple[int, int, int, int]] | None = None) -> np.ndarray:
    """Edge-preserving smoothing (bilateral, range 3 sigma) of noisy depth; as is when noise-free.

    Depth sensors' noise grows with the square of depth and ruins normals from neighbouring pixels;
    a range well below the jump tolerance smooths it without blurring across object edges.
    ``regions`` (``(y0, y1, x0, x1)`` boxes) limit the work to where the result is read: inside them
    the values are exactly those of smoothing the whole image, elsewhere ``z`` is returned as is.
    """
    import cv2

    if not noise_needs_smoothing(noise) or not valid.any():
        return z
    h, w = z.shape
    sigma = 3.0 * noise * typical_depth(z) ** 2
    out = np.array(z, dtype=np.float32)
    for y0, y1, x0, x1 in regions if regions is not None else [(0, h, 0, w)]:
        # filter a patch 2 px wider (the filter's radius), so the box's own values see all their neighbours
        py0, py1, px0, px1 = max(y0 - 2, 0), min(y1 + 2, h), max(x0 - 2, 0), min(x1 + 2, w)
        ok = valid[py0:py1, px0:px1]
        sm = cv2.bilateralFilter(np.where(ok, z[py0:py1, px0:px1], 0).astype(np.float32), 5, sigma, 2.0)
        box = (slice(y0 - py0, y1 - py0), slice(x0 - px0, x1 - px0))
        out[y0:y1, x0:x1] = np.where(ok[box], sm[box], np.inf)
    return out
