"""vizion3D-compatible gRPC server: ``vizion3d.lifting.LiftingService/RunObjectMaskAnnotation3D``, health, reflection.

The servicer takes vizion3D's request message and answers its response message (``proto/lifting.proto``), so
vizion3D's gRPC clients work unchanged. Like the REST server it is a thin layer: :mod:`.codec` decodes and
checks the request and encodes the result, :mod:`.service` runs the task with the model kept loaded.

Every problem is answered with a status code and a details string that says what is wrong, never UNKNOWN:
the codec's errors carry their code (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, PERMISSION_DENIED);
messages over ``--max-message-mb`` are refused by gRPC itself with RESOURCE_EXHAUSTED. At most ``workers``
requests do heavy work at once and ``queue`` more wait (then UNAVAILABLE "busy"); a request whose client
has cancelled or whose deadline has passed is dropped before its heavy part starts (DEADLINE_EXCEEDED). The
standard health service says SERVING once the model is loaded, NOT_SERVING before and while it is
unavailable; server reflection lists the services.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .codec import (
    MB,
    AnnotationOptions,
    BusyError,
    EncodedResult,
    Limits,
    PayloadTooLargeError,
    RequestError,
    decode_image,
    decode_point_cloud,
)
from .proto import lifting_pb2 as pb
from .proto import lifting_pb2_grpc as pb_grpc
from .service import AnnotationService

SERVICE = pb.DESCRIPTOR.services_by_name['LiftingService'].full_name  # vizion3d.lifting.LiftingService
METHOD = f'/{SERVICE}/RunObjectMaskAnnotation3D'
#: gRPC's own limit on a message: 2 GiB - 1 (a signed 32-bit length).
MAX_MESSAGE_BYTES = (1 << 31) - 1

logger = logging.getLogger('vizion3d.grpc')


class DeadlineError(RequestError):
    """The client's deadline passed before the request was served."""

    http_status = 504
    grpc_code = 'DEADLINE_EXCEEDED'


class _CancelledError(Exception):
    """The client cancelled the call (or went away): nobody waits for the answer."""


def check_alive(context: grpc.ServicerContext) -> None:
    """Raise :class:`DeadlineError` when the call's deadline has passed, :class:`_CancelledError` when it is over."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineError('the deadline of the call passed before the request was served')
    if not context.is_active():
        raise _CancelledError


class Gate:
    """At most ``workers`` requests doing heavy work at once and ``queue`` waiting; waiters whose call ends leave."""

    def __init__(self, workers: int, queue: int, poll_s: float = 0.25) -> None:
        self.workers = max(1, int(workers))
        self.queue = max(0, int(queue))
        self.poll_s = poll_s
        self.running = 0
        self.waiting = 0
        self._cond = threading.Condition()

    @contextmanager
    def slot(self, context: grpc.ServicerContext) -> Iterator[None]:
        """Wait for a turn (:class:`~.codec.BusyError` when the queue is full)."""
        self._enter(context)
        try:
            yield
        finally:
            with self._cond:
                self.running -= 1
                self._cond.notify()

    def _enter(self, context: grpc.ServicerContext) -> None:
        with self._cond:
            if self.running >= self.workers and self.waiting >= self.queue:
                raise BusyError(self.running, self.waiting)
            self.waiting += 1
            try:
                while self.running >= self.workers:
                    self._cond.wait(self.poll_s)
                    check_alive(context)
            finally:
                self.waiting -= 1
            self.running += 1


def request_options(request: pb.ObjectMaskAnnotation3DRequest) -> AnnotationOptions:
    """The request's options, checked (:class:`~.codec.InvalidFieldError`); unset optional fields are None."""
    config = request.advanced_config if request.HasField('advanced_config') else None

    def given(message, name: str):
        return getattr(message, name) if message is not None and message.HasField(name) else None

    return AnnotationOptions(
        model_backend=request.model_backend, return_object_clouds=request.return_object_clouds,
        return_annotated_cloud=request.return_annotated_cloud,
        **{name: given(config, name) for name in ('fx', 'fy', 'cx', 'cy', 'conf_threshold', 'iou_threshold')},
        **{name: given(request, name) for name in ('lift_mode', 'classes', 'imgsz', 'cloud_frame')})


def response_message(result: EncodedResult) -> pb.ObjectMaskAnnotation3DResponse:
    """vizion3D's response message of a result (empty bytes where REST sends null)."""
    out = pb.ObjectMaskAnnotation3DResponse(annotated_cloud_ply=result.annotated_cloud_ply or b'',
                                            backend_used=result.backend_used)
    for a in result.annotations:
        item = out.annotations.add(label=a.label, class_id=a.class_id, confidence=a.confidence, bbox_2d=a.bbox_2d,
                                   mask_image=a.mask_png, point_indices=a.point_indices.tolist(),
                                   object_cloud_ply=a.object_cloud_ply or b'')
        item.point_coords.extend(pb.FloatRow(values=row) for row in a.point_coords.tolist())
    return out


def _metadata(result: EncodedResult, timings: dict[str, float]) -> tuple[tuple[str, str], ...]:
    """Trailing metadata for what vizion3D's response has no field for: timings, the synthesised view, warnings."""
    out = [('server-timing', ', '.join(f'{k};dur={v:.1f}' for k, v in timings.items())),
           ('x-vizion3d-synthesized-image', 'true' if result.synthesized_image else 'false')]
    if result.warnings:
        text = ' | '.join(' '.join(w.split()) for w in result.warnings)
        out.append(('x-vizion3d-warnings', text.encode('ascii', 'replace').decode('ascii')[:2000]))
    return tuple(out)


