"""Lifting 2D instance masks onto the 3D points that belong to them.

Modes:

* ``visible`` (default): occlusion-aware and exclusive. A point takes a mask's label only if it lies on
  (or near) the surface the camera sees at its pixel, or is linked in 3D to the object's visible points
  (the back of an object seen by a LiDAR beside the camera). Overlapping masks are resolved by geometry
  first (which instance's depth the visible surface matches), confidence second. Mask borders that spill
  across a depth jump or a crease onto the background are trimmed (see :mod:`.surfaces`).
* ``exclusive``: every point that projects into a mask, each pixel given to the most confident mask.
* ``naive``: every point that projects into a mask gets it; overlapping masks share points. This is
  what most mask-to-cloud nodes do; kept for comparison and for users who want it.

All modes work on one projection of the cloud and never loop over points in Python.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .camera import PinholeIntrinsics, Projection, project_gl
from .connectivity import propagate_labels
from .planes import fit_planes, near_planes
from .surfaces import depth_noise, surface_breaks
from .zbuffer import depth_map, visible

LIFT_MODES = ('visible', 'exclusive', 'naive')


@dataclass(frozen=True)
class LiftConfig:
    """Options of :func:`lift_masks`; the defaults are what the tests and benchmarks validate."""

    #: ``visible`` | ``exclusive`` | ``naive`` (see the module docstring).
    mode: str = 'visible'
    #: A point is on the visible surface if its depth <= surface * (1 + rel) + abs.
    depth_tolerance: float = 0.03
    depth_tolerance_abs: float = 0.01
    #: Footprint radius (pixels) of each point in the z-buffer; None = from the cloud's density.
    splat_radius: int | None = None
    #: Width (pixels) of the mask border checked for spill onto the background; 0 = no edge cleanup.
    edge_band: int = 5
    #: Surfaces meeting at a sharper angle than this are different patches (degrees).
    crease_deg: float = 40.0
    #: A surface patch is kept in a mask's border when at least this fraction of it lies in the mask.
    patch_vote: float = 0.5
    #: Border pixels nearer than their core's surface extrapolates to, by more than this fraction of
    #: depth, are spill onto a supporting surface.
    front_tolerance: float = 0.0
    #: Link hidden points to the object's visible points in 3D (clouds not taken from the camera).
    connect_hidden: bool = True
    #: Hop length of that link (metres); None = 1.2 times the hidden points' typical spacing, >= 1 cm.
    connect_distance: float | None = None
    #: Points within this distance (metres) of a dominant background plane are not objects';
    #: None = from the plane's own noise (2.5 sigma, 0.5 to 4 cm).
    plane_tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in LIFT_MODES:
            raise ValueError(f'unknown lifting mode {self.mode!r}; expected one of {LIFT_MODES}')


def label_image(masks: np.ndarray, scores: Sequence[float] | np.ndarray,
                boxes: np.ndarray | None = None) -> np.ndarray:
    """Paint instance masks into one int32 image: 0 = none, k + 1 = instance k.

    Where masks overlap the more confident instance wins. ``boxes`` (``[x1, y1, x2, y2]``, pixels)
    restricts each mask's painting to its box, which makes painting cost proportional to box area.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f'masks must be (K, H, W), got shape {masks.shape}')
    k, h, w = masks.shape
    labels = np.zeros((h, w), dtype=np.int32)
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind='stable')  # low -> high: high wins
    for i in order:
        y0, y1, x0, x1 = _box_slice(boxes[i] if boxes is not None else None, h, w)
        region = labels[y0:y1, x0:x1]
        region[masks[i, y0:y1, x0:x1]] = i + 1
    return labels


