"""vizion3D-compatible REST server (FastAPI): ``POST /annotation/object-mask-annotation-3d``, health checks.

The route takes vizion3D's multipart form and answers its JSON, so vizion3D clients work unchanged. The
layer is thin: :mod:`.codec` decodes and checks the uploads and encodes the result, :mod:`.service` runs
the task with the model kept loaded. Heavy work runs in worker threads, at most ``workers`` requests at a
time and ``queue`` more waiting (then 503 "busy"); a request whose client has gone is dropped before its
heavy part starts. Every error is JSON ``{"detail": "..."}`` with the status of :mod:`.codec`'s errors.
"""
from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .codec import (
    MB,
    AnnotationOptions,
    BusyError,
    EncodedResult,
    Limits,
    RequestError,
    decode_image,
    decode_point_cloud,
)
from .service import AnnotationService

ROUTE = '/annotation/object-mask-annotation-3d'
TASK = 'object_mask_annotation_3d'
#: Status of a request whose client disconnected before it was served (nginx's convention; never sent).
CLIENT_CLOSED = 499

logger = logging.getLogger('vizion3d.rest')


# --------------------------------------------------------------------------------------------------
# Response documents (for the OpenAPI docs; responses are built as JSON directly)


class Annotation(BaseModel):
    """One detected object."""

    label: str = Field(description='class name, e.g. "chair"')
    class_id: int = Field(description='class index of the model (-1 when it has none)')
    confidence: float = Field(description='detection confidence in [0, 1]')
    bbox_2d: list[float] = Field(description='[x1, y1, x2, y2] box in pixels of the segmented image')
    mask_image: str = Field(description='base64 PNG, 8-bit grey, 255 = object, 0 = background, image size')
    point_indices: list[int] = Field(description="indices of the object's points in the uploaded cloud's order")
    point_coords: list[list[float]] = Field(description='[x, y, z] of those points, in the uploaded coordinates')
    object_cloud_ply: str | None = Field(description='base64 binary PLY (float x y z, uchar red green blue) of '
                                                     'the object\'s points, or null unless return_object_clouds')


class AnnotationResponse(BaseModel):
    """Annotations by descending confidence, the annotated cloud and the model that made them."""

    annotations: list[Annotation]
    annotated_cloud_ply: str | None = Field(description='base64 binary PLY of every uploaded point in its order, '
                                                        'objects in their instance colours; null unless '
                                                        'return_annotated_cloud')
    backend_used: str = Field(description='the checkpoint that segmented the image')


class ErrorResponse(BaseModel):
    """What is wrong with the request."""

    detail: str


_ERRORS = {
    400: 'unreadable PLY or image, empty cloud, impossible intrinsics',
    403: 'model_backend given to a server started with --no-model-override',
    413: 'body, cloud or image over the server\'s limits',
    415: 'point_cloud_ply is not a PLY, or image is not an image',
    422: 'missing, empty, ill-typed or out-of-range field',
    503: 'the model is unavailable (the reason is given) or the server is busy',
}


