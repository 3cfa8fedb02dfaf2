"""A top view of a fused map: a quick look at what was found and where the cameras were.

The world frame of a recording has no agreed "up", but cameras are held (or mounted) roughly upright, so
the mean of their image-up directions (-Y of the optical frame) is taken as up. Points are drawn from
above (the highest point of a pixel wins), coloured by label where they have one and in their own dimmed
colour elsewhere; the camera centres are marked.
"""
from __future__ import annotations

import cv2
import numpy as np

from .colors import palette


def up_direction(camera_poses: np.ndarray) -> np.ndarray:
    """Unit world vector most cameras see as image-up (mean of their optical -Y axes); world +Z if none."""
    poses = np.asarray(camera_poses, np.float64).reshape(-1, 4, 4)
    up = -poses[:, :3, 1].sum(axis=0) if len(poses) else np.zeros(3)
    n = np.linalg.norm(up)
    return up / n if n > 1e-9 else np.array([0.0, 0.0, 1.0])


def top_view(positions: np.ndarray, colors: np.ndarray, labels: np.ndarray, camera_poses: np.ndarray,
             max_size: int = 900, margin: int = 12, point_size: float = 0.0) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB image of ``positions`` ``(M, 3)`` seen from above, labels > 0 in palette colours.

    ``point_size`` (metres, e.g. the voxel size) sets how far each point is spread to close the gaps
    between points; the image stays ``max_size`` pixels wide.
    """
    pts = np.asarray(positions, np.float64).reshape(-1, 3)
    cams = np.asarray(camera_poses, np.float64).reshape(-1, 4, 4)[:, :3, 3]
    up = up_direction(camera_poses)
    # a right-handed basis (e1, e2, up) for the ground plane
    seed = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(up, seed)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    everything = np.vstack([pts, cams])
    if not len(everything):
        return np.full((2 * margin, 2 * margin, 3), 255, np.uint8)
    flat = everything @ np.stack([e1, e2], axis=1)
    lo, hi = flat.min(axis=0), flat.max(axis=0)
    scale = (max_size - 2 * margin - 1) / max(float((hi - lo).max()), 1e-6)
    size = np.ceil((hi - lo) * scale).astype(int) + 2 * margin + 1
    img = np.full((size[1], size[0], 3), 255, np.uint8)
    pix = np.rint((flat - lo) * scale).astype(np.int64) + margin
    pix[:, 1] = size[1] - 1 - pix[:, 1]  # image rows grow downwards
    pp, pc = pix[:len(pts)], pix[len(pts):]
    if len(pts):
        labels = np.asarray(labels).reshape(-1)
        pal = palette(int(labels.max(initial=0)) + 1)
        dim = (np.asarray(colors, np.float32).reshape(-1, 3) * 0.45 + 140).astype(np.uint8)
        col = np.where((labels > 0)[:, None], pal[np.maximum(labels, 0)], dim)
        order = np.argsort(-(pts @ up), kind='stable')  # highest first: its pixel keeps it
        flat_pix = pp[order, 1] * size[0] + pp[order, 0]
        _, first = np.unique(flat_pix, return_index=True)
        chosen = order[first]
        canvas = np.zeros((size[1], size[0], 3), np.uint8)
        filled = np.zeros((size[1], size[0]), np.uint8)
        canvas[pp[chosen, 1], pp[chosen, 0]] = col[chosen]
        filled[pp[chosen, 1], pp[chosen, 0]] = 255
        # spread points over the gaps between them (only into empty pixels: labels are not blurred)
        reach = 2 * int(np.ceil(point_size * scale / 2)) + 1
        kernel = np.ones((max(reach, 3), max(reach, 3)), np.uint8)
        grown = cv2.dilate(canvas, kernel)
        gaps = (cv2.dilate(filled, kernel) > 0) & (filled == 0)
        canvas[gaps] = grown[gaps]
        img[(filled > 0) | gaps] = canvas[(filled > 0) | gaps]
    for x, y in pc:
        cv2.circle(img, (int(x), int(y)), 4, (0, 0, 0), -1, lineType=cv2.LINE_AA)
    if len(pc) > 1:
        cv2.polylines(img, [pc.reshape(-1, 1, 2).astype(np.int32)], False, (60, 60, 60), 1, cv2.LINE_AA)
    return img
