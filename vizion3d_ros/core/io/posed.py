"""Posed RGB-D sequences on disk: the Redwood / Open3D folder layout, read lazily frame by frame.

A folder holds ``camera.json`` (``fx, fy, cx, cy, width, height, depth_scale``), ``color/<stem>.(png|jpg)``,
``depth/<stem>.png`` (uint16, metres = value / depth_scale, 0 = no depth) and ``trajectory.log``: per frame
a line of three integers (the frame's index first) and the 4 rows of its 4x4 camera-to-world pose, the
camera in the ROS optical convention (X right, Y down, Z forward). Frames are the stems in sorted order.

Everything that can be checked without decoding images is checked when the folder is opened, with the
file and what is wrong in the message (:class:`PosedFolderError`); an image that turns out unreadable
raises :class:`FrameError` for that frame only, so that a caller can skip it and go on.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..camera.pinhole import PinholeIntrinsics
from .rgbd import RGBDFrame, read_camera_json, read_rgbd, write_camera_json, write_rgbd

COLOR_SUFFIXES = ('.png', '.jpg', '.jpeg')
#: A pose's rotation may differ from a rotation by this much (max |R^T R - I|) before it is refused.
ROTATION_TOLERANCE = 1e-4


class PosedFolderError(ValueError):
    """The folder's layout, camera or trajectory is wrong: nothing can be read from it."""


class FrameError(ValueError):
    """One frame's images cannot be read (the others can)."""


@dataclass(frozen=True)
class PosedFrame:
    """One frame of a sequence: its place, images and pose (before anything is decoded)."""

    index: int
    stem: str
    color_path: Path
    depth_path: Path
    pose: np.ndarray  # (4, 4) float64 camera (optical) -> world


@dataclass
class PosedRGBD:
    """A decoded frame: colour, depth (metres, NaN = none), camera and camera-to-world pose."""

    frame: RGBDFrame
    pose: np.ndarray
    index: int
    stem: str


class PosedSequence:
    """Frames with poses, decoded lazily: ``len()``, indexing and iteration (subclasses fill ``frames``)."""

    camera: PinholeIntrinsics
    depth_scale: float
    frames: list[PosedFrame]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> PosedRGBD:
        """Frame ``i`` decoded; :class:`FrameError` if its images cannot be read."""
        f = self.frames[i]
        try:
            rgbd = read_rgbd(f.color_path, f.depth_path, self.camera, self.depth_scale, f.stem)
        except (OSError, ValueError) as exc:  # FileNotFoundError is an OSError
            raise FrameError(f'frame {f.stem}: {exc}') from exc
        return PosedRGBD(frame=rgbd, pose=f.pose, index=f.index, stem=f.stem)

    def __iter__(self) -> Iterator[PosedRGBD]:
        return (self[i] for i in range(len(self)))


