"""Where the visible surface breaks: depth jumps and creases of a depth image.

Real masks are a few pixels too wide. The spilled pixels lie on surfaces that continue outside the
object (the wall behind it, the floor it stands on), separated from the object by a depth jump (the
wall) or a crease (the floor meeting the object's face). Cutting the mask at those breaks and keeping
the parts connected to the mask's core drops the spill and keeps the object.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import PinholeIntrinsics


@dataclass(frozen=True)
class SurfaceBreaks:
    """Per-pixel breaks of a depth image."""

    far_edge: np.ndarray  # (H, W) bool: behind a neighbour by more than the jump tolerance
    crease: np.ndarray  # (H, W) bool: the surface bends here by more than the crease angle
    valid: np.ndarray  # (H, W) bool: finite depth
    smooth: np.ndarray  # (H, W) float32: edge-preserving smoothed depth (inf/NaN = none)
    noise: float  # depth noise as sigma = noise * depth**2 (metres), estimated from the image

    @property
    def cut(self) -> np.ndarray:
        """Pixels that separate regions: jumps, creases and pixels without depth."""
        return self.far_edge | self.crease | ~self.valid


def _cross(a: tuple, b: tuple) -> tuple:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _angle_above(n1: tuple, n2: tuple, cos_max: float) -> np.ndarray:
    """True where the angle between the (unnormalised) vectors exceeds acos(cos_max) (NaN: False)."""
    dot = n1[0] * n2[0] + n1[1] * n2[1] + n1[2] * n2[2]
    nn = (n1[0] ** 2 + n1[1] ** 2 + n1[2] ** 2) * (n2[0] ** 2 + n2[1] ** 2 + n2[2] ** 2)
    with np.errstate(invalid='ignore'):
        return (dot < 0) | (dot * dot < np.float32(cos_max ** 2) * nn) if cos_max > 0 else dot < cos_max * np.sqrt(nn)


def _creases(z: np.ndarray, cam: PinholeIntrinsics, blocked: np.ndarray, step: int, cos_max: float,
             where: np.ndarray | None = None) -> np.ndarray:
    """Pixels whose forward and backward normals (``step`` px stencils) differ by more than the angle.

    On a plane both are equal whatever the viewing angle; at a kink they take the two sides' normals.
    Stencils that touch a ``blocked`` pixel claim nothing (no crease across a depth jump). Only the
    pixels of ``where`` (default all) are evaluated: the caller usually needs a thin band.
    """
    import cv2

    h, w = blocked.shape
    out = np.zeros((h, w), bool)
    k = 2 * step + 1
    b = blocked.astype(np.uint8)
    free = ~(cv2.dilate(b, np.ones((1, k), np.uint8)).astype(bool)
             | cv2.dilate(b, np.ones((k, 1), np.uint8)).astype(bool))
    if where is not None:
        free &= where
    free[:, :step] = free[:, w - step:] = False
    free[:step] = free[h - step:] = False
    ys, xs = np.nonzero(free)
    if ys.size == 0:
        return out
    ax = np.float32(1.0 / cam.fx)
    ay = np.float32(1.0 / cam.fy)

    def point(yy: np.ndarray, xx: np.ndarray) -> tuple:
        d = z[yy, xx]
        return ((xx - np.float32(cam.cx)) * ax * d, (yy - np.float32(cam.cy)) * ay * d, d)

    p0, pxf, pxb = point(ys, xs), point(ys, xs + step), point(ys, xs - step)
    pyf, pyb = point(ys + step, xs), point(ys - step, xs)
    fx = [a - c for a, c in zip(pxf, p0)]
    bx = [c - a for a, c in zip(pxb, p0)]
    fy = [a - c for a, c in zip(pyf, p0)]
    by = [c - a for a, c in zip(pyb, p0)]
    n_ff = _cross(fx, fy)
    # a kink across columns shows in the x tangents, one across rows in the y tangents
    out[ys, xs] = _angle_above(n_ff, _cross(bx, fy), cos_max) | _angle_above(n_ff, _cross(fx, by), cos_max)
    return out


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


def surface_breaks(depth: np.ndarray, cam: PinholeIntrinsics, jump_rel: float = 0.03, jump_abs: float = 0.01,
                   crease_deg: float = 40.0, step: int = 2, noise: float | None = None,
                   where: np.ndarray | None = None) -> SurfaceBreaks:
    """Depth jumps and creases of a depth image (metres; ``inf``/NaN = no depth).

    A pixel is a ``far_edge`` when it lies behind one of its 8 neighbours by more than
    ``jump_rel * depth + jump_abs``; a ``crease`` when the surface normals on its two sides differ by
    more than ``crease_deg`` (``>= 180`` disables creases). ``noise`` (see :func:`depth_noise`;
    estimated when None) sets the smoothing and the normals' baseline. ``where`` limits the crease
    test (the costly part) to those pixels.
    """
    z = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(z)
    if noise is None:
        noise = depth_noise(z, jump_rel)
    # behind some 8-neighbour n by more than its tolerance: z > z_n (1 + rel) + abs for some n, i.e. for
    # the nearest one, which a 3x3 minimum filter gives (all 8 neighbours: a jump traced through
    # diagonal steps must still close 4-connected regions)
    import cv2
    nearest = cv2.erode(np.where(valid, z, np.inf).astype(np.float32), np.ones((3, 3), np.uint8),
                        borderType=cv2.BORDER_REPLICATE)
    with np.errstate(invalid='ignore'):
        far = z > nearest * np.float32(1.0 + jump_rel) + np.float32(jump_abs)
    zs = smooth_depth(z, valid, noise)
    if crease_deg >= 180:
        crease = np.zeros(z.shape, bool)
    else:
        # normals from noisy depth need a longer baseline: as long as it takes for the noise over it
        # to stay small against the pixel spacing (Kinect-like noise at 3 m needs ~4 px)
        if noise > 0 and valid.any():
            zmed = float(np.median(_finite_sample(z)))
            step = int(np.clip(np.ceil(3.0 * noise * zmed * cam.fx), step, 6))
        crease = _creases(zs, cam, far | ~valid, step, float(np.cos(np.deg2rad(crease_deg))), where)
    return SurfaceBreaks(far_edge=far, crease=crease & valid, valid=valid, smooth=zs, noise=noise)


def _finite_sample(z: np.ndarray) -> np.ndarray:
    """Finite values of every 4th row and column (enough for a typical depth)."""
    sub = z[::4, ::4]
    sub = sub[np.isfinite(sub)]
    return sub if sub.size else z[np.isfinite(z)]


def smooth_depth(z: np.ndarray, valid: np.ndarray, noise: float) -> np.ndarray:
    """Edge-preserving smoothing (bilateral, range 3 sigma) of noisy depth; as is when noise-free.

    Depth sensors' noise grows with the square of depth and ruins normals from neighbouring pixels;
    a range well below the jump tolerance smooths it without blurring across object edges.
    """
    import cv2

    if noise < 2e-4 or not valid.any():  # under 2 mm at 3 m: not worth it
        return z
    zmed = float(np.median(_finite_sample(z)))
    filled = np.where(valid, z, 0).astype(np.float32)
    sm = cv2.bilateralFilter(filled, 5, 3.0 * noise * zmed ** 2, 2.0)
    return np.where(valid, sm, np.inf).astype(np.float32)
