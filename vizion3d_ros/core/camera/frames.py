"""Conversions between the ROS optical frame and the OpenGL camera space used by the core.

ROS optical frame (REP 103 camera convention): X right, Y down, Z forward.
OpenGL / viewer camera space (vizion3D's convention): X right, Y up, Z backward.
The two differ by a rotation of 180 degrees about X, i.e. a sign flip of Y and Z. The map is its own
inverse, and it maps axis-aligned boxes to axis-aligned boxes.
"""
from __future__ import annotations

import numpy as np

_FLIP = np.array([1.0, -1.0, -1.0], dtype=np.float32)

#: Homogeneous transform taking optical-frame coordinates to OpenGL camera space (and back).
OPTICAL_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def optical_to_gl(points: np.ndarray) -> np.ndarray:
    """Return ``(N, 3)`` optical-frame points in OpenGL camera space (a new float32 array)."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f'expected an (N, 3) array of points, got shape {pts.shape}')
    # one 1-D pass per column: a broadcast (N, 3) multiply runs a 3-long inner loop, ~7x slower.
    # Not np.negative: numpy 2.4.6 (AVX-512) returns wrong float32 values for a 16-byte input stride
    # into a strided output, the layout of a PointCloud2's x, y, z views.
    out = np.empty(pts.shape, dtype=np.float32)
    for k in range(3):
        np.multiply(pts[:, k], _FLIP[k], out=out[:, k], dtype=np.float32)
    return out


def gl_to_optical(points: np.ndarray) -> np.ndarray:
    """Inverse of :func:`optical_to_gl` (the same flip); accepts ``(3,)`` or ``(N, 3)``."""
    pts = np.asarray(points)
    if pts.shape[-1] != 3:
        raise ValueError(f'expected points with 3 coordinates, got shape {pts.shape}')
    return np.multiply(pts, _FLIP, dtype=np.float32)