class PosedRGBDFolder(PosedSequence):
    """The frames of a posed RGB-D folder (Redwood / Open3D layout), in order."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise PosedFolderError(f'{self.folder}: not a folder')
        try:
            self.camera, self.depth_scale = read_camera_json(self.folder / 'camera.json')
        except ValueError as exc:
            raise PosedFolderError(str(exc)) from exc
        colors = _by_stem(self.folder / 'color', COLOR_SUFFIXES)
        depths = _by_stem(self.folder / 'depth', ('.png',))
        if colors.keys() != depths.keys():
            only_color = sorted(colors.keys() - depths.keys())
            only_depth = sorted(depths.keys() - colors.keys())
            raise PosedFolderError(f'{self.folder}: colour and depth images do not pair up by name'
                                   + (f'; no depth for {_few(only_color)}' if only_color else '')
                                   + (f'; no colour for {_few(only_depth)}' if only_depth else ''))
        stems = sorted(colors)
        poses = read_trajectory_log(self.folder / 'trajectory.log')
        if len(poses) != len(stems):
            raise PosedFolderError(f'{self.folder / "trajectory.log"}: {len(poses)} poses for {len(stems)} frames')
        self.frames = [PosedFrame(i, stem, colors[stem], depths[stem], pose)
                       for i, (stem, pose) in enumerate(zip(stems, poses))]


def read_trajectory_log(path: str | Path) -> list[np.ndarray]:
    """Camera-to-world poses of a Redwood/Open3D ``trajectory.log``, in the order of the frame indices.

    Each pose must be rigid (a rotation and a translation, last row 0 0 0 1) and each index from 0 to
    N-1 must appear once.
    """
    path = Path(path)
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise PosedFolderError(f'{path}: cannot read ({exc})') from exc
    if len(lines) % 5:
        raise PosedFolderError(f'{path}: {len(lines)} non-empty lines; expected 5 per frame (a header and 4 rows)')
    poses: dict[int, np.ndarray] = {}
    for k in range(0, len(lines), 5):
        where = f'{path}:{k + 1}'
        head = lines[k]
        try:
            index = int(head[0])
            pose = np.array([[float(v) for v in row] for row in lines[k + 1:k + 5]], dtype=np.float64)
        except (ValueError, IndexError) as exc:
            raise PosedFolderError(f'{where}: not a header and a 4x4 matrix ({exc})') from exc
        if len(head) != 3 or pose.shape != (4, 4):
            raise PosedFolderError(f'{where}: a header of 3 integers and 4 rows of 4 numbers expected')
        problem = rigid_pose_problem(pose)
        if problem:
            raise PosedFolderError(f'{where}: pose of frame {index} {problem}')
        if index in poses:
            raise PosedFolderError(f'{where}: frame {index} has a second pose')
        poses[index] = pose
    if sorted(poses) != list(range(len(poses))):
        raise PosedFolderError(f'{path}: frame indices must run from 0 to {len(poses) - 1}, got {_few(sorted(poses))}')
    return [poses[i] for i in range(len(poses))]


def rigid_pose_problem(pose: np.ndarray) -> str | None:
    """What is wrong with a 4x4 rigid transform (not finite, last row, not a rotation), or None."""
    if not np.isfinite(pose).all():
        return 'is not finite'
    if not np.array_equal(pose[3], [0.0, 0.0, 0.0, 1.0]):
        return f'has a last row {pose[3].tolist()}, not [0, 0, 0, 1]'
    r = pose[:3, :3]
    if np.abs(r.T @ r - np.eye(3)).max() > ROTATION_TOLERANCE or np.linalg.det(r) < 0:
        return 'does not rotate rigidly (its 3x3 part is not a rotation)'
    return None


def _by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        raise PosedFolderError(f'{folder}: missing (a posed RGB-D folder has color/ and depth/)')
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in suffixes:
            if p.stem in out:
                raise PosedFolderError(f'{folder}: two images for frame {p.stem} ({out[p.stem].name}, {p.name})')
            out[p.stem] = p
    if not out:
        raise PosedFolderError(f'{folder}: no {"/".join(suffixes)} images')
    return out


def _few(items: list, n: int = 5) -> str:
    shown = ', '.join(str(i) for i in items[:n])
    return shown + (f' and {len(items) - n} more' if len(items) > n else '')


def write_posed_folder(folder: str | Path, camera: PinholeIntrinsics, frames: list[tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]],
                       depth_scale: float = 1000.0) -> list[str]:
    """Write ``(color RGB uint8, depth metres, pose)`` frames as a posed RGB-D folder; returns the stems.

    The layout :class:`PosedRGBDFolder` reads (PNG colour, uint16 depth with NaN as 0), for tools that
    convert recordings and for tests.
    """
    folder = Path(folder)
    (folder / 'color').mkdir(parents=True, exist_ok=True)
    (folder / 'depth').mkdir(exist_ok=True)
    write_camera_json(folder / 'camera.json', camera, depth_scale)
    stems, log = [], []
    for i, (color, depth, pose) in enumerate(frames):
        stem = f'{i:05d}'
        write_rgbd(folder / 'color' / f'{stem}.png', folder / 'depth' / f'{stem}.png', color, depth, depth_scale)
        log.append(f'{i} {i} {i + 1}')
        log += [' '.join(f'{v:.17g}' for v in row) for row in np.asarray(pose, np.float64)]
        stems.append(stem)
    (folder / 'trajectory.log').write_text('\n'.join(log) + '\n')
    return stems


def open_posed_sequence(frames: str | Path | None = None, tum: str | Path | None = None,
                        bag: str | Path | None = None, **bag_options) -> PosedSequence:
    """The posed frames of a Redwood-layout folder, a TUM sequence or a rosbag2 (exactly one of them).

    ``bag_options`` go to :class:`~vizion3d_ros.core.io.bag.BagSequence` (topics, frames). For the tools
    that take ``--frames``, ``--tum`` or ``--bag``.
    """
    if sum(x is not None for x in (frames, tum, bag)) != 1:
        raise ValueError('name exactly one of frames, tum and bag')
    if frames is not None:
        return PosedRGBDFolder(frames)
    if tum is not None:
        from .tum import TumSequence

        return TumSequence(tum)
    from .bag import BagSequence

    return BagSequence(bag, **bag_options)
