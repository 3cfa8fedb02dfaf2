"""vizion3d-serve-grpc: serve vizion3D's gRPC API (vizion3d.lifting.LiftingService) with vizion3d_ros.

One process, the model loaded once and shared by every call. The standard gRPC health service answers as
soon as the server listens: NOT_SERVING until the model is loaded, then SERVING. Server reflection lists the
services (grpcurl, grpcui and Postman need no .proto).
"""
from __future__ import annotations

import argparse
import signal
import threading

from ..tools.cli import UsageError, run_command
from .serve_cli import add_server_arguments, check_arguments, make_limits, make_service, missing_packages, start_logging

PROG = 'vizion3d-serve-grpc'


def build_parser() -> argparse.ArgumentParser:
    """The command line (vizion3D's flags, plus this server's own)."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_server_arguments(p, 50051, task_help="accepted for vizion3D's command lines; the task is always served "
                                             "(it is the service's only method)",
                         size_flag='--max-message-mb', busy='UNAVAILABLE', forbidden='PERMISSION_DENIED',
                         size_help='largest request and response message in MB (default 500; at most 2047)')
    return p


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (2 for unusable options)."""
    return run_command(PROG, build_parser(), run, argv)


def run(args: argparse.Namespace) -> int:
    """Check the options, start the server and serve until interrupted (SIGINT, SIGTERM)."""
    check_arguments(args, positive=('max_message_mb',))
    try:
        from .grpc_server import MAX_MESSAGE_BYTES, METHOD, create_server
    except ImportError as exc:
        raise missing_packages('gRPC', 'grpcio, grpcio-health-checking and grpcio-reflection', exc) from exc
    from .codec import MB

    max_bytes = int(args.max_message_mb * MB)
    if max_bytes > MAX_MESSAGE_BYTES:
        raise UsageError(f'--max-message-mb must be at most {MAX_MESSAGE_BYTES // MB} (gRPC\'s limit), '
                         f'got {args.max_message_mb:g}')
    log = start_logging(args, 'vizion3d.grpc')
    service = make_service(args, log.info)
    server, servicer = create_server(service, limits=make_limits(args, max_bytes), workers=args.workers,
                                     queue=args.queue, max_message_bytes=max_bytes)
    address = f'{args.host}:{args.port}'
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise UsageError(f'cannot listen on {address}: {exc}') from None
    if port == 0:
        raise UsageError(f'cannot listen on {address} (in use, or not an address of this machine)')
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    log.info('listening on %s: %s (model %s; %d workers, queue %d, messages up to %g MB); health and reflection '
             'served', address, METHOD, service.model, args.workers, args.queue, args.max_message_mb)
    threading.Thread(target=servicer.load, name='vizion3d-model-load', daemon=True).start()
    while not stop.wait(1.0):
        pass
    log.info('stopping')
    server.stop(grace=5).wait()
    return 0
