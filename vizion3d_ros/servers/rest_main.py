"""vizion3d-serve-rest: serve vizion3D's REST API (object-mask-annotation-3D) with vizion3d_ros.

Starts a FastAPI app on uvicorn in one process, so that the model is loaded once and shared by every
request. ``/health`` answers as soon as the server listens, ``/ready`` once the model is loaded; the
OpenAPI docs are at ``/docs``.
"""
from __future__ import annotations

import argparse

from ..tools.cli import run_command
from .serve_cli import add_server_arguments, check_arguments, make_limits, make_service, missing_packages, start_logging

PROG = 'vizion3d-serve-rest'


def build_parser() -> argparse.ArgumentParser:
    """The command line (vizion3D's flags, plus this server's own)."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_server_arguments(p, 8000, task_help='serve POST /annotation/object-mask-annotation-3d (without it the '
                                            'route answers 404)',
                         size_flag='--max-upload-mb', busy='503', forbidden='403',
                         size_help='largest request body in MB, with or without Content-Length (default 500)')
    return p


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (2 for unusable options)."""
    return run_command(PROG, build_parser(), run, argv)


def run(args: argparse.Namespace) -> int:
    """Check the options, build the app and serve until interrupted."""
    check_arguments(args, positive=('max_upload_mb',))
    try:
        import uvicorn

        from .rest import create_app
    except ImportError as exc:
        raise missing_packages('REST', 'FastAPI, uvicorn and python-multipart', exc) from exc
    from .codec import MB

    log = start_logging(args, 'vizion3d.rest')
    service = None
    if args.object_mask_annotation_3d:
        service = make_service(args, log.info)
        log.info('task object_mask_annotation_3d: POST /annotation/object-mask-annotation-3d (model %s)',
                 service.model)
    else:
        log.warning('no task enabled: POST /annotation/object-mask-annotation-3d answers 404; start with '
                    '--object_mask_annotation_3d to serve it')
    limits = make_limits(args, int(args.max_upload_mb * MB))
    app = create_app(service, limits=limits, workers=args.workers, queue=args.queue)
    log.info('listening on http://%s:%d (docs at /docs; %d workers, queue %d, uploads up to %g MB)',
             args.host, args.port, args.workers, args.queue, args.max_upload_mb)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_keep_alive=30)
    return 0
