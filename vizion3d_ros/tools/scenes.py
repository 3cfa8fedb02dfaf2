"""Where the demo gets a real frame.

../shared's TUM RGB-D frame, else a photo from the Ultralytics wheel placed on a synthetic depth, so a
newcomer without ../shared still sees real masks.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.camera.pinhole import PinholeIntrinsics
from ..core.io.rgbd import RGBDFrame, load_rgbd_folder, read_rgb


def shared_dir() -> Path | None:
    """``$VIZION3D_SHARED``, else ``../shared`` beside the repository root, if it exists."""
    env = os.environ.get('VIZION3D_SHARED')
    candidates = [Path(env)] if env else []
    root = os.environ.get('VIZION3D_ROOT')
    if root:
        candidates.append(Path(root).parent / 'shared')
    candidates.append(Path(__file__).resolve().parents[2].parent / 'shared')
    return next((c for c in candidates if (c / 'data').is_dir()), None)


def default_model() -> str:
    """The shared COCO checkpoint when present (no download), else '' = the package default URL."""
    shared = shared_dir()
    model = shared / 'models' / 'yolov8n-seg-coco.pt' if shared else None
    return str(model) if model and model.is_file() else ''


def tum_desk_folder() -> Path | None:
    """The real TUM RGB-D frame folder of ../shared, if present."""
    shared = shared_dir()
    folder = shared / 'data' / 'rgbd' / 'tum_desk' if shared else None
    return folder if folder and folder.is_dir() else None


def bus_scene() -> RGBDFrame:
    """Ultralytics' bus.jpg on a synthetic depth: a floor-to-wall scene with people and bus in front.

    The depth is made up (a slanted plane at 4-8 m); it is enough to show lifting, not to measure it.
    """
    import ultralytics
    color = read_rgb(Path(ultralytics.__file__).parent / 'assets' / 'bus.jpg')
    h, w = color.shape[:2]
    rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    depth = np.broadcast_to(8.0 - 4.0 * rows, (h, w)).astype(np.float32).copy()
    cam = PinholeIntrinsics(fx=0.85 * w, fy=0.85 * w, cx=w / 2.0, cy=h / 2.0, width=w, height=h)
    return RGBDFrame(color=color, depth=depth, camera=cam, name='ultralytics_bus_synthetic_depth')


def load_scene(frame: str | None) -> RGBDFrame:
    """``frame``: an RGB-D folder, 'bus', or None = TUM frame if available else 'bus'."""
    if frame == 'bus':
        return bus_scene()
    if frame:
        return load_rgbd_folder(frame)
    folder = tum_desk_folder()
    return load_rgbd_folder(folder) if folder else bus_scene()
