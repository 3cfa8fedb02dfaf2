"""A fused map as one glTF binary (``map.glb``): coloured points and the cameras' frustums as lines.

glTF viewers (Blender, three.js, online viewers, Windows 3D Viewer) open it without plug-ins, which PLY
with custom properties does not give. Written with trimesh. glTF is Y-up; the points stay in the map's
world frame, untransformed, so that coordinates match ``map.ply``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..camera.pinhole import PinholeIntrinsics


def frustum_segments(poses: np.ndarray, cameras: list[PinholeIntrinsics], depth: float = 0.25) -> np.ndarray:
    """``(F * 8, 2, 3)`` line segments of each camera's frustum, ``depth`` metres deep, in the world frame."""
    segments = []
    for pose, cam in zip(np.asarray(poses, np.float64).reshape(-1, 4, 4), cameras):
        u = np.array([0.0, cam.width, cam.width, 0.0])
        v = np.array([0.0, 0.0, cam.height, cam.height])
        corners = np.stack([(u - cam.cx) / cam.fx * depth, (v - cam.cy) / cam.fy * depth, np.full(4, depth)], 1)
        corners = corners @ pose[:3, :3].T + pose[:3, 3]
        apex = pose[:3, 3]
        for k in range(4):
            segments.append((apex, corners[k]))
            segments.append((corners[k], corners[(k + 1) % 4]))
    return np.array(segments, np.float64).reshape(-1, 2, 3)


def write_glb(path: str | Path, points: np.ndarray, colors: np.ndarray, poses: np.ndarray | None = None,
              cameras: list[PinholeIntrinsics] | None = None, frustum_depth: float = 0.25) -> None:
    """Write ``points`` ``(M, 3)`` with RGB ``colors`` ``(M, 3)`` uint8 and optional camera frustums."""
    import trimesh

    scene = trimesh.Scene()
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    if len(pts):
        rgba = np.concatenate([np.asarray(colors, np.uint8).reshape(-1, 3), np.full((len(pts), 1), 255, np.uint8)], 1)
        scene.add_geometry(trimesh.PointCloud(pts, colors=rgba), geom_name='map')
    if poses is not None and cameras:
        segments = frustum_segments(poses, cameras, frustum_depth)
        if len(segments):
            scene.add_geometry(trimesh.load_path(segments), geom_name='cameras')
    Path(path).write_bytes(scene.export(file_type='glb'))
