"""vizion3d-serve-rest: serve vizion3D's REST API (object-mask-annotation-3D) with vizion3d_ros.

Starts a FastAPI app on uvicorn in one process, so that the model is loaded once and shared by every
request. ``/health`` answers as soon as the server listens, ``/ready`` once the model is loaded; the
OpenAPI docs are at ``/docs``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..tools.cli import UsageError, run_command

PROG = 'vizion3d-serve-rest'


def build_parser() -> argparse.ArgumentParser:
    """The command line (vizion3D's flags, plus this server's own)."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument('--host', default='0.0.0.0', help='address to listen on (default 0.0.0.0: every interface)')
    p.add_argument('--port', type=int, default=8000, help='TCP port (default 8000)')
    p.add_argument('--object_mask_annotation_3d', '--object-mask-annotation-3d', action='store_true',
                   help='serve POST /annotation/object-mask-annotation-3d (without it the route answers 404)')
    p.add_argument('--annotation_model', '--annotation-model', default=None,
                   help="checkpoint path or URL, loaded at startup: the requests' default model (default: "
                        "vizion3D's release checkpoint, downloaded once into the cache)")
    p.add_argument('--device', default='auto', help='auto, cpu, cuda:0, ... (default auto: cuda > mps > cpu)')
    p.add_argument('--max-upload-mb', '--max_upload_mb', type=float, default=500.0,
                   help='largest request body in MB, with or without Content-Length (default 500)')
    p.add_argument('--max-points', type=int, default=20_000_000, help='largest cloud in points (default 20M)')
    p.add_argument('--max-image-mp', type=float, default=50.0, help='largest image in megapixels (default 50)')
    p.add_argument('--workers', type=int, default=2,
                   help='requests processed at once (default 2; the model itself runs one image at a time, the '
                        'decoding, lifting and encoding of the others alongside)')
    p.add_argument('--queue', type=int, default=32,
                   help='requests that may wait for a worker; beyond, 503 "busy" (default 32)')
    p.add_argument('--no-model-override', action='store_true',
                   help="refuse (403) requests whose model_backend names another model than the server's")
    p.add_argument('--log-level', default='info', choices=('critical', 'error', 'warning', 'info', 'debug'),
                   help='log level of the server and of uvicorn (default info)')
    return p


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (2 for unusable options)."""
    return run_command(PROG, build_parser(), run, argv)


def run(args: argparse.Namespace) -> int:
    """Check the options, build the app and serve until interrupted."""
    for name in ('max_upload_mb', 'max_points', 'max_image_mp', 'workers'):
        if getattr(args, name) <= 0:
            raise UsageError(f'--{name.replace("_", "-")} must be positive, got {getattr(args, name)}')
    if args.queue < 0:
        raise UsageError(f'--queue must be 0 or more, got {args.queue}')
    if not 0 < args.port < 65536:
        raise UsageError(f'--port must be in 1-65535, got {args.port}')
    # OpenCV's own decoder limit, read when it first decodes: no image format gets past the server's limit
    os.environ.setdefault('OPENCV_IO_MAX_IMAGE_PIXELS', str(int(args.max_image_mp * 1e6)))
    try:
        import uvicorn

        from .rest import create_app
    except ImportError as exc:
        raise UsageError(f'the REST server needs FastAPI, uvicorn and python-multipart ({exc}); '
                         "install them with: pip install 'vizion3d_ros[serve]'") from exc
    from .codec import MB, Limits
    from .service import AnnotationService

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    log = logging.getLogger('vizion3d.rest')
    service = None
    if args.object_mask_annotation_3d:
        service = AnnotationService(args.annotation_model, device=args.device,
                                    allow_model_override=not args.no_model_override, log=log.info)
        log.info('task object_mask_annotation_3d: POST /annotation/object-mask-annotation-3d (model %s)',
                 service.model)
    else:
        log.warning('no task enabled: POST /annotation/object-mask-annotation-3d answers 404; start with '
                    '--object_mask_annotation_3d to serve it')
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * MB), max_points=args.max_points,
                    max_image_pixels=int(args.max_image_mp * 1e6))
    app = create_app(service, limits=limits, workers=args.workers, queue=args.queue)
    log.info('listening on http://%s:%d (docs at /docs; %d workers, queue %d, uploads up to %g MB)',
             args.host, args.port, args.workers, args.queue, args.max_upload_mb)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_keep_alive=30)
    return 0
