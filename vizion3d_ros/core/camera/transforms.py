"""Rigid transforms between a cloud's frame and the camera: parsing, quaternions, applying them.

Pure numpy. A transform is a 4x4 homogeneous matrix ``T`` with ``p_target = T @ [p_source, 1]``; the
node's ``cloud_to_camera`` is ``camera_optical <- cloud`` (the same convention as
:class:`~vizion3d_ros.core.api.ObjectMaskAnnotation3DCommand.extrinsic` and as a TF lookup of
``(target=camera, source=cloud)``).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .frames import OPTICAL_TO_GL, optical_to_gl

#: Largest deviation of ``R @ R.T`` from identity (and of the last row from ``0 0 0 1``) accepted.
RIGID_TOLERANCE = 1e-3


def quaternion_matrix(qx: float, qy: float, qz: float, qw: float) -> np.ndarray:
    """3x3 rotation of a quaternion (normalised first; a zero or non-finite one raises ValueError)."""
    q = np.array([qx, qy, qz, qw], dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f'quaternion (qx qy qz qw) = {q.tolist()} has no rotation: its norm is {norm}')
    x, y, z, w = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def pose_matrix(translation: Sequence[float], quaternion: Sequence[float]) -> np.ndarray:
    """4x4 transform from a translation ``(x, y, z)`` and a quaternion ``(qx, qy, qz, qw)``."""
    t = np.eye(4)
    t[:3, :3] = quaternion_matrix(*quaternion)
    t[:3, 3] = np.asarray(translation, dtype=np.float64)
    return t


def parse_extrinsic(value: str | Sequence[float] | None) -> np.ndarray | None:
    """4x4 transform from 7 numbers ``x y z qx qy qz qw`` or 16 (row-major 4x4); None when empty.

    ``value`` is a list of numbers or a string of numbers separated by spaces and/or commas (brackets
    allowed), so that both ``[0.1, 0.0, ...]`` and ``'0.1 0 0 0 0 0 1'`` work as ROS parameters. A 4x4
    must be rigid (orthonormal rotation, last row ``0 0 0 1``). Raises ValueError saying what is wrong.
    """
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        if len(value) == 0:
            return None
        raise ValueError(f'expected 7 or 16 numbers, got bytes {value!r}')
    if isinstance(value, str):
        tokens = [t for t in re.split(r'[\s,\[\]]+', value) if t]
        try:
            numbers = [float(t) for t in tokens]
        except ValueError:
            raise ValueError(f'expected 7 or 16 numbers separated by spaces or commas, got {value!r}') from None
    else:
        if isinstance(value, bool) or not hasattr(value, '__len__'):
            raise ValueError(f'expected 7 or 16 numbers, got {value!r}')
        values = list(value)
        if any(isinstance(v, (bool, str, bytes)) for v in values):
            raise ValueError(f'expected 7 or 16 numbers, got {values!r}')
        numbers = [float(v) for v in values]
    if not numbers:
        return None
    arr = np.asarray(numbers, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f'every number must be finite, got {numbers}')
    if arr.size == 7:
        return pose_matrix(arr[:3], arr[3:])
    if arr.size == 16:
        t = arr.reshape(4, 4)
        if np.abs(t[3] - [0.0, 0.0, 0.0, 1.0]).max() > RIGID_TOLERANCE:
            raise ValueError(f'the last row of the 4x4 must be 0 0 0 1, got {t[3].tolist()}')
        r = t[:3, :3]
        if np.abs(r @ r.T - np.eye(3)).max() > RIGID_TOLERANCE or np.linalg.det(r) < 0:
            raise ValueError('the rotation part of the 4x4 is not a rotation (R R^T != I or det(R) < 0)')
        t = t.copy()
        t[3] = [0.0, 0.0, 0.0, 1.0]
        return t
    raise ValueError(f'expected 7 numbers (x y z qx qy qz qw) or 16 (row-major 4x4), got {arr.size}')


def cloud_to_camera_gl(points: np.ndarray, cloud_to_camera: np.ndarray | None = None) -> np.ndarray:
    """``(N, 3)`` cloud points in the core's OpenGL camera space, as a new float32 array.

    ``cloud_to_camera`` (4x4, camera optical <- cloud) moves points that are not in the camera's
    optical frame; None means they already are. One matrix product: the optical->OpenGL flip is folded
    into the transform. NaN points stay NaN.
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f'expected an (N, 3) array of points, got shape {pts.shape}')
    if cloud_to_camera is None:
        return optical_to_gl(pts)
    import cv2

    t = OPTICAL_TO_GL @ np.asarray(cloud_to_camera, dtype=np.float64)
    if len(pts) == 0:
        return np.zeros((0, 3), np.float32)
    # one fused pass in OpenCV (a float64 BLAS product was 10x slower, and its threads stall when
    # the other core is busy); the result is within a few float32 ulps of the float64 product
    src = np.ascontiguousarray(pts, dtype=np.float32)  # a message's strided x, y, z: one compact copy
    return cv2.transform(src.reshape(-1, 1, 3), t[:3]).reshape(-1, 3)


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """``(N, 3)`` points moved by the 4x4 ``transform``, as a new float64 array (NaN stays NaN).

    One pass in OpenCV: numpy's ``points @ R.T`` goes to a multi-threaded BLAS whose threads stall when
    the other cores are busy (5-120 ms for a VGA frame on 2 loaded cores, against ~1 ms here).
    """
    import cv2

    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f'expected an (N, 3) array of points, got shape {pts.shape}')
    t = np.asarray(transform, dtype=np.float64)
    if len(pts) == 0:
        return np.zeros((0, 3), np.float64)
    src = np.ascontiguousarray(pts, dtype=np.float64)
    return cv2.transform(src.reshape(-1, 1, 3), t[:3]).reshape(-1, 3)