class LiftingServicer(pb_grpc.LiftingServiceServicer):
    """``RunObjectMaskAnnotation3D`` over an :class:`~.service.AnnotationService`; keeps the health status."""

    def __init__(self, service: AnnotationService, limits: Limits, gate: Gate,
                 health_servicer: health.HealthServicer | None = None,
                 max_send_bytes: int = 500 * MB) -> None:
        self.service = service
        self.limits = limits
        self.gate = gate
        self.health = health_servicer
        self.max_send_bytes = max_send_bytes
        self.update_health()

    def update_health(self) -> None:
        """SERVING while the server's model is loaded, NOT_SERVING otherwise (for '' and the service's name)."""
        if self.health is None:
            return
        status = health_pb2.HealthCheckResponse.SERVING if self.service.ready \
            else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ('', SERVICE):
            self.health.set(name, status)

    def load(self) -> None:
        """Load the server's model (at startup, in a thread), then say so in the health status."""
        self.service.load()
        self.update_health()

    def RunObjectMaskAnnotation3D(self, request, context):  # noqa: N802 (the name is the proto's)
        """Segment the image (or a view rendered from the cloud) and lift every object onto the cloud."""
        try:
            return self._run(request, context)
        except _CancelledError:
            logger.info('the client cancelled its call before it was served; dropped')
            return pb.ObjectMaskAnnotation3DResponse()
        except RequestError as exc:
            code, details = getattr(grpc.StatusCode, exc.grpc_code, grpc.StatusCode.INVALID_ARGUMENT), str(exc)
        except Exception as exc:  # a bug, not bad input: say so rather than UNKNOWN, and keep serving
            logger.exception('internal error in %s', METHOD)
            code, details = grpc.StatusCode.INTERNAL, f'internal error ({type(exc).__name__}): {exc}'
        finally:
            self.update_health()
        context.abort(code, details)

    def run_serialized(self, data: bytes, context: grpc.ServicerContext) -> pb.ObjectMaskAnnotation3DResponse:
        """The method as served: decode the request here, so that bytes that are not one are INVALID_ARGUMENT."""
        try:
            request = pb.ObjectMaskAnnotation3DRequest.FromString(data)
        except DecodeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f'the request is not a valid {pb.ObjectMaskAnnotation3DRequest.DESCRIPTOR.full_name} message '
                          f'({exc})')
        return self.RunObjectMaskAnnotation3D(request, context)

    def _run(self, request: pb.ObjectMaskAnnotation3DRequest,
             context: grpc.ServicerContext) -> pb.ObjectMaskAnnotation3DResponse:
        options = request_options(request)
        check_alive(context)
        with self.gate.slot(context):
            t0 = time.perf_counter()
            cloud = decode_point_cloud(request.point_cloud_ply, self.limits)
            image = decode_image(request.image_bytes, self.limits, name='image_bytes')
            t1 = time.perf_counter()
            check_alive(context)
            result = self.service.annotate(cloud, image, options)
            t2 = time.perf_counter()
            check_alive(context)
            response = response_message(result)
            t3 = time.perf_counter()
        size = response.ByteSize()
        if size > self.max_send_bytes:
            raise PayloadTooLargeError(
                f'the response ({size / MB:.1f} MB) is over this server\'s message limit of '
                f'{self.max_send_bytes / MB:.1f} MB (--max-message-mb); ask for fewer clouds '
                '(return_annotated_cloud, return_object_clouds) or start the server with a larger limit')
        timings = {'decode': (t1 - t0) * 1e3, **result.timings_ms, 'annotate': (t2 - t1) * 1e3,
                   'encode': (t3 - t2) * 1e3}
        context.set_trailing_metadata(_metadata(result, timings))
        return response


def create_server(service: AnnotationService, limits: Limits | None = None, workers: int = 2, queue: int = 32,
                  max_message_bytes: int = 500 * MB) -> tuple[grpc.Server, LiftingServicer]:
    """A gRPC server (not started, no port yet) with the lifting, health and reflection services."""
    limits = limits or Limits(max_upload_bytes=max_message_bytes)
    gate = Gate(workers, queue)
    size = min(int(max_message_bytes), MAX_MESSAGE_BYTES)
    # threads for every running and waiting request and a few more, so that a full server still answers
    # health checks and "busy" at once
    pool = futures.ThreadPoolExecutor(max_workers=gate.workers + gate.queue + 4, thread_name_prefix='vizion3d-grpc')
    server = grpc.server(pool, options=[('grpc.max_receive_message_length', size),
                                        ('grpc.max_send_message_length', size)])
    health_servicer = health.HealthServicer()
    servicer = LiftingServicer(service, limits, gate, health_servicer, max_send_bytes=size)
    method = grpc.unary_unary_rpc_method_handler(
        servicer.run_serialized, response_serializer=pb.ObjectMaskAnnotation3DResponse.SerializeToString)
    handlers = grpc.method_handlers_generic_handler(SERVICE, {'RunObjectMaskAnnotation3D': method})
    server.add_generic_rpc_handlers((handlers,))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    return server, servicer
