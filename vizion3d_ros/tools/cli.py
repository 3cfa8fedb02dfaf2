"""What the command-line tools share: one-line errors with exit code 2, and progress messages on stderr."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core.segmentation.models import DEFAULT_MODEL_URL, ModelUnavailableError


class UsageError(Exception):
    """A problem with the user's inputs that stops the run: reported on one line, exit code 2."""


def run_command(prog: str, parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int],
                argv: list[str] | None = None) -> int:
    """Parse ``argv`` and call ``run``; bad inputs become ``PROG: error: ...`` on one line and exit code 2.

    Bad inputs are :class:`UsageError` and what the readers raise for unusable files: size mismatches,
    mask formats and intrinsics errors are ValueErrors, missing files OSErrors, a missing model
    :class:`ModelUnavailableError`.
    """
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (UsageError, FileNotFoundError, ValueError, OSError, ImportError, ModelUnavailableError) as exc:
        print(f'{prog}: error: {" ".join(str(exc).split())}', file=sys.stderr)
        return 2


def log(message: str) -> None:
    """A progress message on stderr (stdout keeps the results table)."""
    print(message, file=sys.stderr, flush=True)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The segmentation model's options, the same in every tool (and named as the node's parameters are)."""
    p.add_argument('--model', default=None, help=f'checkpoint path or URL (default: {DEFAULT_MODEL_URL}, cached)')
    p.add_argument('--conf', type=float, default=0.25, help='minimum detection confidence (default 0.25)')
    p.add_argument('--iou', type=float, default=0.45, help='NMS IoU threshold (default 0.45)')
    p.add_argument('--imgsz', type=int, default=640, help='model inference size (default 640)')
    p.add_argument('--classes', default=None, help="keep only these classes, e.g. 'chair,person' or '56'")
    p.add_argument('--device', default='auto', help='auto, cpu, cuda:0, ... (default auto)')


def read_cloud(path: str, flag: str = '--cloud') -> tuple[np.ndarray, np.ndarray | None]:
    """Points (float64, file order, NaNs kept) and uint8 colours (None when the file has none); ``flag`` names it."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f'{flag} file {path!r} does not exist')
    log(f'loading cloud {p.name}')
    try:
        import open3d as o3d
    except ImportError as exc:
        raise UsageError('reading clouds needs Open3D (pip install open3d)') from exc
    pcd = o3d.io.read_point_cloud(str(p), remove_nan_points=False, remove_infinite_points=False)
    points = np.asarray(pcd.points, dtype=np.float64)
    if len(points) == 0:
        raise UsageError(f'{flag} file {path!r} holds no points or is not a point cloud Open3D can read '
                         f'(.ply, .pcd)')
    colors = None
    if pcd.has_colors():
        colors = np.clip(np.round(np.asarray(pcd.colors) * 255.0), 0, 255).astype(np.uint8)
    log(f'{len(points)} points' + (' with colours' if colors is not None else ' (no colours)'))
    return points, colors