# --------------------------------------------------------------------------------------------------
# Body limit


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive``: FastAPI passes HTTP exceptions of body reading on as they are."""


class BodyLimit:
    """ASGI middleware: JSON 413 for bodies over ``limits.max_upload_bytes``.

    Declared sizes (Content-Length) are refused before the body is read; chunked bodies are counted while
    they stream in. Up to ``drain_bytes`` of the rest are read and discarded first, so that clients that
    send their whole body before reading the answer (most do) get the 413 rather than a broken pipe;
    clients that wait for ``100 Continue`` are answered at once.
    """

    def __init__(self, app: ASGIApp, limits: Limits, drain_bytes: int | None = None) -> None:
        self.app = app
        self.limits = limits
        self.drain_bytes = max(limits.max_upload_bytes, 16 * MB) if drain_bytes is None else drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get('headers') or ())
        limit = self.limits.max_upload_bytes
        declared = _int(headers.get(b'content-length'))
        if declared is not None and declared > limit:
            if declared <= limit + self.drain_bytes and b'100-continue' not in headers.get(b'expect', b'').lower():
                await _drain(receive, declared)
            await _reply(scope, receive, send, 413, str(self.limits.upload_error(declared)))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message['type'] == 'http.request':
                seen += len(message.get('body', b''))
                if seen > limit:
                    if message.get('more_body'):
                        await _drain(receive, self.drain_bytes)
                    raise _BodyTooLarge(413, str(self.limits.upload_error(None)))
            return message

        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message['type'] == 'http.response.start'
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _BodyTooLarge as exc:
            if started:
                raise
            await _reply(scope, receive, send, 413, str(exc.detail))


def _int(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def _drain(receive: Receive, budget: int) -> None:
    while budget > 0:
        message = await receive()
        if message['type'] != 'http.request':
            return
        budget -= len(message.get('body', b''))
        if not message.get('more_body'):
            return


async def _reply(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    await JSONResponse({'detail': detail}, status_code=status, headers={'Connection': 'close'})(scope, receive, send)


# --------------------------------------------------------------------------------------------------
# Concurrency


class _ClientGoneError(Exception):
    pass


class Gate:
    """At most ``workers`` requests doing heavy work at once and ``queue`` waiting for a turn."""

    def __init__(self, workers: int, queue: int) -> None:
        self.workers = max(1, int(workers))
        self.queue = max(0, int(queue))
        self.running = 0
        self.waiting = 0
        self._sem: anyio.Semaphore | None = None

    @asynccontextmanager
    async def slot(self, request: Request) -> AsyncIterator[None]:
        """Wait for a turn; a request whose client disconnects while it waits leaves the queue."""
        if self._sem is None:
            self._sem = anyio.Semaphore(self.workers)
        if self.running >= self.workers and self.waiting >= self.queue:
            raise BusyError(self.running, self.waiting)
        self.waiting += 1
        try:
            while True:
                with anyio.move_on_after(0.5):
                    await self._sem.acquire()
                    break
                if await request.is_disconnected():
                    raise _ClientGoneError
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._sem.release()


# --------------------------------------------------------------------------------------------------
# The app


def create_app(service: AnnotationService | None, limits: Limits | None = None, workers: int = 2, queue: int = 32,
               load_model: bool = True) -> FastAPI:
    """The FastAPI app; ``service`` None leaves the task disabled (its route answers 404 and says why).

    With ``load_model`` the service's model is loaded in a background thread at startup: ``/health``
    answers at once, ``/ready`` once the model is there.
    """
    limits = limits or Limits()
    gate = Gate(workers, queue)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if service is not None and load_model:
            threading.Thread(target=service.load, name='vizion3d-model-load', daemon=True).start()
        yield

    app = FastAPI(title='vizion3d_ros REST server', version='1.0',
                  description='vizion3D-compatible object-mask-annotation-3D over HTTP: the same route, form '
                              'fields and JSON as vizion3D, served by vizion3d_ros.', lifespan=lifespan)
    app.add_middleware(BodyLimit, limits=limits)
    app.state.gate = gate
    app.state.service = service
    _add_error_handlers(app)

    @app.get('/health', summary='Liveness: the server answers')
    async def health() -> dict:
        return {'status': 'ok', 'tasks': [TASK] if service is not None else [], 'running': gate.running,
                'waiting': gate.waiting}

    @app.get('/ready', summary='Readiness: the model is loaded', responses={503: {'model': ErrorResponse}})
    async def ready() -> JSONResponse:
        if service is None:
            return JSONResponse({'ready': False, 'detail': 'no task is enabled: start the server with '
                                                           '--object_mask_annotation_3d'}, status_code=503)
        status = service.status()
        if not status['ready']:
            return JSONResponse({**status, 'detail': status['reason']}, status_code=503)
        return JSONResponse({**status, 'tasks': [TASK], 'workers': gate.workers, 'queue': gate.queue})

    if service is None:
        @app.api_route(ROUTE, methods=['GET', 'POST', 'PUT', 'DELETE', 'PATCH'], include_in_schema=False)
        async def disabled() -> JSONResponse:
            return JSONResponse({'detail': f'{ROUTE} is not served: the {TASK} task is not enabled on this server '
                                           '(start it with --object_mask_annotation_3d)'}, status_code=404)
        return app

    @app.post(ROUTE, response_model=None, summary='Segment objects in 2D and lift each onto the point cloud',
              responses={200: {'model': AnnotationResponse}}
              | {code: {'model': ErrorResponse, 'description': text} for code, text in _ERRORS.items()})
    async def object_mask_annotation_3d(
            request: Request,
            point_cloud_ply: Annotated[UploadFile, File(
                description='the point cloud, a PLY file (ASCII or binary; x y z and optional red green blue), in '
                            'OpenGL/viewer camera space (X right, Y up, camera looking down -Z) unless cloud_frame '
                            'says otherwise. Points with NaN coordinates are kept, never part of an object')],
            image: Annotated[UploadFile | None, File(
                description='the image to segment (PNG, JPEG, BMP, TIFF, WebP, ...); omitted or empty: a front '
                            'view rendered from the cloud is segmented')] = None,
            model_backend: Annotated[str | None, Form(
                description="checkpoint path or URL to use instead of the server's model (--annotation_model); "
                            'empty: the server\'s model')] = None,
            return_object_clouds: Annotated[bool, Form(
                description="true: each annotation's object_cloud_ply is its points as a PLY")] = False,
            return_annotated_cloud: Annotated[bool, Form(
                description='true: annotated_cloud_ply is the whole cloud with objects painted')] = False,
            fx: Annotated[float | None, Form(description='focal length in pixels, > 0 (default: 0.85 x image width; '
                                                         'without an image, fitted to the cloud)')] = None,
            fy: Annotated[float | None, Form(description='focal length in pixels, > 0 (default: fx)')] = None,
            cx: Annotated[float | None, Form(description='principal point x in pixels (default: width / 2)')] = None,
            cy: Annotated[float | None, Form(description='principal point y in pixels (default: height / 2)')] = None,
            conf_threshold: Annotated[float | None, Form(
                description='minimum detection confidence in [0, 1] (default 0.25)')] = None,
            iou_threshold: Annotated[float | None, Form(
                description='non-maximum-suppression IoU threshold in [0, 1] (default 0.45)')] = None,
            lift_mode: Annotated[str | None, Form(
                description='extra: how masks become points, visible (default: occlusion-aware), exclusive or '
                            'naive (every point projecting into the mask)')] = None,
            classes: Annotated[str | None, Form(
                description="extra: keep only these classes, names or ids, e.g. 'chair, person' or '56'")] = None,
            imgsz: Annotated[int | None, Form(description='extra: model inference size in pixels, 32-4096 '
                                                          '(default 640)')] = None,
            cloud_frame: Annotated[str | None, Form(
                description='extra: opengl (default, vizion3D) or optical (ROS: X right, Y down, Z forward)')] = None,
    ) -> Response:
        options = AnnotationOptions(
            model_backend=model_backend, return_object_clouds=return_object_clouds,
            return_annotated_cloud=return_annotated_cloud, fx=fx, fy=fy, cx=cx, cy=cy, conf_threshold=conf_threshold,
            iou_threshold=iou_threshold, lift_mode=lift_mode, classes=classes, imgsz=imgsz, cloud_frame=cloud_frame)
        try:
            async with gate.slot(request):
                t0 = time.perf_counter()
                cloud_bytes = await point_cloud_ply.read()
                image_bytes = await image.read() if image is not None else None
                cloud, rgb = await anyio.to_thread.run_sync(_decode, cloud_bytes, image_bytes, limits)
                del cloud_bytes, image_bytes
                t1 = time.perf_counter()
                if await request.is_disconnected():
                    raise _ClientGoneError
                result = await anyio.to_thread.run_sync(service.annotate, cloud, rgb, options)
                t2 = time.perf_counter()
                body = await anyio.to_thread.run_sync(response_json, result)
                t3 = time.perf_counter()
        except _ClientGoneError:
            logger.info('client disconnected before its request was served; dropped')
            return Response(status_code=CLIENT_CLOSED)
        timings = {'decode': (t1 - t0) * 1e3, **result.timings_ms, 'annotate': (t2 - t1) * 1e3,
                   'encode': (t3 - t2) * 1e3}
        return Response(body, media_type='application/json', headers=_headers(result, timings))

    return app


def _decode(cloud_bytes: bytes, image_bytes: bytes | None, limits: Limits) -> tuple[Any, Any]:
    return decode_point_cloud(cloud_bytes, limits), decode_image(image_bytes, limits)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode('ascii')


def response_json(result: EncodedResult) -> bytes:
    """vizion3D's JSON response body of a result."""
    payload = {
        'annotations': [{
            'label': a.label, 'class_id': a.class_id, 'confidence': a.confidence, 'bbox_2d': a.bbox_2d,
            'mask_image': _b64(a.mask_png), 'point_indices': a.point_indices.tolist(),
            'point_coords': a.point_coords.tolist(), 'object_cloud_ply': _b64(a.object_cloud_ply)}
            for a in result.annotations],
        'annotated_cloud_ply': _b64(result.annotated_cloud_ply),
        'backend_used': result.backend_used,
    }
    return json.dumps(payload, separators=(',', ':'), allow_nan=False).encode()


