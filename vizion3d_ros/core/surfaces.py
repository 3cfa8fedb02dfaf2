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

    far_edge: np.ndarray  # (H, W) bool: behind a 4-neighbour by more than the jump tolerance
    crease: np.ndarray  # (H, W) bool: the surface bends here by more than the crease angle
    valid: np.ndarray  # (H, W) bool: finite depth

    @property
    def cut(self) -> np.ndarray:
        """Pixels that separate regions: jumps, creases and pixels without depth."""
        return self.far_edge | self.crease | ~self.valid


def _pixel_points(depth: np.ndarray, cam: PinholeIntrinsics) -> np.ndarray:
    h, w = depth.shape
    x = (np.arange(w, dtype=np.float32) - np.float32(cam.cx)) / np.float32(cam.fx)
    y = (np.arange(h, dtype=np.float32) - np.float32(cam.cy)) / np.float32(cam.fy)
    pts = np.empty((h, w, 3), np.float32)
    pts[..., 0] = depth * x[None, :]
    pts[..., 1] = depth * y[:, None]
    pts[..., 2] = depth
    return pts


def _unit(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid='ignore', divide='ignore'):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _creases(pts: np.ndarray, blocked: np.ndarray, step: int, cos_max: float) -> np.ndarray:
    """Pixels whose forward and backward normals (``step`` px stencils) differ by more than the angle.

    On a plane both are equal whatever the viewing angle; at a kink they take the two sides' normals.
    Stencils that touch a ``blocked`` pixel give NaN (no crease is claimed across a depth jump).
    """
    s = step
    h, w, _ = pts.shape
    nan = np.float32(np.nan)
    fx = np.full_like(pts, nan)
    bx = np.full_like(pts, nan)
    fy = np.full_like(pts, nan)
    by = np.full_like(pts, nan)
    fx[:, :-s] = pts[:, s:] - pts[:, :-s]
    bx[:, s:] = fx[:, :-s]
    fy[:-s] = pts[s:] - pts[:-s]
    by[s:] = fy[:-s]
    import cv2
    k = 2 * s + 1
    b = blocked.astype(np.uint8)
    near_x = cv2.dilate(b, np.ones((1, k), np.uint8)).astype(bool)
    near_y = cv2.dilate(b, np.ones((k, 1), np.uint8)).astype(bool)
    for arr, near in ((fx, near_x), (bx, near_x), (fy, near_y), (by, near_y)):
        arr[near] = nan
    # a horizontal kink shows in the x tangents, a vertical one in the y tangents
    n_ff = _unit(np.cross(fx, fy))
    n_bf = _unit(np.cross(bx, fy))
    n_fb = _unit(np.cross(fx, by))
    with np.errstate(invalid='ignore'):
        kink_x = np.einsum('ijk,ijk->ij', n_ff, n_bf) < cos_max
        kink_y = np.einsum('ijk,ijk->ij', n_ff, n_fb) < cos_max
    return kink_x | kink_y


def surface_breaks(depth: np.ndarray, cam: PinholeIntrinsics, jump_rel: float = 0.03, jump_abs: float = 0.01,
                   crease_deg: float = 40.0, step: int = 2) -> SurfaceBreaks:
    """Depth jumps and creases of a depth image (metres; ``inf``/NaN = no depth).

    A pixel is a ``far_edge`` when it lies behind one of its 8 neighbours by more than
    ``jump_rel * depth + jump_abs``; a ``crease`` when the surface normals on its two sides differ by
    more than ``crease_deg`` (``>= 180`` disables creases).
    """
    z = np.where(np.isfinite(depth), depth, np.nan).astype(np.float32)
    valid = np.isfinite(z)
    tol = z * np.float32(jump_rel) + np.float32(jump_abs)
    far = np.zeros(z.shape, bool)
    h, w = z.shape
    with np.errstate(invalid='ignore'):
        # all 8 neighbours: a jump traced through diagonal steps must still close 4-connected regions
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            a = (slice(0, h - dy), slice(max(-dx, 0), w - max(dx, 0)))  # pixel
            b = (slice(dy, h), slice(max(dx, 0), w - max(-dx, 0)))  # its neighbour at (+dy, +dx)
            d = z[b] - z[a]  # > 0: the neighbour is farther
            far[b] |= d > tol[a]
            far[a] |= -d > tol[b]
    if crease_deg >= 180:
        crease = np.zeros(z.shape, bool)
    else:
        crease = _creases(_pixel_points(z, cam), far | ~valid, step, float(np.cos(np.deg2rad(crease_deg))))
    return SurfaceBreaks(far_edge=far, crease=crease & valid, valid=valid)
