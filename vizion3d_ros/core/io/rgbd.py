"""RGB-D frames on disk and their back-projection to organised point clouds (optical frame)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..camera.pinhole import PinholeIntrinsics


@dataclass
class RGBDFrame:
    """A colour image, its registered depth in metres (NaN = no depth) and the camera."""

    color: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 metres
    camera: PinholeIntrinsics
    name: str = ''


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB."""
    import cv2
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'cannot read image {path}')
    return np.ascontiguousarray(img[:, :, ::-1])


def load_rgbd_folder(folder: str | Path, index: int = 0) -> RGBDFrame:
    """Load a frame from a folder with ``camera.json`` and colour + depth images.

    The images are ``color.png``/``depth.png``, or the ``index``-th files (sorted) of ``color/`` and
    ``depth/`` subfolders.

    ``camera.json`` holds ``fx, fy, cx, cy, width, height`` and ``depth_scale`` (depth units per metre).
    """
    folder = Path(folder)
    cam, depth_scale = read_camera_json(folder / 'camera.json')
    if (folder / 'color.png').is_file():
        color_path, depth_path = folder / 'color.png', folder / 'depth.png'
    else:
        color_path = sorted((folder / 'color').iterdir())[index]
        depth_path = sorted((folder / 'depth').iterdir())[index]
    return read_rgbd(color_path, depth_path, cam, depth_scale, folder.name)


def read_camera_json(path: str | Path) -> tuple[PinholeIntrinsics, float]:
    """The camera and the depth scale (depth units per metre) of a ``camera.json``; ValueError naming the file."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f'{path}: cannot read camera.json ({exc})') from exc
    missing = [k for k in ('fx', 'fy', 'cx', 'cy', 'width', 'height', 'depth_scale') if k not in meta]
    if missing:
        raise ValueError(f'{path}: missing {", ".join(missing)}')
    try:
        cam = PinholeIntrinsics(fx=float(meta['fx']), fy=float(meta['fy']), cx=float(meta['cx']),
                                cy=float(meta['cy']), width=int(meta['width']), height=int(meta['height']))
        scale = float(meta['depth_scale'])
    except (TypeError, ValueError) as exc:
        raise ValueError(f'{path}: {exc}') from exc
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f'{path}: depth_scale must be a positive number, got {meta["depth_scale"]!r}')
    return cam, scale


def write_camera_json(path: str | Path, cam: PinholeIntrinsics, depth_scale: float) -> None:
    """Write ``camera.json`` as :func:`read_camera_json` reads it."""
    meta = {'fx': cam.fx, 'fy': cam.fy, 'cx': cam.cx, 'cy': cam.cy, 'width': cam.width, 'height': cam.height,
            'depth_scale': depth_scale}
    Path(path).write_text(json.dumps(meta, indent=1))


def write_rgbd(color_path: str | Path, depth_path: str | Path, color: np.ndarray, depth: np.ndarray,
               depth_scale: float) -> None:
    """Write a colour image (RGB) and its depth (metres, NaN = none) as :func:`read_rgbd` reads them.

    The depth becomes uint16 ``depth * depth_scale`` (0 where there is none or it does not fit).
    """
    import cv2

    raw = np.nan_to_num(np.asarray(depth, np.float64) * depth_scale, nan=0.0, posinf=0.0, neginf=0.0)
    cv2.imwrite(str(color_path), cv2.cvtColor(np.asarray(color, np.uint8), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(depth_path), np.clip(np.rint(raw), 0, 65535).astype(np.uint16))


def read_rgbd(color_path: str | Path, depth_path: str | Path, cam: PinholeIntrinsics, depth_scale: float,
              name: str = '') -> RGBDFrame:
    """One colour image and its registered depth image (``depth_scale`` units per metre, 0 = none)."""
    import cv2
    color = read_rgb(color_path)
    raw = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 2:
        raise ValueError(f'{depth_path} is not a single-channel depth image')
    depth = raw.astype(np.float32) / np.float32(depth_scale)
    depth[raw == 0] = np.nan
    if color.shape[:2] != (cam.height, cam.width) or depth.shape != color.shape[:2]:
        raise ValueError(f'{name or Path(color_path).parent}: colour {color.shape[:2]}, depth {depth.shape} and '
                         f'camera {cam.height}x{cam.width} sizes differ')
    return RGBDFrame(color=color, depth=depth, camera=cam, name=name)


def depth_to_points_optical(depth: np.ndarray, cam: PinholeIntrinsics) -> np.ndarray:
    """Back-project a depth image (metres, NaN/0 = none) to ``(H*W, 3)`` float32 optical-frame points.

    Row-major, one point per pixel (organised): pixels without depth become NaN points. Pixel centres
    are at integer coordinates (as in ``depth_image_proc``), so each point projects back onto the
    centre of its own pixel.
    """
    h, w = depth.shape
    z = np.where(depth > 0, depth, np.nan).astype(np.float32)
    u = (np.arange(w, dtype=np.float32) - np.float32(cam.cx)) / np.float32(cam.fx)
    v = (np.arange(h, dtype=np.float32) - np.float32(cam.cy)) / np.float32(cam.fy)
    pts = np.empty((h, w, 3), np.float32)
    pts[..., 0] = z * u[None, :]
    pts[..., 1] = z * v[:, None]
    pts[..., 2] = z
    return pts.reshape(-1, 3)
