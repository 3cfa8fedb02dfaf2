"""The visible surface of a point cloud seen from the camera: z-buffer, splatting, visibility.

A point can only take a mask's label if it is (near) what the camera sees at that pixel. Clouds that
were not captured from the camera's viewpoint (a LiDAR beside it, stereo, fused clouds) contain
points behind the visible surface; their projections fall into masks of the objects in front.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Largest automatic splat radius (pixels); sparser clouds need explicit settings.
MAX_AUTO_SPLAT = 8


@dataclass(frozen=True)
class DepthMap:
    """Nearest depth per pixel (``inf`` where no point projects) and the splat radius used."""

    depth: np.ndarray  # (H, W) float32
    splat_radius: int


def zbuffer(pixels: np.ndarray, depth: np.ndarray, height: int, width: int, unique: bool = False) -> np.ndarray:
    """Nearest ``depth`` per flat pixel index: ``(H, W)`` float32, ``inf`` where nothing projects.

    ``unique`` promises at most one point per pixel (an organised cloud seen from its own camera),
    which turns the unbuffered minimum into a plain scatter.
    """
    z = np.full(height * width, np.inf, dtype=np.float32)
    if unique:
        z[pixels] = depth
    else:
        np.minimum.at(z, pixels, depth.astype(np.float32, copy=False))
    return z.reshape(height, width)


def point_spacing_px(z: np.ndarray) -> float:
    """Typical pixel distance between projected points: ``1/sqrt(fill)`` over the hit pixels' box."""
    hit = np.isfinite(z)
    rows = np.flatnonzero(hit.any(axis=1))
    if rows.size == 0:
        return 1.0
    cols = np.flatnonzero(hit.any(axis=0))
    area = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    return float(1.0 / np.sqrt(max(np.count_nonzero(hit) / area, 1e-6)))


def auto_splat_radius(spacing_px: float) -> int:
    """Footprint radius that closes the gaps between the projected points of a sparse cloud.

    Points ``s`` pixels apart need a footprint of radius ``(s - 1) / 2`` to touch; dense
    (camera-viewpoint) clouds, with ``s`` near 1, get 0.
    """
    if spacing_px < 1.2:
        return 0
    return int(min(MAX_AUTO_SPLAT, np.ceil((spacing_px - 1.0) / 2.0)))


def splat(z: np.ndarray, radius: int) -> np.ndarray:
    """Give every point a ``(2r+1)^2`` footprint: the per-pixel minimum over the window (a min filter)."""
    if radius <= 0:
        return z
    import cv2
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode(z, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=np.inf)


def depth_map(pixels: np.ndarray, depth: np.ndarray, height: int, width: int,
              splat_radius: int | None = None, unique: bool = False) -> DepthMap:
    """Z-buffer of projected points, splatted by ``splat_radius`` (None = automatic); see :func:`zbuffer`."""
    z = zbuffer(pixels, depth, height, width, unique)
    r = auto_splat_radius(point_spacing_px(z)) if splat_radius is None else int(splat_radius)
    return DepthMap(depth=splat(z, r), splat_radius=r)


def visible(depth: np.ndarray, surface: np.ndarray, rel_tol: float, abs_tol: float) -> np.ndarray:
    """True where a point's ``depth`` is on or near the visible ``surface`` depth at its pixel."""
    return depth <= surface * (1.0 + rel_tol) + abs_tol