def _box_slice(box: np.ndarray | None, h: int, w: int, pad: int = 0) -> tuple[int, int, int, int]:
    if box is None:
        return 0, h, 0, w
    x0 = max(int(np.floor(box[0])) - pad, 0)
    y0 = max(int(np.floor(box[1])) - pad, 0)
    x1 = min(int(np.ceil(box[2])) + 1 + pad, w)
    y1 = min(int(np.ceil(box[3])) + 1 + pad, h)
    return y0, max(y1, y0), x0, max(x1, x0)


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight ``[x1, y1, x2, y2]`` box of each mask (zeros for empty masks)."""
    out = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        rows = np.flatnonzero(m.any(axis=1))
        if rows.size:
            cols = np.flatnonzero(m[rows[0]:rows[-1] + 1].any(axis=0))
            out[i] = (cols[0], rows[0], cols[-1], rows[-1])
    return out


def group_by_label(point_ids: np.ndarray, labels: np.ndarray, num_instances: int) -> list[np.ndarray]:
    """Split ``point_ids`` by ``labels`` (1..num_instances; 0 is dropped) into sorted index arrays."""
    if not num_instances:
        return []
    keep = labels > 0
    ids = point_ids[keep]
    lab = labels[keep]
    order = np.argsort(lab, kind='stable')  # stable: indices stay ascending inside each group
    counts = np.bincount(lab, minlength=num_instances + 1)[1:]
    return np.split(ids[order].astype(np.uint32, copy=False), np.cumsum(counts)[:-1])


def lift_masks(points_gl: np.ndarray, cam: PinholeIntrinsics, masks: np.ndarray,
               scores: Sequence[float] | np.ndarray, boxes: np.ndarray | None = None,
               mode: str | None = None, projection: Projection | None = None,
               config: LiftConfig | None = None) -> list[np.ndarray]:
    """Return, per instance, the ascending uint32 indices of its points.

    ``points_gl`` is ``(N, 3)`` in OpenGL camera space; ``masks`` is ``(K, H, W)`` boolean at the
    camera's image size; ``boxes`` (optional) bound each mask and speed painting up. A precomputed
    ``projection`` of the same points may be passed to share it. ``mode`` overrides ``config.mode``.
    """
    cfg = config or LiftConfig()
    if mode is not None:
        cfg = replace(cfg, mode=mode)
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3 or masks.shape[1:] != (cam.height, cam.width):
        raise ValueError(f'masks must be (K, {cam.height}, {cam.width}) for this camera, got {masks.shape}')
    k = masks.shape[0]
    if k == 0:
        return []
    scores = np.asarray(scores, dtype=np.float64)
    if boxes is None:
        boxes = mask_boxes(masks)
    proj = projection if projection is not None else project_gl(points_gl, cam)
    point_ids = proj.indices
    if cfg.mode == 'naive':
        flat = proj.v.astype(np.int64) * cam.width + proj.u
        return [point_ids[masks[i].reshape(-1)[flat]].astype(np.uint32) for i in range(k)]
    labels = label_image(masks, scores, boxes)
    if cfg.mode == 'exclusive':
        return group_by_label(point_ids, labels[proj.v, proj.u], k)
    return _lift_visible(np.asarray(points_gl), cam, masks, boxes, labels, proj, cfg)


def _lift_visible(points_gl: np.ndarray, cam: PinholeIntrinsics, masks: np.ndarray, boxes: np.ndarray,
                  labels: np.ndarray, proj: Projection, cfg: LiftConfig) -> list[np.ndarray]:
    k = len(masks)
    pix = proj.v.astype(np.int64) * cam.width + proj.u
    dm = depth_map(pix, proj.depth, cam.height, cam.width, cfg.splat_radius)
    surface = dm.depth
    is_visible = visible(proj.depth, surface.reshape(-1)[pix], cfg.depth_tolerance, cfg.depth_tolerance_abs)
    _resolve_overlaps(labels, masks, boxes, surface)
    if cfg.edge_band > 0 and dm.splat_radius == 0:
        # the floor and table tops a mask spills onto: dominant planes of the visible background
        background = is_visible & (labels.reshape(-1)[pix] == 0)
        sample = proj.indices[background][::8]
        support = fit_planes(points_gl[sample], hypotheses=96, sample=2000) if sample.size > 100 else None
        _trim_spill(labels, masks, boxes, surface, cam, cfg, support)
    point_label = labels.reshape(-1)[pix]
    planes = np.zeros((0, 5))  # dense clouds: no plane filter for the hidden-point links
    if dm.splat_radius > 0:
        # A cloud from another viewpoint: floors, walls and table tops seen through an object's mask
        # are background, and they would carry 3D connectivity into everything that touches them.
        in_mask = point_label > 0
        planes = fit_planes(points_gl[proj.indices[is_visible & ~in_mask]], cfg.plane_tolerance)
        on_plane = np.zeros_like(in_mask)
        on_plane[in_mask] = near_planes(points_gl[proj.indices[in_mask]], planes)
        point_label = np.where(on_plane, 0, point_label)
        # The sensor leaves holes in an object's surface (parts it did not see) through which whatever
        # lies behind shows as "visible": keep each mask's main depth cluster.
        point_label = _keep_main_depth_cluster(point_label, is_visible, proj.depth, k, cfg)
    groups = group_by_label(proj.indices, np.where(is_visible, point_label, 0), k)
    if cfg.connect_hidden:
        hidden = ~is_visible & (point_label > 0)
        if hidden.any():
            groups = _connect_hidden(points_gl, proj, point_label, hidden, is_visible, groups, planes, cfg)
    return groups


def _keep_main_depth_cluster(point_label: np.ndarray, is_visible: np.ndarray, depth: np.ndarray, k: int,
                             cfg: LiftConfig) -> np.ndarray:
    """Zero the labels of visible points separated in depth from the bulk of their instance.

    Depths are binned (bin = half the gap that separates clusters, ``2 * depth_tolerance`` of the
    median); the run of occupied bins holding the median is the object, other runs are not.
    """
    out = point_label.copy()
    sel = np.flatnonzero(is_visible & (point_label > 0))
    lab = point_label[sel]
    for i in range(1, k + 1):
        idx = sel[lab == i]
        if idx.size < 2:
            continue
        z = depth[idx]
        med = float(np.median(z))
        gap = 2.0 * (cfg.depth_tolerance * med + cfg.depth_tolerance_abs)
        b = np.floor((z - z.min()) / (0.5 * gap)).astype(np.int64)
        occ = np.flatnonzero(np.bincount(b))
        # a run of occupied bins ends where two or more empty bins (a full gap) follow
        run_of_bin = np.zeros(occ[-1] + 1, np.int64)
        run_of_bin[occ] = np.cumsum(np.r_[0, np.diff(occ) > 2])
        main = run_of_bin[b[np.argmin(np.abs(z - med))]]
        out[idx[run_of_bin[b] != main]] = 0
    return out


def _median(a: np.ndarray) -> float:
    """Median for thresholds: lower middle element of at most ~1024 evenly strided samples."""
    return _quantile(a, 0.5)


def _quantile(a: np.ndarray, q: float) -> float:
    """Quantile for thresholds, from at most ~1024 evenly strided samples (a partition, not a sort)."""
    a = a[::max(1, a.size // 1024)]
    m = int(q * (a.size - 1))
    return float(np.partition(a, m)[m])


def _resolve_overlaps(labels: np.ndarray, masks: np.ndarray, boxes: np.ndarray, surface: np.ndarray) -> None:
    """Give pixels covered by several masks to the instance whose depth the visible surface matches.

    ``labels`` arrives painted by confidence and is changed in place; pixels without depth, and ties,
    keep the confident answer.
    """
    h, w = labels.shape
    count = np.zeros((h, w), np.uint8)
    slices = [_box_slice(b, h, w) for b in boxes]
    for m, (y0, y1, x0, x1) in zip(masks, slices):
        count[y0:y1, x0:x1] += m[y0:y1, x0:x1]
    overlap = np.flatnonzero((count > 1).reshape(-1) & np.isfinite(surface).reshape(-1))
    if overlap.size == 0:
        return
    k = len(masks)
    member = masks.reshape(k, -1)[:, overlap]  # (K, P)
    med = np.full(k, np.nan)
    spread = np.full(k, np.nan)
    for i in np.flatnonzero(member.any(axis=1)):  # only instances that share pixels
        y0, y1, x0, x1 = slices[i]
        sel = (labels[y0:y1, x0:x1] == i + 1) & (count[y0:y1, x0:x1] == 1)
        z = surface[y0:y1, x0:x1][sel][::4]  # a quarter of the pixels is plenty for a median
        z = z[np.isfinite(z)]
        if z.size:
            med[i] = _median(z)
            spread[i] = max(1.4826 * _median(np.abs(z - med[i])), 0.02 * med[i], 0.01)
    z = surface.reshape(-1)[overlap]
    cost = np.abs(z[None, :] - med[:, None]) / spread[:, None]
    cost = np.where(member & np.isfinite(cost), cost, np.inf)
    best = np.argmin(cost, axis=0)
    best_cost = cost[best, np.arange(overlap.size)]
    current = labels.reshape(-1)[overlap] - 1
    current_cost = cost[current, np.arange(overlap.size)]
    # switch only when geometry clearly prefers another instance (by more than one spread)
    switch = np.isfinite(best_cost) & (best_cost + 1.0 < current_cost)
    labels.reshape(-1)[overlap[switch]] = best[switch] + 1


def _trim_spill(labels: np.ndarray, masks: np.ndarray, boxes: np.ndarray, surface: np.ndarray,
                cam: PinholeIntrinsics, cfg: LiftConfig, planes: np.ndarray | None = None) -> None:
    """Drop the parts of each mask's border that are not the object's surface (in place on ``labels``).

    The core is the mask eroded by the edge band (less for thin masks). In the border:

    * pixels nearer than the core's surface extrapolates to are the floor or table in front of the
      object (:func:`_in_front_of_core`);
    * what connects to the core without crossing a depth jump or a crease, and lies no deeper than
      the core, is the object;
    * other pieces (cut off by creases: a box's top, a receding side) are the object unless their
      surface runs on smoothly outside the mask, which is what spill onto the background does.
    """
    noise = depth_noise(surface, cfg.depth_tolerance)
    for i, box in enumerate(boxes):
        _trim_one(labels, masks, surface, cam, cfg, noise, i, box, planes)


def _trim_one(labels: np.ndarray, masks: np.ndarray, surface: np.ndarray, cam: PinholeIntrinsics,
              cfg: LiftConfig, noise: float, i: int, box: np.ndarray, planes: np.ndarray | None = None) -> None:
    """:func:`_trim_spill` for instance ``i`` (only ever clears pixels of its own label)."""
    import cv2

    h, w = labels.shape
    grow = np.ones((3, 3), np.uint8)
    y0, y1, x0, x1 = _box_slice(box, h, w, pad=8)  # room for the normals' stencils
    lab = labels[y0:y1, x0:x1]
    region = lab == i + 1
    if not region.any():
        return
    mask = masks[i, y0:y1, x0:x1]
    m8 = mask.astype(np.uint8)
    # band: edge_band, less for masks so thin that their core would vanish (keep a 2 px core radius)
    e = int(min(cfg.edge_band, float(cv2.distanceTransform(np.pad(m8, 1), cv2.DIST_L2, 3).max()) - 2))
    if e < 1:
        return
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * e + 1, 2 * e + 1))
    core = cv2.erode(m8, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool) & region
    band = region & ~core
    # breaks are only looked at in the border band and just outside the mask
    rim = cv2.dilate(m8, grow).astype(bool) & ~cv2.erode(m8, grow).astype(bool)
    where = cv2.dilate(band.astype(np.uint8), grow).astype(bool) | rim
    crop_cam = replace(cam, cx=cam.cx - x0, cy=cam.cy - y0, width=x1 - x0, height=y1 - y0)
    breaks = surface_breaks(surface[y0:y1, x0:x1], crop_cam, jump_rel=cfg.depth_tolerance,
                            jump_abs=cfg.depth_tolerance_abs, crease_deg=cfg.crease_deg, noise=noise,
                            where=where)
    zc = surface[y0:y1, x0:x1]
    core_z = zc[core & np.isfinite(zc)]
    if core_z.size == 0:
        return
    far = breaks.far_edge
    crease = breaks.crease & ~far
    front = _in_front_of_core(breaks.smooth, core, band, noise, cfg)
    if planes is not None and len(planes):
        # border pixels on a dominant background plane (floor, table top) are spill onto it
        by, bx = np.nonzero(band)
        zb = zc[by, bx]
        pts = np.stack([(bx + x0 - cam.cx) / cam.fx * zb, -(by + y0 - cam.cy) / cam.fy * zb, -zb], axis=1)
        ok = np.isfinite(zb)
        front[by[ok], bx[ok]] |= near_planes(pts[ok], planes)
    z_top = _quantile(core_z, 0.99)
    behind = zc > z_top + cfg.depth_tolerance_abs
    open_ = region & ~breaks.cut & ~front
    n, comp = cv2.connectedComponents((open_ & (core | ~behind)).astype(np.uint8), connectivity=4,
                                      ltype=cv2.CV_32S)
    keep = np.zeros(n, bool)
    keep[comp[core]] = True
    keep[0] = False
    kept = keep[comp]
    rest = open_ & ~kept
    if rest.any():
        n2, comp2 = cv2.connectedComponents(rest.astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
        # spill runs on outside along most of its contact with the mask's edge; an object part
        # only where a jump or crease line has a gap
        cy, cx = np.nonzero(rest & rim)  # rest pixels on the mask's edge
        leaks = _runs_on_outside(zc, mask, crease | far, cy, cx, cfg)
        n_leak = np.bincount(comp2[cy[leaks], cx[leaks]], minlength=n2)
        n_contact = np.bincount(comp2[cy, cx], minlength=n2)
        leaky = (n_leak >= 2) & (n_leak >= 0.3 * n_contact)
        good = ~leaky
        good[0] = False
        # and no part of an object lies deeper behind its core than the object is large
        size_px = max(np.ptp(np.flatnonzero(mask.any(axis=0))), np.ptp(np.flatnonzero(mask.any(axis=1)))) + 1
        limit = z_top + size_px * _median(core_z) / cam.fx
        kept = kept | (good[comp2] & (zc <= limit))
    # pixels on the far side of a jump or on a crease belong to a kept neighbour at their depth
    ey, ex = np.nonzero(region & (far | crease) & ~kept & ~front)
    if ey.size:
        ze = zc[ey, ex]
        tol = ze * cfg.depth_tolerance + cfg.depth_tolerance_abs
        lo = np.full(ey.size, np.inf, np.float32)
        hi = np.full(ey.size, -np.inf, np.float32)
        hh, ww = zc.shape
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1)):
            ny = np.minimum(np.maximum(ey + dy, 0), hh - 1)  # np.clip costs more on small arrays
            nx = np.minimum(np.maximum(ex + dx, 0), ww - 1)
            zn = np.where(kept[ny, nx], zc[ny, nx], np.nan)
            lo = np.fmin(lo, zn)
            hi = np.fmax(hi, zn)
        with np.errstate(invalid='ignore'):
            ok = (ze <= hi + tol) & (ze >= lo - tol)
        kept = kept.copy()
        kept[ey[ok], ex[ok]] = True
    lab[region & ~(kept | core)] = 0


def _runs_on_outside(z: np.ndarray, mask: np.ndarray, cuts: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                     cfg: LiftConfig) -> np.ndarray:
    """For mask pixels ``(ys, xs)``: does their surface run on smoothly outside the mask.

    Smoothly means into a 4-neighbour outside the mask, without a jump or crease between them.
    """
    h, w = z.shape
    out = np.zeros(ys.size, bool)
    if ys.size == 0:
        return out
    z0 = z[ys, xs]
    tol = z0 * cfg.depth_tolerance + cfg.depth_tolerance_abs
    free = ~cuts[ys, xs]
    with np.errstate(invalid='ignore'):
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            ny = np.minimum(np.maximum(ys + dy, 0), h - 1)
            nx = np.minimum(np.maximum(xs + dx, 0), w - 1)
            zn = z[ny, nx]
            out |= free & ~mask[ny, nx] & ~cuts[ny, nx] & np.isfinite(zn) & (np.abs(zn - z0) <= tol)
    return out

def _in_front_of_core(smooth: np.ndarray, core: np.ndarray, band: np.ndarray, noise: float,
                      cfg: LiftConfig) -> np.ndarray:
    """Band pixels nearer than the plane of their nearest core pixel extrapolates to.

    Spill onto a supporting surface (the floor in front of an object) continues without a depth jump
    but comes towards the camera where the object's own face, carried on by its slope, does not.
    The plane comes from the smoothed depth; the margin covers the sensor noise (three sigma).
    """
    import cv2

    out = np.zeros(core.shape, bool)
    by, bx = np.nonzero(band)
    if by.size == 0:
        return out
    zf = smooth
    _, nearest = cv2.distanceTransformWithLabels((~core).astype(np.uint8), cv2.DIST_L2, 3,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    cy, cx = np.nonzero(core)
    lut = np.zeros((int(nearest.max()) + 1, 2), np.int64)
    lut[nearest[cy, cx]] = np.stack([cy, cx], axis=1)
    qy, qx = lut[nearest[by, bx]].T
    h, w = zf.shape
    # slope at the core pixel from central differences (one-sided at the crop's border)
    with np.errstate(invalid='ignore'):
        gx = (zf[qy, np.minimum(qx + 1, w - 1)] - zf[qy, np.maximum(qx - 1, 0)]) / 2
        gy = (zf[np.minimum(qy + 1, h - 1), qx] - zf[np.maximum(qy - 1, 0), qx]) / 2
        gx = np.where(np.isfinite(gx), gx, 0)
        gy = np.where(np.isfinite(gy), gy, 0)
        expected = zf[qy, qx] + gx * (bx - qx) + gy * (by - qy)
        margin = expected * cfg.front_tolerance + 0.002 + 3.0 * noise * expected ** 2
        out[by, bx] = zf[by, bx] < expected - margin
    return out

def _connect_hidden(points_gl: np.ndarray, proj: Projection, point_label: np.ndarray, hidden: np.ndarray,
                    is_visible: np.ndarray, groups: list[np.ndarray], planes: np.ndarray,
                    cfg: LiftConfig) -> list[np.ndarray]:
    """Add hidden points that 3D label propagation gives to each instance (see :mod:`.connectivity`)."""
    hidden_ids = proj.indices[hidden]
    hidden_lab = point_label[hidden]
    hidden_pts = points_gl[hidden_ids]
    depth = proj.depth
    # seeds: visible points at the hidden points' depths, labelled with their instance (0 = background),
    # except points of the dominant planes, which would take every hidden point near the floor
    near = is_visible & (depth >= depth[hidden].min() * 0.8) & (depth <= depth[hidden].max() * 1.2)
    seed_pts = points_gl[proj.indices[near]]
    seed_lab = point_label[near]
    off_plane = ~near_planes(seed_pts, planes)
    # at least 1 cm: denser clouds would only make the hops (and their number) smaller
    voxel = cfg.connect_distance or max(0.01, 1.2 * _typical_spacing(hidden_pts))
    got = propagate_labels(seed_pts[off_plane], seed_lab[off_plane], hidden_pts, voxel)
    out = list(groups)
    for i, seeds in enumerate(groups):
        add = hidden_ids[(got == i + 1) & (hidden_lab == i + 1)]
        if add.size:
            out[i] = np.sort(np.concatenate([seeds, add.astype(np.uint32)]))
    return out


def _typical_spacing(points: np.ndarray, sample: int = 256, pool: int = 4096) -> float:
    """Median distance from a point to its 4th-nearest neighbour (brute force on a random sample)."""
    rng = np.random.default_rng(0)
    pool_pts = points if len(points) <= pool else points[rng.choice(len(points), pool, replace=False)]
    probe = pool_pts if len(pool_pts) <= sample else pool_pts[rng.choice(len(pool_pts), sample, replace=False)]
    d2 = ((probe[:, None, :] - pool_pts[None, :, :]) ** 2).sum(axis=2)
    d2[d2 == 0] = np.inf  # the probe itself
    # the 4th neighbour: scan patterns are anisotropic (LiDAR rings are much further apart than the
    # points along a ring), and a chain must bridge the larger gap
    k = min(4, d2.shape[1]) - 1
    nn = np.sqrt(np.partition(d2, k, axis=1)[:, k]) if k >= 0 else np.zeros(0)
    nn = nn[np.isfinite(nn)]
    # a sample of the pool is sparser than the cloud: scale by the sampling density
    scale = np.sqrt(len(pool_pts) / len(points)) if len(points) > pool else 1.0
    return max(0.002, float(np.median(nn)) * scale) if nn.size else 0.01
