"""What the command-line tools share: one-line errors with exit code 2, and progress messages on stderr."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

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
