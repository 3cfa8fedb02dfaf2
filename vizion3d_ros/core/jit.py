"""Compiled kernels: numba's ``njit`` with an on-disk cache, compiled before any frame needs them.

The per-pixel passes of the ``visible`` lifting that numpy can only express as many whole-array passes
(each a temporary, ~5-50 us of overhead per call on a crop) are written as loops and compiled by numba
(see ``docs/LIFTING.md``, "Speed"). Every kernel is registered here by :func:`kernel`, which compiles
with ``cache=True`` (the machine code is kept on disk: in ``$NUMBA_CACHE_DIR`` if set, else next to the
module in ``__pycache__`` or, where that folder is read-only, in numba's user-wide cache) and
``nogil=True`` (a kernel on the trimming's helper thread runs beside the main thread).

Each kernel has one explicit signature and is compiled on first use: ~1-2 s each, or ~0.1 s when
loaded from the cache. :func:`warm_kernels` compiles them all and then lifts a tiny synthetic frame
through the code path real frames take, so that no frame pays for either. Creating a
:class:`~.pipeline.FramePipeline` calls it: the node builds its pipeline while it activates, the Python API
on its first run.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

#: Every kernel of the package, in registration order.
KERNELS: list = []

_lock = threading.Lock()  # one compilation at a time
_warm = False


class Kernel:
    """A numba kernel compiled for one explicit signature, on first use or by :func:`warm_kernels`.

    Input arrays are typed read-only and of any layout (``A``), so that views, read-only message
    buffers and C-contiguous arrays all match the one signature: a call with other types raises
    ``TypeError`` instead of compiling on a frame.
    """

    def __init__(self, fn: Callable, signature: Callable[[], object]) -> None:
        self.py_func = fn
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self._signature = signature
        self.dispatcher = None

    def compile(self):
        """The numba dispatcher, compiled (or loaded from the disk cache) on the first call."""
        with _lock:
            if self.dispatcher is None:
                from numba import njit

                sig = self._signature()
                try:
                    self.dispatcher = njit(sig, cache=True, nogil=True)(self.py_func)
                except RuntimeError:  # no writable cache location at all: compile once per process
                    self.dispatcher = njit(sig, nogil=True)(self.py_func)
        return self.dispatcher

    def __call__(self, *args):
        return (self.dispatcher or self.compile())(*args)


def kernel(signature: Callable[[], object]) -> Callable[[Callable], Kernel]:
    """Decorator: ``fn`` as a :class:`Kernel` of ``signature()`` (a callable, so that numba loads lazily)."""
    def wrap(fn: Callable) -> Kernel:
        k = Kernel(fn, signature)
        KERNELS.append(k)
        return k
    return wrap


def array(dtype: str, ndim: int, writable: bool = False, layout: str = 'A'):
    """The numba array type of a signature argument: read-only unless ``writable`` (outputs).

    Any layout by default; ``layout='C'`` for arrays whose inner loops LLVM should vectorise.
    """
    from numba import types

    return types.Array(getattr(types, dtype), ndim, layout, readonly=not writable)


def compiled_signatures() -> int:
    """How many (kernel, argument types) pairs are compiled in this process (a warm-up test's probe)."""
    return sum(len(k.dispatcher.signatures) for k in KERNELS if k.dispatcher is not None)


def warm_kernels() -> None:
    """Compile (or load from the disk cache) every kernel; idempotent, and safe from several threads.

    Then lifts a tiny synthetic organised depth frame (80x60: a box in front of a wall, standing on a
    floor, with Kinect-like noise, and a mask a few pixels too wide) through :func:`~.lifting.lift.lift_masks`,
    the code path every frame takes.
    """
    global _warm
    if _warm:
        return
    from .lifting import lift  # imports every module that registers kernels

    for k in KERNELS:
        k.compile()
    # and once through the real code path: numba's own first-call set-up, and a check that the
    # signatures are those real frames use (a mismatch raises TypeError here, not on a frame)
    points, cam, masks = _warm_up_frame()
    lift.lift_masks(points, cam, masks, np.array([0.9, 0.8]))
    _warm = True


def _warm_up_frame():
    """Points (OpenGL camera space, organised on the pixels), camera and masks of the warm-up frame."""
    from .camera.pinhole import PinholeIntrinsics

    w, h = 80, 60
    cam = PinholeIntrinsics(fx=70.0, fy=70.0, cx=w / 2, cy=h / 2, width=w, height=h)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    # a wall at 3 m; the lower third a floor rising towards the camera; a box at 2 m on it
    z = np.full((h, w), 3.0)
    floor = v >= 40
    z[floor] = 3.0 - (v[floor] - 40) * 0.05
    box = (v >= 15) & (v < 45) & (u >= 25) & (u < 55)
    z[box] = 2.0
    z[5:10, 60:70] = np.nan  # a hole without depth
    z += np.random.default_rng(0).normal(0.0, 0.0015, z.shape) * z * z  # noisy depth: the smoothing runs
    pts = np.stack([(u - cam.cx) / cam.fx * z, -(v - cam.cy) / cam.fy * z, -z], axis=-1).reshape(-1, 3)
    masks = np.zeros((2, h, w), bool)
    masks[0, 12:48, 22:58] = True  # the box's mask, 3 px too wide: spill onto the wall and the floor
    masks[1, 2:14, 56:74] = True  # a second, small mask on the wall and over the hole
    return pts.astype(np.float32), cam, masks
