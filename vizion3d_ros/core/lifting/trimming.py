"""Trimming mask borders that spill off the object onto the background (the ``visible`` mode's cleanup).

Real masks are a few pixels too wide. For each instance the mask's core (the mask eroded by the
edge band) is trusted; in the border band:

* pixels nearer than the core's surface extrapolates to are the floor or table in front of the
  object, as are pixels on a dominant background plane (floor, table top);
* what connects to the core without crossing a depth jump or a crease, and lies no deeper than the
  core, is the object;
* other pieces (cut off by creases: a box's top, a receding side) are the object unless their
  surface runs on smoothly outside the mask, which is what spill onto the background does.

The work runs in three passes so that the per-pixel geometry (creases, extrapolation, planes) is done
once for the border pixels of all instances together, with flat-index gathers: per-instance work is
kept to a handful of OpenCV calls on the instance's box, which is what makes ten instances on a VGA
frame cost a few milliseconds rather than tens.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from ..camera.pinhole import PinholeIntrinsics
from ..jit import array, kernel
from .planes import near_planes
from .surfaces import crease_pixels, depth_noise, far_edges, noise_needs_smoothing, row_col, smooth_depth, typical_depth

#: Margin (pixels) around the instances' boxes for the image-wide steps: room for the normals'
#: stencils (at most 6 px) around the rim.
BOX_PAD = 8
#: Margin around one instance's box for its own steps, which look one pixel past the mask's rim.
CROP_PAD = 2


@dataclass(frozen=True)
class TrimConfig:
    """The subset of :class:`~vizion3d_ros.core.lifting.lift.LiftConfig` the trimming reads."""

    edge_band: int
    depth_tolerance: float
    depth_tolerance_abs: float
    crease_deg: float
    front_tolerance: float


@dataclass
class _Border:
    """Pass-1 products of one instance: its box, core and border band."""

    index: int
    box: tuple[int, int, int, int]  # y0, y1, x0, x1 of its crop (with CROP_PAD)
    mask: np.ndarray  # (bh, bw) bool: the instance's mask
    region: np.ndarray  # (bh, bw) bool: pixels labelled with this instance
    core: np.ndarray  # (bh, bw) bool
    rim: np.ndarray  # (bh, bw) bool: within one pixel of the mask's edge
    core_z: np.ndarray  # the finite depths of the core
    step: int  # baseline (pixels) of the normals for the crease test
    size_px: int  # the mask's larger side (pixels)
    band_flat: np.ndarray  # window flat indices of the band pixels (raster order)
    nearest_core_flat: np.ndarray  # window flat index of each band pixel's nearest core pixel
    z_top: float = np.nan  # 99th percentile of the core's depth (set by _set_core_depths)
    z_median: float = np.nan


def box_slice(box: np.ndarray | None, h: int, w: int, pad: int = 0) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of an ``[x1, y1, x2, y2]`` box grown by ``pad``, clipped to the image."""
    if box is None:
        return 0, h, 0, w
    x0 = max(int(np.floor(box[0])) - pad, 0)
    y0 = max(int(np.floor(box[1])) - pad, 0)
    x1 = min(int(np.ceil(box[2])) + 1 + pad, w)
    y1 = min(int(np.ceil(box[3])) + 1 + pad, h)
    return y0, max(y1, y0), x0, max(x1, x0)


