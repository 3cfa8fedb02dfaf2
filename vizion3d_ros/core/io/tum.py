"""TUM RGB-D sequences: ``rgb.txt``, ``depth.txt`` and ``groundtruth.txt`` associated by time stamp.

Each colour image is paired with the nearest depth image within ``max_dt`` (20 ms, as TUM's own
``associate.py`` does) and posed by the ground truth interpolated at its stamp (linear in position,
spherical in orientation) when ground truth brackets it within ``max_pose_gap``. Colour images left
without depth or pose are skipped and listed with the reason (``skipped``). The ground truth is the
colour camera's optical centre in the world (camera-to-world, optical convention).

The camera comes from ``camera.json`` when the folder has one; otherwise TUM's default intrinsics
(fx = fy = 525, cx = 319.5, cy = 239.5; 640 x 480) and depth scale (5000 per metre) are used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..camera.pinhole import PinholeIntrinsics
from .posed import PosedFolderError, PosedFrame, PosedSequence
from .rgbd import read_camera_json, write_camera_json, write_rgbd

TUM_DEFAULT_CAMERA = PinholeIntrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)
TUM_DEPTH_SCALE = 5000.0


def read_stamp_list(path: Path, columns: int) -> tuple[np.ndarray, list[list[str]]]:
    """Time stamps and the other columns of a TUM list file (``#`` comments); errors name file and line."""
    stamps, rows = [], []
    try:
        text = path.read_text()
    except OSError as exc:
        raise PosedFolderError(f'{path}: cannot read ({exc})') from exc
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        parts = line.split()
        try:
            if len(parts) != columns + 1:
                raise ValueError(f'{len(parts)} columns, expected {columns + 1}')
            stamps.append(float(parts[0]))
        except ValueError as exc:
            raise PosedFolderError(f'{path}:{n}: {exc}') from exc
        rows.append(parts[1:])
    if not stamps:
        raise PosedFolderError(f'{path}: no entries')
    return np.array(stamps), rows


class TumSequence(PosedSequence):
    """The posed frames of a TUM RGB-D sequence folder, associated by time stamp."""

    def __init__(self, folder: str | Path, max_dt: float = 0.02, max_pose_gap: float = 0.1) -> None:
        from scipy.spatial.transform import Rotation, Slerp

        self.folder = Path(folder)
        if (self.folder / 'camera.json').is_file():
            try:
                self.camera, self.depth_scale = read_camera_json(self.folder / 'camera.json')
            except ValueError as exc:
                raise PosedFolderError(str(exc)) from exc
        else:
            self.camera, self.depth_scale = TUM_DEFAULT_CAMERA, TUM_DEPTH_SCALE
        rgb_t, rgb = read_stamp_list(self.folder / 'rgb.txt', 1)
        depth_t, depth = read_stamp_list(self.folder / 'depth.txt', 1)
        gt_t, gt = read_stamp_list(self.folder / 'groundtruth.txt', 7)
        order = np.argsort(gt_t)
        gt_t = gt_t[order]
        values = np.array([[float(v) for v in gt[i]] for i in order])
        if not np.isfinite(values).all():
            raise PosedFolderError(f'{self.folder / "groundtruth.txt"}: values that are not finite')
        slerp = Slerp(gt_t, Rotation.from_quat(values[:, 3:])) if len(gt_t) > 1 else None
        self.frames: list[PosedFrame] = []
        self.skipped: list[tuple[str, str]] = []
        for t, (name,) in sorted(zip(rgb_t, rgb)):
            stem = Path(name).stem
            near = int(np.argmin(np.abs(depth_t - t)))
            if abs(depth_t[near] - t) > max_dt:
                self.skipped.append((stem, f'no depth image within {max_dt * 1e3:g} ms'))
                continue
            g = int(np.clip(np.searchsorted(gt_t, t), 1, len(gt_t) - 1))
            if slerp is None or not gt_t[0] <= t <= gt_t[-1] or gt_t[g] - gt_t[g - 1] > max_pose_gap:
                self.skipped.append((stem, 'no ground truth pose around its stamp'))
                continue
            a = (t - gt_t[g - 1]) / (gt_t[g] - gt_t[g - 1])
            pose = np.eye(4)
            pose[:3, :3] = slerp([t]).as_matrix()[0]
            pose[:3, 3] = (1 - a) * values[g - 1, :3] + a * values[g, :3]
            self.frames.append(PosedFrame(len(self.frames), stem, self.folder / name,
                                          self.folder / depth[near][0], pose))
        if not self.frames:
            raise PosedFolderError(f'{self.folder}: no colour image has both a depth image and a pose '
                                   f'({len(self.skipped)} skipped: {self.skipped[0][1]})')


def write_tum_sequence(folder: str | Path, camera: PinholeIntrinsics, frames: list[tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]],
                       t0: float = 1305031102.0, dt: float = 1 / 30, depth_offset: float = 0.005) -> list[str]:
    """Write ``(color RGB uint8, depth metres, pose)`` frames as a TUM sequence; returns the colour stems.

    Colour at ``t0 + i * dt``, depth ``depth_offset`` later (TUM's two streams are not simultaneous),
    ground truth at the colour stamps, and a ``camera.json`` (the reader's override of TUM's default).
    """
    from scipy.spatial.transform import Rotation

    folder = Path(folder)
    (folder / 'rgb').mkdir(parents=True, exist_ok=True)
    (folder / 'depth').mkdir(exist_ok=True)
    write_camera_json(folder / 'camera.json', camera, TUM_DEPTH_SCALE)
    rgb, depth, gt, stems = ['# timestamp filename'], ['# timestamp filename'], ['# timestamp tx ty tz qx qy qz qw'], []
    for i, (color, d, pose) in enumerate(frames):
        t, td = t0 + i * dt, t0 + i * dt + depth_offset
        write_rgbd(folder / 'rgb' / f'{t:.6f}.png', folder / 'depth' / f'{td:.6f}.png', color, d, TUM_DEPTH_SCALE)
        rgb.append(f'{t:.6f} rgb/{t:.6f}.png')
        depth.append(f'{td:.6f} depth/{td:.6f}.png')
        pose = np.asarray(pose, np.float64)
        q = Rotation.from_matrix(pose[:3, :3]).as_quat()
        gt.append(f'{t:.6f} ' + ' '.join(f'{v:.9f}' for v in [*pose[:3, 3], *q]))
        stems.append(f'{t:.6f}')
    for name, lines in (('rgb.txt', rgb), ('depth.txt', depth), ('groundtruth.txt', gt)):
        (folder / name).write_text('\n'.join(lines) + '\n')
    return stems
