"""Lifting 2D instance masks onto the 3D points that belong to them.

Modes:

* ``visible`` (default): occlusion-aware and exclusive. A point takes a mask's label only if it lies on
  (or near) the surface the camera sees at its pixel, or is linked in 3D to the object's visible points
  (the back of an object seen by a LiDAR beside the camera). Overlapping masks are resolved by geometry
  first (which instance's depth the visible surface matches), confidence second. Mask borders that spill
  across a depth jump or a crease onto the background are trimmed (see :mod:`.trimming`).
* ``exclusive``: every point that projects into a mask, each pixel given to the most confident mask.
* ``naive``: every point that projects into a mask gets it; overlapping masks share points. This is
  what most mask-to-cloud nodes do; kept for comparison and for users who want it.

All modes work on one projection of the cloud and never loop over points in Python.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..camera.pinhole import PinholeIntrinsics, Projection, project_gl
from .connectivity import propagate_labels
from .planes import fit_planes, near_planes
from .trimming import (
    SpillTrim,
    SurfaceFilters,
    TrimConfig,
    batch_quantiles,
    box_slice,
    crop_to_global,
    rows_cols,
    surface_filters,
)
from .zbuffer import DepthMap, depth_map, visible

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


@dataclass(frozen=True)
class PreparedCloud:
    """What lifting needs of a cloud before any mask is known, computed once (e.g. while the model runs).

    ``surface`` is the visible-depth image of the ``visible`` mode (None for the other modes),
    ``own_pixels`` whether the cloud is organised on this camera's pixels (point i on pixel i) and
    ``filters`` the trimming's image-wide filters of a dense surface, started on their thread.
    """

    projection: Projection
    config: LiftConfig
    surface: DepthMap | None = None
    own_pixels: bool = False
    filters: SurfaceFilters | None = None


def prepare_cloud(points_gl: np.ndarray, cam: PinholeIntrinsics, config: LiftConfig | None = None,
                  projection: Projection | None = None) -> PreparedCloud:
    """Project ``points_gl`` and, for the ``visible`` mode, build the visible surface (no masks needed).

    A dense surface (no splatting) is also what the border trimming filters: those filters start here,
    on the trimming's helper thread, so that in the pipeline they run while the model does.
    """
    cfg = config or LiftConfig()
    proj = projection if projection is not None else project_gl(points_gl, cam)
    if cfg.mode != 'visible':
        return PreparedCloud(proj, cfg)
    own_pixels = proj.on_own_pixels()
    if own_pixels and proj.all_valid and not cfg.splat_radius:
        # a point on every pixel, in pixel order: the depths already are the z-buffer, with no gaps
        surface = DepthMap(depth=proj.depth.reshape(cam.height, cam.width), splat_radius=0)
    else:
        surface = depth_map(proj.pixels, proj.depth, cam.height, cam.width, cfg.splat_radius, unique=own_pixels)
    filters = surface_filters(surface.depth, cfg.depth_tolerance, cfg.depth_tolerance_abs) \
        if surface.splat_radius == 0 and cfg.edge_band > 0 else None
    return PreparedCloud(proj, cfg, surface, own_pixels, filters)


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
        y0, y1, x0, x1 = box_slice(boxes[i] if boxes is not None else None, h, w)
        region = labels[y0:y1, x0:x1]
        region[masks[i, y0:y1, x0:x1]] = i + 1
    return labels


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight ``[x1, y1, x2, y2]`` box of each mask (zeros for empty masks)."""
    import cv2

    out = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        x, y, w, h = cv2.boundingRect(np.ascontiguousarray(m).view(np.uint8))  # of the non-zero pixels
        if w:
            out[i] = (x, y, x + w - 1, y + h - 1)
    return out


def group_by_label(point_ids: np.ndarray, labels: np.ndarray, num_instances: int) -> list[np.ndarray]:
    """Split ``point_ids`` by ``labels`` (1..num_instances; 0 is dropped) into sorted index arrays."""
    if not num_instances:
        return []
    keep = labels > 0
    ids = point_ids[keep]
    # small unsigned labels: numpy's stable sort of 8/16-bit integers is a radix sort, ~10x faster
    lab = labels[keep].astype(np.uint8 if num_instances < 256 else np.uint16 if num_instances < 65536 else np.int64)
    order = np.argsort(lab, kind='stable')  # stable: indices stay ascending inside each group
    counts = np.bincount(lab, minlength=num_instances + 1)[1:]
    return np.split(ids[order].astype(np.uint32, copy=False), np.cumsum(counts)[:-1])


