"""What the ``vizion3d-serve-rest`` and ``vizion3d-serve-grpc`` command lines share: flags, checks, the service."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from ..tools.cli import UsageError

LOG_LEVELS = ('critical', 'error', 'warning', 'info', 'debug')


def add_server_arguments(p: argparse.ArgumentParser, port: int, task_help: str, size_flag: str, size_help: str,
                         busy: str, forbidden: str) -> None:
    """Every flag: vizion3D's (``--host``, ``--port``, the task, ``--annotation_model``) and the servers' own.

    ``size_flag`` is the server's limit on a whole request in MB (default 500); ``busy`` and ``forbidden``
    name the answers to a full queue and to a refused ``model_backend``.
    """
    p.add_argument('--host', default='0.0.0.0', help='address to listen on (default 0.0.0.0: every interface)')
    p.add_argument('--port', type=int, default=port, help=f'TCP port (default {port})')
    p.add_argument('--object_mask_annotation_3d', '--object-mask-annotation-3d', action='store_true', help=task_help)
    p.add_argument('--annotation_model', '--annotation-model', default=None,
                   help="checkpoint path or URL, loaded at startup: the requests' default model (default: "
                        "vizion3D's release checkpoint, downloaded once into the cache)")
    p.add_argument('--device', default='auto', help='auto, cpu, cuda:0, ... (default auto: cuda > mps > cpu)')
    p.add_argument(size_flag, size_flag.replace('-', '_').replace('__', '--'), type=float, default=500.0,
                   help=size_help)
    p.add_argument('--max-points', type=int, default=20_000_000, help='largest cloud in points (default 20M)')
    p.add_argument('--max-image-mp', type=float, default=50.0, help='largest image in megapixels (default 50)')
    p.add_argument('--workers', type=int, default=2,
                   help='requests processed at once (default 2; the model itself runs one image at a time, the '
                        'decoding, lifting and encoding of the others alongside)')
    p.add_argument('--queue', type=int, default=32,
                   help=f'requests that may wait for a worker; beyond, {busy} "busy" (default 32)')
    p.add_argument('--no-model-override', action='store_true',
                   help=f"refuse ({forbidden}) requests whose model_backend names another model than the server's")
    p.add_argument('--log-level', default='info', choices=LOG_LEVELS, help='log level (default info)')


def missing_packages(server: str, packages: str, exc: ImportError) -> UsageError:
    """The error for a server whose optional packages are not installed."""
    return UsageError(f"the {server} server needs {packages} ({exc}); install them with: "
                      "pip install 'vizion3d_ros[serve]'")


def check_arguments(args: argparse.Namespace, positive: tuple[str, ...]) -> None:
    """Raise :class:`UsageError` for options no server can run with; cap OpenCV's image decoder."""
    for name in (*positive, 'max_points', 'max_image_mp', 'workers'):
        if getattr(args, name) <= 0:
            raise UsageError(f'--{name.replace("_", "-")} must be positive, got {getattr(args, name)}')
    if args.queue < 0:
        raise UsageError(f'--queue must be 0 or more, got {args.queue}')
    if not 0 < args.port < 65536:
        raise UsageError(f'--port must be in 1-65535, got {args.port}')
    # OpenCV's own decoder limit, read when it first decodes: no image format gets past the server's limit
    os.environ.setdefault('OPENCV_IO_MAX_IMAGE_PIXELS', str(int(args.max_image_mp * 1e6)))


def start_logging(args: argparse.Namespace, name: str) -> logging.Logger:
    """Log to stderr at ``--log-level``; the server's logger."""
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    return logging.getLogger(name)


def make_service(args: argparse.Namespace, log: Callable[[str], None]):
    """The :class:`~.service.AnnotationService` of the command line."""
    from .service import AnnotationService

    return AnnotationService(args.annotation_model, device=args.device,
                             allow_model_override=not args.no_model_override, log=log)


def make_limits(args: argparse.Namespace, max_bytes: int):
    """The :class:`~.codec.Limits` of the command line, with ``max_bytes`` for a whole request."""
    from .codec import Limits

    return Limits(max_upload_bytes=max_bytes, max_points=args.max_points,
                  max_image_pixels=int(args.max_image_mp * 1e6))