def rows_cols(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a 2D mask, an order of magnitude faster (numpy's 2D nonzero is slow)."""
    return row_col(np.flatnonzero(mask), mask.shape[1])


def batch_quantiles(samples: Sequence[np.ndarray], qs: Sequence[float]) -> np.ndarray:
    """``(len(samples), len(qs))`` quantiles for thresholds (NaN for empty samples).

    Each from at most ~1024 evenly strided values, the element at ``int(q * (n - 1))`` of the sorted
    ones; all samples in one sort of a padded table (a call per sample would cost more than the sort).
    """
    short = [np.asarray(a, np.float32)[::max(1, a.size // 1024)] for a in samples]
    n = np.array([a.size for a in short], np.int64)
    out = np.full((len(short), len(qs)), np.nan)
    if n.size == 0 or n.max() == 0:
        return out
    table = np.full((len(short), n.max()), np.inf, np.float32)
    for row, a in zip(table, short):
        row[:a.size] = a
    table.sort(axis=1)
    rows = np.flatnonzero(n)
    for j, q in enumerate(qs):
        out[rows, j] = table[rows, (q * (n[rows] - 1)).astype(np.int64)]
    return out


def trim_spill(labels: np.ndarray, masks: np.ndarray, boxes: np.ndarray, surface: np.ndarray,
               cam: PinholeIntrinsics, cfg: TrimConfig, planes: np.ndarray | None = None,
               filters: SurfaceFilters | None = None) -> None:
    """Clear, in place on ``labels``, the border pixels of each mask that are not its object's surface.

    ``labels`` (H, W) int: 0 = none, k + 1 = instance k, overlaps already resolved; ``masks`` (K, H, W)
    bool; ``boxes`` (K, 4) bound the masks; ``surface`` (H, W) float32 is the visible depth (inf = none);
    ``planes`` are dominant background planes (``fit_planes`` rows) whose points are spill. Only ever
    clears pixels of an instance's own label.
    """
    SpillTrim(labels, masks, boxes, surface, cam, cfg, filters).finish(planes)


@cache
def _filter_thread() -> ThreadPoolExecutor:
    """The one helper thread for the image-wide filters (see SpillTrim), created on first use."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix='vizion3d-trim')


class SpillTrim:
    """:func:`trim_spill` in two steps, so that the image-wide filters run beside the per-instance work.

    The image-wide filters (:func:`surface_filters`: the depth-jump map and the edge-preserving
    smoothing, on a helper thread; OpenCV and numpy release the GIL while they filter) come from the
    caller, who may have started them before the masks existed, or are started by the constructor,
    which also picks each instance's crease baseline. :meth:`finish` runs pass 1 while they may still
    run and the rest once they are done. What the caller does in between (fitting the support planes)
    overlaps them too.
    """

    def __init__(self, labels: np.ndarray, masks: np.ndarray, boxes: np.ndarray, surface: np.ndarray,
                 cam: PinholeIntrinsics, cfg: TrimConfig, filters: SurfaceFilters | None = None) -> None:
        self._filtered: Future | None = None
        h, w = labels.shape
        if len(boxes) == 0:
            return
        wide = np.array([box_slice(b, h, w, BOX_PAD) for b in boxes])
        # everything below works in the window that holds every instance's box
        y0, x0 = int(wide[:, 0].min()), int(wide[:, 2].min())
        y1, x1 = int(wide[:, 1].max()), int(wide[:, 3].max())
        if y1 <= y0 or x1 <= x0:
            return
        if filters is None:
            filters = surface_filters(surface, cfg.depth_tolerance, cfg.depth_tolerance_abs)
        self._window = np.s_[y0:y1, x0:x1]
        self._labels, self._masks = labels[y0:y1, x0:x1], masks[:, y0:y1, x0:x1]
        self._crops = [tuple(int(c) for c in crop)
                       for crop in np.array([box_slice(b, h, w, CROP_PAD) for b in boxes]) - (y0, y0, x0, x0)]
        self._cam = replace(cam, cx=cam.cx - x0, cy=cam.cy - y0, width=x1 - x0, height=y1 - y0)
        self._cfg = cfg
        window = self._surface = np.ascontiguousarray(surface[y0:y1, x0:x1])
        self._noise = noise = filters.noise
        valid = self._valid = filters.valid[y0:y1, x0:x1]
        # normals from noisy depth need a longer baseline: as long as it takes for the noise over it to
        # stay small against the pixel spacing (Kinect-like noise at 3 m needs ~4 px)
        z_far = float(np.max(window, where=valid, initial=0.0))
        needs_step = 3.0 * noise * z_far * self._cam.fx > 2.0
        self._steps = [_crease_step(window, crop, noise, self._cam.fx) if needs_step else 2 for crop in self._crops]
        self._filtered = filters.maps

    def finish(self, planes: np.ndarray | None = None) -> None:
        """Pass 1 (while the filters may still run), then passes 2 and 3: clears the spill in ``labels``."""
        if self._filtered is None:
            return
        try:
            _trim_window(self._labels, self._masks, self._crops, self._steps, self._surface, self._valid,
                         self._filtered, self._window, self._cam, self._cfg, planes, self._noise)
        finally:
            wait([self._filtered])  # never leave the helper thread working on this frame


@dataclass(frozen=True)
class SurfaceFilters:
    """What the trimming needs of the whole visible surface, known before any mask (see :func:`surface_filters`).

    ``noise`` is the sensor's depth noise (sigma / depth**2), ``valid`` (H, W) where the surface has depth;
    ``maps`` resolves to the depth-jump map and the edge-preserving smoothing of the surface, both (H, W).
    """

    noise: float
    valid: np.ndarray
    maps: Future


def surface_filters(surface: np.ndarray, depth_tolerance: float, depth_tolerance_abs: float) -> SurfaceFilters:
    """Measure the noise and start the image-wide filters of ``surface`` (the helper thread smooths).

    Nothing here depends on the masks, so a caller that has the surface before the masks (the
    pipeline, while the model runs) starts them then and the trimming only reads the result.
    """
    noise = depth_noise(surface, depth_tolerance)
    valid = np.isfinite(surface)
    if noise_needs_smoothing(noise):
        maps = _filter_thread().submit(_filters, surface, valid, noise, depth_tolerance, depth_tolerance_abs)
    else:  # the jump map alone is too short to pay for the hand-over to the thread
        maps = Future()
        maps.set_result(_filters(surface, valid, noise, depth_tolerance, depth_tolerance_abs))
    return SurfaceFilters(noise, valid, maps)


def _crease_step(surface: np.ndarray, crop: tuple[int, int, int, int], noise: float, fx: float) -> int:
    """Baseline (pixels, 2 to 6) of the normals in ``crop``: the noise over it stays below a pixel's spacing."""
    y0, y1, x0, x1 = crop
    z = typical_depth(surface[y0:y1, x0:x1])
    if not np.isfinite(z):
        return 2  # no depth in the crop (a mask over a sensor hole): nothing there to test anyway
    return int(np.clip(np.ceil(3.0 * noise * z * fx), 2, 6))


def _filters(surface: np.ndarray, valid: np.ndarray, noise: float, jump_rel: float,
             jump_abs: float) -> tuple[np.ndarray, np.ndarray]:
    """The depth-jump map and the edge-preserving smoothing (noisy depth ruins normals) of the surface."""
    return far_edges(surface, valid, jump_rel, jump_abs), smooth_depth(surface, valid, noise)


def _trim_window(labels: np.ndarray, masks: np.ndarray, crops: list[tuple[int, int, int, int]], steps: list[int],
                 surface: np.ndarray, valid: np.ndarray, filtered: Future, window: tuple[slice, slice],
                 cam: PinholeIntrinsics, cfg: TrimConfig, planes: np.ndarray | None, noise: float) -> None:
    """:func:`trim_spill` on a window of the image (``labels`` and ``masks`` are views into the caller's)."""
    import cv2

    h, w = labels.shape
    borders: list[_Border] = []
    for i, (crop, step) in enumerate(zip(crops, steps)):
        b = _border(labels, masks[i], surface, cam, cfg, i, crop, step)
        if b is not None:
            borders.append(b)
    if not borders:
        return
    _set_core_depths(borders)
    far, smooth = (a[window] for a in filtered.result())  # the image's, cut to the window
    # pass 2, for the border pixels of all instances at once
    crease = np.zeros(h * w, bool)
    blocked = far | ~valid
    for step in sorted({b.step for b in borders}):
        group = [b for b in borders if b.step == step]
        # the bands (and one pixel around them: bands lie 2 px inside their crops) and the masks' rims
        where = np.zeros(h * w, np.uint8)
        where[np.concatenate([b.band_flat for b in group])] = 1
        where = cv2.dilate(where.reshape(h, w), _SQUARE_3).view(bool)
        for b in group:
            by0, by1, bx0, bx1 = b.box
            where[by0:by1, bx0:bx1] |= b.rim
        # tested in the part of the window around the group's crops: as far as the stencils reach and
        # one pixel more, so that only the window's own edges are edges to the test
        boxes = np.array([b.box for b in group])
        y0, x0 = max(int(boxes[:, 0].min()) - step - 1, 0), max(int(boxes[:, 2].min()) - step - 1, 0)
        y1, x1 = min(int(boxes[:, 1].max()) + step + 1, h), min(int(boxes[:, 3].max()) + step + 1, w)
        part = np.s_[y0:y1, x0:x1]
        idx, hit = crease_pixels(smooth[part], cam, blocked[part], step, cfg.crease_deg, where[part], (y0, x0))
        crease[crop_to_global(idx, x1 - x0, y0, x0, w)] = hit
    crease = crease.reshape(h, w) & valid & ~far
    band = np.concatenate([b.band_flat for b in borders])
    front = np.zeros(h * w, bool)
    front[band] = _in_front_of_core(smooth.reshape(-1), w, band, np.concatenate([b.nearest_core_flat
                                                                                for b in borders]),
                                    float(noise), float(cfg.front_tolerance))
    if planes is not None and len(planes):
        front[band] |= _on_planes(surface.reshape(-1), w, band, cam, planes)
    front = front.reshape(h, w)
    # pass 3: per instance, what stays connected to the core
    cut = blocked | crease
    rel, tol_abs = np.float32(cfg.depth_tolerance), np.float32(cfg.depth_tolerance_abs)
    for b in borders:
        y0, _, x0, _ = b.box
        # the thresholds in float32, as numpy compares float32 depths with a Python float
        _keep_connected(b.mask, b.core, b.rim, surface, far, crease, cut, front, y0, x0, b.band_flat,
                        np.float32(b.z_top + cfg.depth_tolerance_abs),
                        np.float32(b.z_top + b.size_px * b.z_median / cam.fx), rel, tol_abs, labels)


def _border(labels: np.ndarray, mask_full: np.ndarray, surface: np.ndarray, cam: PinholeIntrinsics,
            cfg: TrimConfig, i: int, box: tuple[int, int, int, int], step: int) -> _Border | None:
    """Pass 1 for instance ``i``: core, band, rim and each band pixel's nearest core pixel."""
    import cv2

    y0, y1, x0, x1 = box
    region = labels[y0:y1, x0:x1] == i + 1
    if not region.any():
        return None
    m8 = np.ascontiguousarray(mask_full[y0:y1, x0:x1]).view(np.uint8)
    # band: edge_band, less for masks so thin that their core would vanish (keep a 2 px core radius)
    e = cfg.edge_band
    core8 = _erode_disc(m8, e)
    if not cv2.erode(core8, _SQUARE_5).any():  # no pixel 2 px inside the core: a thin mask
        framed = cv2.copyMakeBorder(m8, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        e = int(min(e, float(cv2.distanceTransform(framed, cv2.DIST_L2, 3).max()) - 2))
        if e < 1:
            return None
        core8 = _erode_disc(m8, e)
    core = core8.view(bool) & region
    bw = x1 - x0
    core_flat = crop_to_global(np.flatnonzero(core), bw, y0, x0, cam.width)
    core_z = surface.reshape(-1).take(core_flat)
    core_z = core_z[np.isfinite(core_z)]
    if core_z.size == 0:
        return None
    rim = cv2.morphologyEx(m8, cv2.MORPH_GRADIENT, _SQUARE_3).view(bool)  # dilated != eroded
    # the nearest core pixel of every band pixel: OpenCV numbers the zero pixels (the core) of its
    # input in raster order, so label n is the n-th core pixel
    _, nearest = cv2.distanceTransformWithLabels((~core).view(np.uint8), cv2.DIST_L2, 3,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    band_crop = np.flatnonzero(region & ~core)
    _, _, mw, mh = cv2.boundingRect(m8)
    return _Border(index=i, box=box, mask=m8.view(bool), region=region, core=core, rim=rim, core_z=core_z,
                   step=step, size_px=max(mw, mh),
                   band_flat=crop_to_global(band_crop, bw, y0, x0, cam.width),
                   nearest_core_flat=core_flat.take(nearest.reshape(-1).take(band_crop) - 1))


def _set_core_depths(borders: list[_Border]) -> None:
    """Median and 99th percentile of each core's depth."""
    for b, (m, t) in zip(borders, batch_quantiles([b.core_z for b in borders], (0.5, 0.99))):
        b.z_median, b.z_top = float(m), float(t)


_SQUARE_3 = np.ones((3, 3), np.uint8)
_SQUARE_5 = np.ones((5, 5), np.uint8)


def _erode_disc(m8: np.ndarray, radius: int) -> np.ndarray:
    """``m8`` eroded by a disc of ``radius`` pixels; outside the crop counts as background."""
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode(m8, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def crop_to_global(flat: np.ndarray, crop_width: int, y0: int, x0: int, width: int) -> np.ndarray:
    """Flat indices of a crop at ``(y0, x0)`` as flat indices of the full image.

    ``flat + row * (width - crop_width) + y0 * width + x0``: one integer division (numpy's divmod of
    int64 is several times slower than ``//``).
    """
    out = flat // crop_width
    out *= width - crop_width
    out += flat
    out += y0 * width + x0
    return out


def _sig_in_front():
    from numba import types

    i8 = array('int64', 1)
    return types.boolean[::1](array('float32', 1), types.int64, i8, i8, types.float64, types.float64)


@kernel(_sig_in_front)
def _in_front_of_core(smooth, w, band, core, noise, front_tolerance):  # pragma: no cover - compiled
    """Band pixels (flat) nearer than the plane of their nearest core pixel (flat) extrapolates to.

    Spill onto a supporting surface (the floor in front of an object) continues without a depth jump
    but comes towards the camera where the object's own face, carried on by its slope, does not.
    The plane comes from the smoothed depth (central differences at the core pixel, which lies inside
    the mask, so its neighbours are in the image; not finite: flat); the margin covers the sensor noise
    (three sigma). numpy's arithmetic: the slopes in float32, the plane in float64.
    """
    out = np.empty(band.size, np.bool_)
    half = np.float32(0.5)
    for j in range(band.size):
        c = core[j]
        z0 = smooth[c]
        gx = (smooth[c + 1] - smooth[c - 1]) * half
        gy = (smooth[c + w] - smooth[c - w]) * half
        if not np.isfinite(gx):
            gx = np.float32(0.0)
        if not np.isfinite(gy):
            gy = np.float32(0.0)
        dy = band[j] // w
        qy = c // w
        expected = z0 + gx * np.float64(band[j] - dy * w - (c - qy * w)) + gy * np.float64(dy - qy)
        margin = expected * front_tolerance + 0.002 + 3.0 * noise * (expected * expected)
        out[j] = smooth[band[j]] < expected - margin
    return out


def _on_planes(surface: np.ndarray, w: int, pixels: np.ndarray, cam: PinholeIntrinsics,
               planes: np.ndarray) -> np.ndarray:
    """True for ``pixels`` (flat) whose visible point lies on one of the background ``planes``."""
    z = surface[pixels]
    ok = np.isfinite(z)
    v, u = row_col(pixels[ok], w)
    zo = z[ok]
    pts = np.stack([(u - cam.cx) / cam.fx * zo, -(v - cam.cy) / cam.fy * zo, -zo], axis=1)
    out = np.zeros(pixels.size, bool)
    out[ok] = near_planes(pts, planes)
    return out


def _sig_keep_connected():
    from numba import types

    b, z, i8 = array('boolean', 2), array('float32', 2), types.int64
    f4 = types.float32
    return types.void(b, b, b, z, b, b, b, b, i8, i8, array('int64', 1), f4, f4, f4, f4, array('int32', 2, True))


@kernel(_sig_keep_connected)
def _keep_connected(mask, core, rim, z, far, crease, cut, front, y0, x0, band_flat, behind, limit, rel, tol_abs,
                    labels):  # pragma: no cover - compiled (the tests call it compiled)
    """Pass 3 for one instance: clear in ``labels`` the band pixels that are not its object's.

    ``mask``, ``core`` and ``rim`` are the instance's crop at ``(y0, x0)`` of the window; ``z`` (visible
    depth), ``far``, ``crease``, ``cut`` (jumps, creases and holes), ``front`` (in front of the core or on
    a support plane) and ``labels`` are the window's; ``band_flat`` lists the band's pixels (window flat
    indices, raster order), the only pixels visited.

    A pixel is *open* unless cut or in front. Kept: the 4-connected pieces of open pixels that are
    core or no deeper than ``behind`` and that hold a core pixel; then the other open pieces, unless
    their surface runs on smoothly outside the mask (at least 2 of their rim pixels, and 30 % of their
    pixels on the rim, have a 4-neighbour outside the mask within ``rel * z + tol_abs`` in depth, with
    no jump or crease at either pixel), at their pixels no deeper than ``limit``. A band pixel not kept
    loses its label, unless it is a jump or crease pixel (not in front) whose depth lies within the range
    of its kept 8-neighbours' depths, widened by the same tolerance (neighbours clipped to the window).
    """
    bh, bw = mask.shape
    h, w = z.shape
    n = band_flat.size
    # the band pixels' crop coordinates (one division each: integer division is slow)
    by = np.empty(n, np.int64)
    bx = np.empty(n, np.int64)
    for j in range(n):
        q = band_flat[j] // w
        by[j] = q - y0
        bx[j] = band_flat[j] - q * w - x0
    # state of the band pixels: 0 not open (or not band), 1 open, 2 kept, 3 in a piece not (yet) kept
    state = np.zeros((bh, bw), np.uint8)
    for j in range(n):
        if not cut[y0 + by[j], x0 + bx[j]] and not front[y0 + by[j], x0 + bx[j]]:
            state[by[j], bx[j]] = 1
    sy = np.empty(n, np.int64)  # a stack of crop coordinates
    sx = np.empty(n, np.int64)
    # seeds: open band pixels not behind the core, next to an open core pixel
    top = 0
    for j in range(n):
        yy, xx = by[j], bx[j]
        if state[yy, xx] != 1 or z[y0 + yy, x0 + xx] > behind:
            continue
        for k in range(4):
            ny = yy + (1 if k == 0 else -1 if k == 1 else 0)
            nx = xx + (1 if k == 2 else -1 if k == 3 else 0)
            if 0 <= ny < bh and 0 <= nx < bw and core[ny, nx] and not cut[y0 + ny, x0 + nx] \
                    and not front[y0 + ny, x0 + nx]:
                state[yy, xx] = 2
                sy[top], sx[top] = yy, xx
                top += 1
                break
    while top > 0:  # grow through open band pixels not behind the core
        top -= 1
        yy, xx = sy[top], sx[top]
        for k in range(4):
            ny = yy + (1 if k == 0 else -1 if k == 1 else 0)
            nx = xx + (1 if k == 2 else -1 if k == 3 else 0)
            if 0 <= ny < bh and 0 <= nx < bw and state[ny, nx] == 1 and not z[y0 + ny, x0 + nx] > behind:
                state[ny, nx] = 2
                sy[top], sx[top] = ny, nx
                top += 1
    # the open band pixels left, in 4-connected pieces (listed in oy, ox): kept unless they leak
    oy = np.empty(n, np.int64)
    ox = np.empty(n, np.int64)
    n_order = 0
    for j in range(n):
        if state[by[j], bx[j]] != 1:
            continue
        first = n_order
        state[by[j], bx[j]] = 3
        sy[0], sx[0] = by[j], bx[j]
        top = 1
        n_leak = 0
        n_contact = 0
        while top > 0:
            top -= 1
            yy, xx = sy[top], sx[top]
            oy[n_order], ox[n_order] = yy, xx
            n_order += 1
            gy, gx = y0 + yy, x0 + xx
            if rim[yy, xx]:
                n_contact += 1
                if not (crease[gy, gx] or far[gy, gx]):
                    z0 = z[gy, gx]
                    tol = z0 * rel + tol_abs
                    for k in range(4):  # clipped to the crop, so an edge pixel meets itself (in the mask)
                        ny = min(max(yy + (1 if k == 2 else -1 if k == 3 else 0), 0), bh - 1)
                        nx = min(max(xx + (1 if k == 0 else -1 if k == 1 else 0), 0), bw - 1)
                        if mask[ny, nx] or crease[y0 + ny, x0 + nx] or far[y0 + ny, x0 + nx]:
                            continue
                        if abs(z[y0 + ny, x0 + nx] - z0) <= tol:  # False for NaN and inf (and inf - inf)
                            n_leak += 1
                            break
            for k in range(4):
                ny = yy + (1 if k == 0 else -1 if k == 1 else 0)
                nx = xx + (1 if k == 2 else -1 if k == 3 else 0)
                if 0 <= ny < bh and 0 <= nx < bw and state[ny, nx] == 1:
                    state[ny, nx] = 3
                    sy[top], sx[top] = ny, nx
                    top += 1
        if not (n_leak >= 2 and n_leak >= 0.3 * n_contact):
            for i in range(first, n_order):
                if z[y0 + oy[i], x0 + ox[i]] <= limit:
                    state[oy[i], ox[i]] = 2
    # the band pixels not kept lose the label, except jump and crease pixels at their kept neighbours' depth
    # (kept: open core pixels and band pixels of state 2; nothing outside the crop is this instance's)
    for j in range(n):
        yy, xx = by[j], bx[j]
        if state[yy, xx] == 2:
            continue
        gy, gx = y0 + yy, x0 + xx
        if (far[gy, gx] or crease[gy, gx]) and not front[gy, gx]:
            lo = np.float32(np.inf)
            hi = np.float32(-np.inf)
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    if dy == 0 and dx == 0:
                        continue
                    ny = min(max(gy + dy, 0), h - 1)
                    nx = min(max(gx + dx, 0), w - 1)
                    cy, cx = ny - y0, nx - x0
                    if not (0 <= cy < bh and 0 <= cx < bw):
                        continue
                    if state[cy, cx] == 2 or (core[cy, cx] and not cut[ny, nx] and not front[ny, nx]):
                        zn = z[ny, nx]
                        lo = min(lo, zn)
                        hi = max(hi, zn)
            ze = z[gy, gx]
            tol = ze * rel + tol_abs
            if ze <= hi + tol and ze >= lo - tol:
                continue
        labels[gy, gx] = 0