def _headers(result: EncodedResult, timings: dict[str, float]) -> dict[str, str]:
    """Extras that vizion3D's JSON has no field for: stage timings, the synthesised view, warnings."""
    headers = {'Server-Timing': ', '.join(f'{k};dur={v:.1f}' for k, v in timings.items()),
               'X-Vizion3D-Synthesized-Image': 'true' if result.synthesized_image else 'false'}
    if result.warnings:
        text = ' | '.join(' '.join(w.split()) for w in result.warnings)
        headers['X-Vizion3D-Warnings'] = text.encode('ascii', 'replace').decode('ascii')[:2000]
    return headers


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(_request: Request, exc: RequestError) -> JSONResponse:
        headers = {'Retry-After': '1'} if isinstance(exc, BusyError) else None
        return JSONResponse({'detail': str(exc)}, status_code=exc.http_status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get('Allow', '')
            detail = f'{request.method} is not allowed on {request.url.path}; it accepts {allowed}'
        elif exc.status_code == 404 and detail == 'Not Found':
            detail = f'{request.url.path} does not exist; see /docs for the routes'
        return JSONResponse({'detail': detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_plain_error(e) for e in exc.errors()]
        return JSONResponse({'detail': '; '.join(e['text'] for e in errors),
                             'errors': [{k: v for k, v in e.items() if k != 'text'} for e in errors]},
                            status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception('internal error on %s %s', request.method, request.url.path)
        return JSONResponse({'detail': f'internal error ({type(exc).__name__}): {exc}'}, status_code=500)


def _plain_error(error: dict) -> dict:
    loc = [str(p) for p in error.get('loc', ()) if p not in ('body', 'query', 'path', 'header')]
    name = '.'.join(loc) or 'request'
    msg = str(error.get('msg', 'invalid value'))
    value = error.get('input')
    out = {'loc': loc, 'msg': msg, 'type': str(error.get('type', ''))}
    shown = ''
    if error.get('type') != 'missing' and isinstance(value, (str, int, float, bool)):
        out['input'] = value
        shown = f' (got {value!r})'
    if 'Expected UploadFile' in msg:
        msg = 'must be a file (a multipart part with a filename), not a text field'
    if error.get('type') == 'missing':
        msg = 'field required' + (' (a PLY file)' if name == 'point_cloud_ply' else '')
    out['text'] = f'{name}: {msg}{shown}'
    return out