def lift_masks(points_gl: np.ndarray, cam: PinholeIntrinsics, masks: np.ndarray,
               scores: Sequence[float] | np.ndarray, boxes: np.ndarray | None = None,
               mode: str | None = None, projection: Projection | PreparedCloud | None = None,
               config: LiftConfig | None = None) -> list[np.ndarray]:
    """Return, per instance, the ascending uint32 indices of its points.

    ``points_gl`` is ``(N, 3)`` in OpenGL camera space; ``masks`` is ``(K, H, W)`` boolean at the
    camera's image size; ``boxes`` (optional) bound each mask and speed painting up. A precomputed
    ``projection`` of the same points (or their :func:`prepare_cloud`) may be passed to share it.
    ``mode`` overrides ``config.mode``.
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
    prepared = projection if isinstance(projection, PreparedCloud) else None
    proj = prepared.projection if prepared else projection if projection is not None else project_gl(points_gl, cam)
    point_ids = proj.indices
    if cfg.mode == 'naive':
        flat = proj.pixels
        return [point_ids[masks[i].reshape(-1)[flat]].astype(np.uint32) for i in range(k)]
    if boxes is None:
        boxes = mask_boxes(masks)
    labels = label_image(masks, scores, boxes)
    if cfg.mode == 'exclusive':
        return group_by_label(point_ids, labels.reshape(-1)[proj.pixels], k)
    if prepared is None or prepared.surface is None or replace(prepared.config, mode=cfg.mode) != cfg:
        prepared = prepare_cloud(points_gl, cam, cfg, proj)
    return _lift_visible(np.asarray(points_gl), cam, masks, boxes, labels, prepared, cfg)


def _lift_visible(points_gl: np.ndarray, cam: PinholeIntrinsics, masks: np.ndarray, boxes: np.ndarray,
                  labels: np.ndarray, prepared: PreparedCloud, cfg: LiftConfig) -> list[np.ndarray]:
    k = len(masks)
    proj, dm = prepared.projection, prepared.surface
    # An organised cloud from the camera itself puts point i on pixel i: one point per pixel, each
    # the visible surface there, and the labels of the points are the label image itself.
    own_pixels = prepared.own_pixels
    surface = dm.depth
    if own_pixels and dm.splat_radius == 0:
        # every point is the visible surface at its own pixel
        _resolve_overlaps(labels, masks, boxes, surface)
        _trim(labels, masks, boxes, surface, cam, cfg, prepared.filters)
        return _own_pixel_groups(labels, boxes, None if proj.all_valid else surface)
    pix = proj.pixels
    is_visible = visible(proj.depth, surface.reshape(-1)[pix], cfg.depth_tolerance, cfg.depth_tolerance_abs)
    _resolve_overlaps(labels, masks, boxes, surface)
    if dm.splat_radius == 0:
        _trim(labels, masks, boxes, surface, cam, cfg, prepared.filters)
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


def _trim(labels: np.ndarray, masks: np.ndarray, boxes: np.ndarray, surface: np.ndarray,
          cam: PinholeIntrinsics, cfg: LiftConfig, filters: SurfaceFilters | None) -> None:
    """Trim mask borders that spill off their objects (a dense, camera-viewpoint surface only)."""
    if cfg.edge_band <= 0:
        return
    trim = SpillTrim(labels, masks, boxes, surface, cam,
                     TrimConfig(edge_band=cfg.edge_band, depth_tolerance=cfg.depth_tolerance,
                                depth_tolerance_abs=cfg.depth_tolerance_abs, crease_deg=cfg.crease_deg,
                                front_tolerance=cfg.front_tolerance), filters)
    # (while the trimming's filters run:) the floor and table tops a mask spills onto, dominant planes
    # of the visible background
    sample = _background_sample(surface, labels, cam)
    support = fit_planes(sample, hypotheses=96, sample=2000, local=64, min_fraction=0.05) \
        if len(sample) > 100 else None
    trim.finish(support)


def _own_pixel_groups(labels: np.ndarray, boxes: np.ndarray, surface: np.ndarray | None) -> list[np.ndarray]:
    """Each instance's points in an organised camera cloud (point i on pixel i): its labelled pixels.

    Read inside each instance's box (labels only ever stay inside the mask's box), which is cheaper
    than sorting the whole image by label. ``surface`` (inf = no point) excludes pixels without a
    point; None when every pixel has one.
    """
    h, w = labels.shape
    out = []
    for i, b in enumerate(boxes):
        y0, y1, x0, x1 = box_slice(b, h, w)
        sel = labels[y0:y1, x0:x1] == i + 1
        if surface is not None:
            sel &= np.isfinite(surface[y0:y1, x0:x1])
        out.append(crop_to_global(np.flatnonzero(sel), x1 - x0, y0, x0, w).astype(np.uint32))
    return out


def _background_sample(surface: np.ndarray, labels: np.ndarray, cam: PinholeIntrinsics,
                       target: int = 2000) -> np.ndarray:
    """About ``target`` visible background points (OpenGL space) on an even grid of unlabelled pixels.

    A dense cloud from the camera's viewpoint *is* its visible surface, so back-projecting a coarse
    grid of the z-buffer gives the same planes as the points, without touching the whole cloud.
    """
    h, w = surface.shape
    step = max(1, int(np.sqrt(h * w / (2.0 * target))))
    zs = surface[::step, ::step]
    sel = (labels[::step, ::step] == 0) & np.isfinite(zs)
    v, u = rows_cols(sel)
    z = zs[sel]
    pts = np.stack([(u * step - cam.cx) / cam.fx * z, -(v * step - cam.cy) / cam.fy * z, -z], axis=1)
    return pts[::-(-len(pts) // target)] if len(pts) > target else pts


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


def _resolve_overlaps(labels: np.ndarray, masks: np.ndarray, boxes: np.ndarray, surface: np.ndarray) -> None:
    """Give pixels covered by several masks to the instance whose depth the visible surface matches.

    ``labels`` arrives painted by confidence and is changed in place; pixels without depth, and ties,
    keep the confident answer.
    """
    h, w = labels.shape
    slices = np.array([box_slice(b, h, w) for b in boxes]).reshape(-1, 4)
    # only the window holding every box can have overlaps
    wy0, wx0 = slices[:, 0].min(initial=h), slices[:, 2].min(initial=w)
    wy1, wx1 = slices[:, 1].max(initial=0), slices[:, 3].max(initial=0)
    if wy1 <= wy0 or wx1 <= wx0:
        return
    slices -= (wy0, wy0, wx0, wx0)
    lab = labels[wy0:wy1, wx0:wx1]
    zs = surface[wy0:wy1, wx0:wx1]
    count = np.zeros(lab.shape, np.uint8)
    for m, (y0, y1, x0, x1) in zip(masks, slices):
        count[y0:y1, x0:x1] += m[wy0 + y0:wy0 + y1, wx0 + x0:wx0 + x1]
    oy, ox = rows_cols((count > 1) & np.isfinite(zs))
    if oy.size == 0:
        return
    member = masks[:, oy + wy0, ox + wx0]  # (K, P)
    med, spread = _depth_stats(lab, zs, count, slices, np.flatnonzero(member.any(axis=1)), len(masks))
    z = zs[oy, ox]
    cost = np.abs(z[None, :] - med[:, None]) / spread[:, None]
    cost = np.where(member & np.isfinite(cost), cost, np.inf)
    best = np.argmin(cost, axis=0)
    cols = np.arange(oy.size)
    best_cost = cost[best, cols]
    current_cost = cost[lab[oy, ox] - 1, cols]
    # switch only when geometry clearly prefers another instance (by more than one spread)
    switch = np.isfinite(best_cost) & (best_cost + 1.0 < current_cost)
    lab[oy[switch], ox[switch]] = best[switch] + 1


def _depth_stats(lab: np.ndarray, zs: np.ndarray, count: np.ndarray, slices: np.ndarray, instances: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """Median depth and its spread (scaled MAD, at least 2 % or 1 cm) of each instance's own pixels.

    Own pixels: labelled with the instance and covered by no other mask (``count`` 1). A few hundred
    are plenty: every 2nd row and column, then evenly strided.
    """
    med = np.full(k, np.nan)
    spread = np.full(k, np.nan)
    samples = []
    for i in instances:
        y0, y1, x0, x1 = slices[i]
        sel = (lab[y0:y1:2, x0:x1:2] == i + 1) & (count[y0:y1:2, x0:x1:2] == 1)
        z = zs[y0:y1:2, x0:x1:2][sel]
        z = z[::max(1, z.size // 512)]
        samples.append(z[np.isfinite(z)])
    m = batch_quantiles(samples, (0.5,))[:, 0]
    mad = batch_quantiles([np.abs(z - np.float32(mi)) for z, mi in zip(samples, m)], (0.5,))[:, 0]
    med[instances] = m
    spread[instances] = np.maximum(np.maximum(1.4826 * mad, 0.02 * m), 0.01)
    return med, spread


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
