"""The object-mask-annotation-3D task as a server runs it: one model kept loaded, many requests at once.

:class:`AnnotationService` is what the REST and gRPC servers call, from worker threads: it resolves and
loads the server's model once (``load``, at startup), answers readiness, and runs one request with the
Python API (:class:`~vizion3d_ros.core.api.ObjectMaskAnnotation3D`), turning what the API raises into the
:mod:`.codec` request errors. Ultralytics' predictor is not thread-safe, so calls into one model run one at
a time (a lock per checkpoint); decoding, projection, lifting and encoding of other requests run alongside.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core.api import (
    IntrinsicsError,
    ModelUnavailableError,
    ObjectMaskAnnotation3D,
    ObjectMaskAnnotation3DCommand,
    cached_backend,
)
from ..core.segmentation.base import Segmentation
from ..core.segmentation.models import DEFAULT_MODEL_URL, MODEL_ADVICE, resolve_model
from .codec import (
    AnnotationOptions,
    BadRequestError,
    Cloud,
    EncodedResult,
    ForbiddenError,
    InvalidFieldError,
    UnavailableError,
    encode_result,
)

#: What a server's client or operator can do about a missing model (the core's advice names the node's flags).
_SERVER_ADVICE = ('start the server with --annotation_model PATH (a local checkpoint), or send model_backend with '
                  'a path that exists on the server')


def _reason(exc: Exception) -> str:
    """The error's message on one line, with advice for a server where the core advises the node."""
    return ' '.join(str(exc).replace(MODEL_ADVICE, _SERVER_ADVICE).split())


class _Serialized:
    """A shared segmentation backend whose ``segment`` runs one call at a time."""

    def __init__(self, inner, lock: threading.Lock, name: str) -> None:
        self._inner = inner
        self._lock = lock
        self.name = name  # what the API reports as backend_used: the checkpoint's path, as for a path
        self.device = getattr(inner, 'device', None)

    def segment(self, image_rgb: np.ndarray) -> Segmentation:
        with self._lock:
            return self._inner.segment(image_rgb)


class AnnotationService:
    """Runs annotation requests against the server's model (or a per-request one); thread-safe.

    ``model`` is a checkpoint path or URL (None: the API's default, vizion3D's release checkpoint);
    ``allow_model_override`` False refuses requests that name another model. While the server's model is
    unavailable, requests for it are answered :class:`~.codec.UnavailableError` with the reason, and
    loading is tried again at most every ``retry_s`` seconds.
    """

    def __init__(self, model: str | None = None, device: str = 'auto', allow_model_override: bool = True,
                 log: Callable[[str], None] | None = None, retry_s: float = 30.0) -> None:
        self.model = str(model) if model else DEFAULT_MODEL_URL
        self.device = device
        self.allow_model_override = allow_model_override
        self.retry_s = retry_s
        self._log = log or (lambda _msg: None)
        self._task = ObjectMaskAnnotation3D(log=lambda _msg: None)
        self._load_lock = threading.Lock()
        self._locks_lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._path: Path | None = None
        self._reason = 'the model is loading'
        self._last_try = -float('inf')

    # ---------------------------------------------------------------------------------------- model

    @property
    def ready(self) -> bool:
        """True once the server's model is loaded."""
        return self._path is not None

    def status(self) -> dict:
        """Readiness for /ready and health checks: model, device and, while not ready, the reason."""
        out = {'ready': self.ready, 'model': self.model, 'device': self.device}
        if self._path is not None:
            out['model_path'] = str(self._path)
        else:
            out['reason'] = self._reason
        return out

    def load(self) -> bool:
        """Resolve (download once when a URL) and load the server's model, then warm it up; False on failure."""
        with self._load_lock:
            if self._path is not None:
                return True
            self._last_try = time.monotonic()
            try:
                self._log(f'loading model {self.model}')
                path = resolve_model(self.model)
                backend = self._backend(path, AnnotationOptions(), self._log)
                backend.segment(np.zeros((480, 640, 3), np.uint8))  # the first request is not the slow one
                from ..core.jit import warm_kernels

                warm_kernels()
            except (ModelUnavailableError, UnavailableError, InvalidFieldError) as exc:
                self._reason = _reason(exc)
                self._log(self._reason)
                return False
            self._path = path
            self._log(f'model {path} loaded ({backend.device})')
            return True

    def _default_path(self) -> Path:
        if self._path is None and time.monotonic() - self._last_try >= self.retry_s:
            self.load()
        if self._path is None:
            raise UnavailableError(f'the server\'s model is not available: {self._reason}')
        return self._path

    def _lock_for(self, path: Path) -> threading.Lock:
        key = str(Path(path).resolve())
        with self._locks_lock:
            return self._locks.setdefault(key, threading.Lock())

    def _backend(self, path: Path, options: AnnotationOptions, log: Callable[[str], None] | None = None) -> _Serialized:
        """The API's cached backend for ``path`` and the request's settings, behind the checkpoint's lock."""
        try:
            inner = cached_backend(path, options.config(self.device), log)
        except ModelUnavailableError as exc:
            raise UnavailableError(_reason(exc)) from None
        except ValueError as exc:  # unknown class names in `classes`
            raise InvalidFieldError(f'classes: {exc}') from None
        return _Serialized(inner, self._lock_for(path), str(path))

    def _model_path(self, options: AnnotationOptions) -> Path:
        spec = options.model_backend
        if spec is None or spec == self.model:
            return self._default_path()
        if not self.allow_model_override:
            raise ForbiddenError(f'this server only runs its own model ({self.model}); model_backend {spec!r} '
                            'is not allowed (started with --no-model-override)')
        try:
            return resolve_model(spec)
        except ModelUnavailableError as exc:
            raise UnavailableError(f'model_backend {spec!r} is not available: {_reason(exc)}') from None

    # -------------------------------------------------------------------------------------- requests

    def annotate(self, cloud: Cloud, image: np.ndarray | None, options: AnnotationOptions) -> EncodedResult:
        """Run one request: segment the image (or a view rendered from the cloud) and lift it onto the cloud."""
        backend = self._backend(self._model_path(options), options)
        command = ObjectMaskAnnotation3DCommand(
            point_cloud=cloud.points, colors=cloud.colors, image_input=image, model_backend=backend,
            return_object_clouds=options.return_object_clouds, return_annotated_cloud=False,
            advanced_config=options.config(self.device), cloud_frame=options.cloud_frame or 'opengl',
            output_format='numpy')
        try:
            result = self._task.run(command)
        except IntrinsicsError as exc:
            raise BadRequestError(f'impossible intrinsics: {_reason(exc)}') from None
        except ModelUnavailableError as exc:
            raise UnavailableError(_reason(exc)) from None
        except ValueError as exc:  # what the API rejects in a well-formed request (sizes, intrinsics, ...)
            raise BadRequestError(_reason(exc)) from None
        return encode_result(result, cloud, options)
