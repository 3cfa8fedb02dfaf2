"""Multi-view fusion: a frame's integration into a 1M-voxel map, label propagation and memory; not a test.

Measures ``vizion3d_ros.core.fusion`` (issue 13) on a ray-cast furnished room (``core/synthetic/multiview``),
against the straightforward ways of doing the same, in the same run:

1. **Integration**: ``SceneFusion.add_frame`` (instance mode, 1 cm voxels, default parameters) of a VGA depth
   frame with 10 instance masks (4 px too wide, as real ones are) into a map pre-filled to ~1M voxels by one
   loop of 20 VGA views of the room; the timed frames come from a second loop, so every frame overlaps the map
   and the lookup and association do real work. Its split by stage (back-projection, lifting, lookup,
   association, negative evidence, integration), ``VoxelMap.integrate`` alone (on a copy of the map), and two
   baselines without association or voxel map: *append* (back-project, label each point with its pixel's mask
   value, append to a growing list) and *re-voxelise* (the same, then ``np.unique`` on the packed voxel keys of
   the accumulated cloud + the frame, keeping the first point of each voxel: an Open3D ``voxel_down_sample``
   done in numpy each frame). All ways run interleaved (round robin, garbage collection off), four frames back
   to back on a way's turn.
2. **Propagation**: ``core.fusion.propagation.propagate`` (defaults: 16 nearest labelled within 5 cm, quorum
   3) on 800k and 4M surface points: the map's voxels (1 cm spacing), cropped or tiled side by side, labelled
   with their true surface (object, floor, each wall) where a few "painted" views saw them (~40 %). Coverage
   before and after, and the accuracy of the new labels. Baseline: the tutorial way, a cKDTree over all
   points, ``query_ball_point(r=5 cm)`` for every unlabelled point and a ``Counter`` majority per point; it
   runs on a subsample of the queries and is extrapolated linearly (marked as such).
3. **Memory**: ``VoxelMap.bytes_per_voxel``, the map's ``memory_bytes`` at ~1M voxels, and the process's
   peak RSS (``ru_maxrss``) after each stage.

A ``cProfile`` of each stage (top functions by own time) says where the time goes.
Writes ``fusion.json`` and ``fusion.md`` (the section of docs/BENCHMARKS.md) into ``--out``.

    source scripts/env.sh
    python bench/bench_fusion.py                       # ~3 min on 2 cores
    python bench/bench_fusion.py --quick --out /tmp/f  # smoke run, < 1 min
"""
from __future__ import annotations

import argparse
import copy
import cProfile
import gc
import json
import os
import pstats
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, speed_probe  # noqa: E402

from vizion3d_ros.core.fusion import scene as scene_module  # noqa: E402
from vizion3d_ros.core.fusion.propagation import propagate  # noqa: E402
from vizion3d_ros.core.fusion.scene import SceneFusion  # noqa: E402
from vizion3d_ros.core.io.rgbd import depth_to_points_optical  # noqa: E402
from vizion3d_ros.core.synthetic.multiview import (  # noqa: E402
    MaskErrors,
    frame_masks,
    furnished_room,
    orbit_poses,
    render_view,
)
from vizion3d_ros.core.synthetic.scenes import DEFAULT_CAMERA, FLOOR_Y  # noqa: E402
from vizion3d_ros.core.voxels import cell_keys  # noqa: E402

NAME = 'fusion'
TARGET_INTEGRATION_MS = 30.0
TARGET_PROPAGATION_MS = {800_000: 1000.0, 4_000_000: 5000.0}
#: The map's world frame is the room's shifted by a few mm, so that the floor and the walls (at whole centimetres
#: in the room's frame) do not lie on voxel faces, where their points would split into two layers of voxels.
WORLD_SHIFT = np.array([0.0031, 0.0047, 0.0023])
TILE_LABELS = 100  # label offset between tiled copies of the room (each copy's surfaces are other objects)
ADD_FRAME, INTEGRATE, APPEND, REVOXEL = 'add_frame', 'VoxelMap.integrate', 'naive append', 'naive re-voxelise'
#: The VoxelMap methods add_frame may call (those the map has are wrapped), by the stage of the split they time.
MAP_STAGES = {'lookup': 'map rows of the points (lookup / insert)',
              'insert': 'map rows of the points (lookup / insert)',
              'best_labels': 'best labels of those rows', 'weaken': 'negative evidence (weaken)',
              'weaken_unlabelled': 'negative evidence (weaken)',
              'integrate': 'votes and means (integrate / accumulate)',
              'accumulate': 'votes and means (integrate / accumulate)'}
#: How the propagation's input is labelled (see :func:`surface_set`).
PATTERNS = {'views': 'the voxels a few painted views saw, views added whole (the last cut at a column) until {f} '
                     'of the points are labelled: large coherent regions, as painted photos give',
            'patches': 'the voxels in a random {f} of the 25 cm cells of space: many small patches, so most '
                       'unlabelled points have labelled ones within 5 cm (more work per query)'}
PATCH_M = 0.25
OURS, TUTORIAL = 'propagate', 'tutorial (cKDTree ball + Counter)'


@dataclass
class Config:
    """What one run measures (the command-line options)."""

    repeats: int = 25
    block: int = 4  # frames a way integrates back to back on its turn
    warmup: int = 3
    budget_s: float = 30.0
    voxel: float = 0.01
    room: tuple[float, float] = (3.9, 3.4)  # half extents (x, z) in metres: ~1.0M voxels of 1 cm
    objects: int = 16
    views: int = 20  # the loop that fills the map
    timed_views: int = 20  # the second loop the timed frames come from
    masks: int = 10
    grow: int = 4
    prop_sizes: tuple[int, ...] = (800_000, 4_000_000)
    prop_repeats: int = 7
    prop_budget_s: float = 40.0
    painted: float = 0.4
    baseline_queries: int = 20_000
    profile_frames: int = 5
    profile_runs: int = 3  # runs of propagate with its stages timed, per size and labelling
    seed: int = 3
    out: str = 'docs/bench'
    quick: bool = False


QUICK = dict(repeats=3, warmup=1, budget_s=3.0, room=(2.0, 2.0), objects=10, views=6, timed_views=4,
             prop_sizes=(100_000, 400_000), prop_repeats=2, prop_budget_s=3.0, baseline_queries=1_000,
             profile_frames=1, profile_runs=1, quick=True)


# ----------------------------------------------------------------------------- timing

def spread_ms(seconds: list[float]) -> dict:
    """Median, p10, p90 (ms) and the number of timed runs."""
    p10, med, p90 = np.percentile(np.asarray(seconds) * 1e3, [10, 50, 90])
    return {'median_ms': float(med), 'p10_ms': float(p10), 'p90_ms': float(p90), 'runs': len(seconds)}


def time_interleaved(variants: dict[str, Callable[[int], object]], repeats: int, warmup: int, budget_s: float,
                     after: Callable[[str, int], None] | None = None, block: int = 1) -> dict[str, list[float]]:
    """Seconds of each ``variant(round)``, round robin (the start rotating), GC off; stops after ``budget_s``.

    At least 5 rounds (or ``repeats``) run; ``after(name, round)`` is called after each timed call. With
    ``block`` > 1 a variant makes that many calls in a row on its turn (frames back to back, as in a real
    run, rather than each frame after another way's: the baselines' large arrays evict the map from cache).
    """
    names = list(variants)
    for r in range(warmup):
        for k in names:
            variants[k](r)
    times: dict[str, list[float]] = {k: [] for k in names}
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for r in range(repeats):
            for k in names[r % len(names):] + names[:r % len(names)]:
                for b in range(block):
                    i = warmup + r * block + b
                    t = time.perf_counter()
                    variants[k](i)
                    times[k].append(time.perf_counter() - t)
                    if after is not None:
                        after(k, i)
            if r + 1 >= min(5, repeats) and time.perf_counter() - start > budget_s:
                break
    finally:
        gc.enable()
    return times


class StageTimer:
    """Wall time spent inside wrapped callables, by stage name, since the last :meth:`take`.

    Only the outermost wrapped call of a thread counts: one wrapped method calling another is not counted
    twice. Stages run on another thread than the caller's (add_frame reads the map on a helper thread while
    the masks are lifted) are kept apart in ``background``: they overlap the caller's time.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.background: set[str] = set()
        self._local = threading.local()
        self._main = threading.get_ident()

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            depth = getattr(self._local, 'depth', 0)
            if depth:
                return fn(*args, **kwargs)
            self._local.depth = 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with _TIMER_LOCK:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
                    if threading.get_ident() != self._main:
                        self.background.add(name)
                self._local.depth = 0
        return timed

    def take(self) -> dict[str, float]:
        out, self.seconds = self.seconds, {}
        return out


_TIMER_LOCK = threading.Lock()


def profile_top(fn: Callable[[], object], calls: int, top: int = 12) -> list[dict]:
    """``cProfile`` of ``calls`` calls of ``fn``: the ``top`` functions by own time, in ms per call."""
    prof = cProfile.Profile()
    for _ in range(calls):
        prof.runcall(fn)
    stats = pstats.Stats(prof).stats
    rows = []
    for (path, line, func), (_, ncalls, tottime, cumtime, _) in stats.items():
        where = func if path == '~' else f'{Path(path).parent.name}/{Path(path).name}:{line}({func})'
        rows.append({'function': where, 'calls_per_run': ncalls / calls, 'own_ms': tottime * 1e3 / calls,
                     'cumulative_ms': cumtime * 1e3 / calls})
    rows.sort(key=lambda r: -r['own_ms'])
    return rows[:top]


_PEAK_MB = [0.0]  # the highest ru_maxrss read so far: resetting VmHWM resets ru_maxrss too


def reset_peak() -> None:
    """Restart the kernel's peak-RSS count (``VmHWM``, which ``ru_maxrss`` reads) of this process, where allowed."""
    _PEAK_MB[0] = max(_PEAK_MB[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    try:
        Path('/proc/self/clear_refs').write_text('5')
    except OSError:
        pass


def rss_mb() -> dict:
    """In MiB: the peak RSS so far (``ru_maxrss``, kept across resets), the peak since :func:`reset_peak` and now."""
    current = since = float('nan')
    try:
        current = int(Path('/proc/self/statm').read_text().split()[1]) * resource.getpagesize() / 2**20
        since = next(int(line.split()[1]) / 1024 for line in Path('/proc/self/status').read_text().splitlines()
                     if line.startswith('VmHWM:'))
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    _PEAK_MB[0] = max(_PEAK_MB[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {'peak_rss_mb': _PEAK_MB[0], 'stage_peak_rss_mb': since, 'rss_mb': current}


def peak_during(what: str, fn: Callable[[], object]) -> tuple[object, dict]:
    """``fn()`` and the process's RSS before it and at its peak (``VmHWM`` reset first), in MiB."""
    gc.collect()
    before = rss_mb()['rss_mb']
    reset_peak()
    out = fn()
    return out, {'what': what, 'rss_before_mb': before, 'peak_mb': rss_mb()['stage_peak_rss_mb']}


# ----------------------------------------------------------------------------- the scene

@dataclass
class Frame:
    """One posed VGA frame and its detections (per-frame numbering), with its world points."""

    view: object
    pose: np.ndarray  # (4, 4) camera (optical) -> map world (the view's pose, shifted by WORLD_SHIFT)
    labels: np.ndarray
    meta: dict
    world: np.ndarray  # (H*W, 3) float64, NaN where no depth
    truth: np.ndarray  # (H*W,) int: the true surface of each pixel (0: none)


@dataclass
class Scene:
    """The room, the filled map and what the benchmark needs of the fill."""

    room: object
    fusion: SceneFusion
    fill_rows: list[np.ndarray] = field(default_factory=list)  # per fill view: map row of each pixel (-1: none)
    truth: np.ndarray | None = None  # (M,) the true surface of each map voxel (0: unknown)
    fill_seconds: float = 0.0


def surface_labels(room, view, world: np.ndarray) -> np.ndarray:
    """Each pixel's true surface: object k -> k, floor -> K + 1, the four walls -> K + 2 .. K + 5, none -> 0."""
    ids = view.ids.reshape(-1)
    k = room.scene.num_objects
    hx, hz = room.room_half
    out = np.where(ids > 0, ids, 0).astype(np.int64)
    bg = ids == 0
    x, y, z = world[bg, 0], world[bg, 1], world[bg, 2]
    dist = np.stack([np.abs(y - FLOOR_Y), np.abs(x - hx), np.abs(x + hx), np.abs(z - hz), np.abs(z + hz)], axis=1)
    out[bg] = k + 1 + np.argmin(dist, axis=1)
    return out


def make_frame(room, pose, rng, masks: int, grow: int) -> Frame:
    """Render a VGA view and its detections: at most ``masks`` of them (the largest), 4 px too wide."""
    view = render_view(room, pose, DEFAULT_CAMERA)
    fm = frame_masks(room, view, rng, MaskErrors(grow=grow))
    labels = fm.labels.astype(np.int32)
    sizes = {v: int((labels == v).sum()) for v in fm.meta}
    keep = sorted(sizes, key=lambda v: -sizes[v])[:masks]
    labels[~np.isin(labels, keep)] = 0
    pose = view.pose.copy()
    pose[:3, 3] += WORLD_SHIFT
    optical = depth_to_points_optical(view.depth, view.camera).astype(np.float64)
    world = optical @ pose[:3, :3].T + pose[:3, 3]
    return Frame(view, pose, labels, {v: fm.meta[v] for v in keep}, world,
                 surface_labels(room, view, world - WORLD_SHIFT))


def fill_map(cfg: Config, log) -> Scene:
    """The room fused from one loop of ``cfg.views`` VGA views (the map the timed frames go into)."""
    room = furnished_room(np.random.default_rng(cfg.seed), num_objects=cfg.objects, half_x=cfg.room[0],
                          half_z=cfg.room[1])
    fusion = SceneFusion(voxel_size=cfg.voxel)
    scene = Scene(room, fusion)
    rng = np.random.default_rng(cfg.seed + 1)
    truths = []
    for i, pose in enumerate(orbit_poses(room, cfg.views, rng=np.random.default_rng(1))):
        f = make_frame(room, pose, rng, cfg.masks, cfg.grow)
        t = time.perf_counter()
        fusion.add_frame(f.view.depth, f.view.camera, f.pose, f.labels, f.meta, f.view.color)
        scene.fill_seconds += time.perf_counter() - t
        rows = fusion.map.lookup(f.world).astype(np.int32)
        scene.fill_rows.append(rows)
        truths.append(f.truth)
        log(f'fill view {i + 1}/{cfg.views}: {len(fusion.map):,} voxels')
    scene.truth = np.zeros(len(fusion.map), np.int64)
    for rows, truth in zip(scene.fill_rows, truths):
        ok = rows >= 0
        scene.truth[rows[ok]] = truth[ok]
    return scene


# ----------------------------------------------------------------------------- 1. integration

def naive_points(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """The baselines' per-frame work: back-projection, world transform, each point's pixel mask value."""
    view = frame.view
    optical = depth_to_points_optical(view.depth, view.camera)
    world = optical @ frame.pose[:3, :3].T.astype(np.float32) + frame.pose[:3, 3].astype(np.float32)
    ok = np.isfinite(world).all(axis=1)
    return world[ok], frame.labels.reshape(-1)[ok]


class Revoxelised:
    """The tutorial's map: one point (position, label) per voxel, re-voxelised with ``np.unique`` each frame."""

    def __init__(self, xyz: np.ndarray, labels: np.ndarray, voxel: float) -> None:
        self.xyz, self.labels, self.voxel = xyz.astype(np.float32), labels.astype(np.int32), voxel

    def add(self, frame: Frame) -> None:
        world, lab = naive_points(frame)
        xyz = np.concatenate([self.xyz, world])
        labels = np.concatenate([self.labels, lab])
        keys = cell_keys(np.floor(xyz / np.float32(self.voxel)).astype(np.int64))
        _, first = np.unique(keys, return_index=True)
        self.xyz, self.labels = xyz[first], labels[first]


def bench_integration(cfg: Config, scene: Scene, log) -> tuple[dict, dict]:
    """add_frame, its split, VoxelMap.integrate alone and the two baselines, interleaved, on the timed loop."""
    fusion, vmap = scene.fusion, scene.fusion.map
    rng = np.random.default_rng(cfg.seed + 2)
    poses = orbit_poses(scene.room, cfg.timed_views, height=0.55, rng=np.random.default_rng(7))
    frames = [make_frame(scene.room, p, rng, cfg.masks, cfg.grow) for p in poses]
    full = [f for f in frames if len(f.meta) >= cfg.masks]
    frames = full or frames
    log(f'{len(frames)} timed frames with {min(len(f.meta) for f in frames)}-{max(len(f.meta) for f in frames)} masks')
    before = len(vmap)
    memory = {'map_voxels': before, 'bytes_per_voxel': vmap.bytes_per_voxel, 'memory_bytes': vmap.memory_bytes(),
              'rows_allocated': vmap.capacity,
              'table_bytes': int(getattr(getattr(vmap, '_table', None), 'nbytes', 0))}
    alone = copy.deepcopy(vmap)  # VoxelMap.integrate alone, on a copy: its votes must not reach the fusion's map
    labels0 = vmap.best_labels()[0]
    revox = Revoxelised(vmap.positions, labels0, cfg.voxel)
    appended: list[tuple[np.ndarray, np.ndarray]] = []
    integrate_inputs = []
    for f in frames:
        lab = f.labels.reshape(-1).astype(np.int32)
        lab = np.where(lab > 0, lab + 10_000, 0).astype(np.int32)  # labels of their own: a copy, never read
        integrate_inputs.append((f.world, f.view.color.reshape(-1, 3), lab, np.float32(0.7)))

    timer = StageTimer()
    patched = {'depth_to_points_optical': 'back-projection', 'overlap_counts': 'association',
               'match_masks': 'association'}
    originals = {n: getattr(scene_module, n) for n in patched if hasattr(scene_module, n)}
    for n, stage in patched.items():
        if n in originals:
            setattr(scene_module, n, timer.wrap(stage, originals[n]))
    fusion._lift = timer.wrap('lifting (masks -> points, visible mode)', fusion._lift)
    for name, stage in MAP_STAGES.items():
        if hasattr(vmap, name):
            setattr(vmap, name, timer.wrap(stage, getattr(vmap, name)))
    split: list[dict[str, float]] = []

    def add_frame(r: int) -> None:
        timer.seconds = {}  # the warm-up rounds and other ways leave nothing in the split
        f = frames[r % len(frames)]
        fusion.add_frame(f.view.depth, f.view.camera, f.pose, f.labels, f.meta, f.view.color)

    def append(r: int) -> None:
        appended.append(naive_points(frames[r % len(frames)]))
        if len(appended) > 2 * len(frames):
            appended.clear()

    variants = {ADD_FRAME: add_frame, INTEGRATE: lambda r: alone.integrate(*integrate_inputs[r % len(frames)]),
                APPEND: append, REVOXEL: lambda r: revox.add(frames[r % len(frames)])}

    def after(name: str, _r: int) -> None:
        if name == ADD_FRAME:
            split.append(timer.take())

    try:
        times = time_interleaved(variants, cfg.repeats, cfg.warmup, cfg.budget_s, after, block=cfg.block)
    finally:
        for n, fn in originals.items():
            setattr(scene_module, n, fn)
        for name in ('_lift',):
            fusion.__dict__.pop(name, None)
        for name in MAP_STAGES:
            vmap.__dict__.pop(name, None)
    stats = {k: spread_ms(v) for k, v in times.items()}
    ours = stats[ADD_FRAME]['median_ms']
    stages = list(dict.fromkeys(s for d in split for s in d))  # in the order add_frame runs them
    totals = np.array(times[ADD_FRAME])
    per = {s: np.array([d.get(s, 0.0) for d in split]) for s in stages}
    main = [v for k, v in per.items() if k not in timer.background]
    helper = sum((v for k, v in per.items() if k in timer.background), np.zeros(len(totals)))
    lifting = per.get('lifting (masks -> points, visible mode)', np.zeros(len(totals)))
    # the caller waits for the helper thread only where the map's side outlasted the lifting
    per['other (world transform, masks -> labels, bookkeeping, waiting)'] = (
        totals - sum(main, np.zeros(len(totals))) - np.maximum(helper - lifting, 0.0))
    split_ms = {s: {**spread_ms(list(v)), 'share': float(np.median(v / totals)),
                    'thread': 'helper' if s in timer.background else 'caller'} for s, v in per.items()}
    for k, s in stats.items():
        log(f"integration {k:<22} {s['median_ms']:8.1f} ms (p10-p90 {s['p10_ms']:.1f}-{s['p90_ms']:.1f})")
    profile, peak = peak_during(f'add_frame ({cfg.profile_frames} frames, cProfile)',
                                lambda: profile_top(lambda: add_frame(0), cfg.profile_frames))
    frame_points = int(np.isfinite(frames[0].world).all(axis=1).sum())
    return {
        'frames': len(frames), 'frame_size': [DEFAULT_CAMERA.width, DEFAULT_CAMERA.height],
        'masks_per_frame': sorted({len(f.meta) for f in frames}), 'frame_points': frame_points,
        'map_voxels_before': before, 'map_voxels_after': len(vmap), 'instances': len(fusion.instances),
        'confirmed_instances': len(fusion.confirmed()), 'fill_ms_per_frame': 1e3 * scene.fill_seconds / cfg.views,
        'variants': stats, 'speedup': {k: v['median_ms'] / ours for k, v in stats.items() if k != ADD_FRAME},
        'split_ms': split_ms, 'profile': profile, 'peak_rss': peak,
        'baseline_state': {'revoxelised_points': len(revox.xyz),
                           'append_bytes_per_frame': frame_points * 16},
    }, memory


# ----------------------------------------------------------------------------- 2. propagation

def painted_voxels(scene: Scene, fraction: float, rng: np.random.Generator, within: np.ndarray) -> np.ndarray:
    """Voxels seen by a few whole "painted" views (the last cut at a column) until ``fraction`` of ``within`` is."""
    painted = np.zeros(len(scene.truth), bool)
    h, w = DEFAULT_CAMERA.height, DEFAULT_CAMERA.width
    for v in rng.permutation(len(scene.fill_rows)):
        rows = scene.fill_rows[v].reshape(h, w)

        def cover(cols: int, rows=rows, painted=painted) -> np.ndarray:
            r = rows[:, :cols].ravel()
            m = painted.copy()
            m[r[r >= 0]] = True
            return m

        whole = cover(w)
        if whole[within].mean() <= fraction:
            painted = whole
            continue
        lo, hi = 0, w
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if cover(mid)[within].mean() <= fraction else (lo, mid)
        painted = cover(lo)
        break
    return painted


def surface_set(scene: Scene, n: int, cfg: Config, pattern: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` surface points (the map's voxels, cropped, or tiled side by side), their labels and truth.

    Tile ``i`` is the room shifted by ``i`` room widths + 1 m along x, its labels offset by ``TILE_LABELS * i``;
    the last tile (or the only one) keeps its points of smallest x. ``pattern`` says which points keep their
    true label (:data:`PATTERNS`): ``views``, those a few painted views saw (each tile other views);
    ``patches``, those in a random ``cfg.painted`` of the 25 cm cells of space.
    """
    m = len(scene.truth)  # the voxels of the filled map (the timed frames added some after)
    pos = scene.fusion.map.positions[:m].astype(np.float32)
    width = 2 * scene.room.room_half[0] + 1.0
    pts, lab, tru = [], [], []
    rng = np.random.default_rng(cfg.seed + 10)
    left = n
    i = 0
    while left > 0:
        take = min(left, m)
        idx = np.argsort(pos[:, 0], kind='stable')[:take] if take < m else np.arange(m)
        painted = painted_voxels(scene, cfg.painted, rng, idx) if pattern == 'views' else np.ones(m, bool)
        truth = np.where(scene.truth > 0, scene.truth + TILE_LABELS * i, 0)
        pts.append(pos[idx] + np.array([width * i, 0, 0], np.float32))
        lab.append(np.where(painted, truth, 0)[idx])
        tru.append(truth[idx])
        left -= take
        i += 1
    pts, lab, tru = np.concatenate(pts), np.concatenate(lab), np.concatenate(tru)
    if pattern == 'patches':
        _, cell = np.unique(cell_keys(np.floor(pts / np.float32(PATCH_M)).astype(np.int64)), return_inverse=True)
        lab = np.where(rng.random(cell.max() + 1)[cell] < cfg.painted, lab, 0)
    return pts, lab, tru


def tutorial_propagate(points: np.ndarray, labels: np.ndarray, queries: np.ndarray, radius: float = 0.05,
                       quorum: int = 3) -> tuple[np.ndarray, float]:
    """The tutorial way on the points ``queries``: a cKDTree of all points, a ball per point, a Counter vote.

    Returns the labels of ``queries`` (0: abstained, on a tie or below the quorum) and the seconds the tree
    took to build.
    """
    from scipy.spatial import cKDTree

    t = time.perf_counter()
    tree = cKDTree(points)
    build = time.perf_counter() - t
    out = np.zeros(len(queries), np.int64)
    for j, i in enumerate(queries):
        near = labels[tree.query_ball_point(points[i], radius)]
        votes = Counter(near[near > 0].tolist())
        if sum(votes.values()) < quorum:
            continue
        top = votes.most_common(2)
        if len(top) == 1 or top[0][1] > top[1][1]:
            out[j] = top[0][0]
    return out, build


def propagation_split(points: np.ndarray, labels: np.ndarray, runs: int) -> dict[str, dict]:
    """Where ``propagate``'s time goes: the tree build, the queries and the rest (votes, bookkeeping), ms.

    ``propagate`` imports ``scipy.spatial.cKDTree`` when called; for these runs that name is a subclass
    whose constructor and ``query`` are timed. A ``propagate`` that uses no cKDTree gets only the rest and
    the total.
    """
    import scipy.spatial

    timer = StageTimer()
    base = scipy.spatial.cKDTree

    class TimedTree(base):
        def __init__(self, *args, **kwargs):
            t = time.perf_counter()
            super().__init__(*args, **kwargs)
            timer.seconds['tree build (labelled points)'] = (timer.seconds.get('tree build (labelled points)', 0.0)
                                                             + time.perf_counter() - t)

        def query(self, *args, **kwargs):
            t = time.perf_counter()
            try:
                return super().query(*args, **kwargs)
            finally:
                timer.seconds['queries (16 nearest within 5 cm)'] = (
                    timer.seconds.get('queries (16 nearest within 5 cm)', 0.0) + time.perf_counter() - t)

    per: list[dict[str, float]] = []
    scipy.spatial.cKDTree = TimedTree
    try:
        for _ in range(runs):
            timer.take()
            t = time.perf_counter()
            propagate(points, labels)
            total = time.perf_counter() - t
            got = timer.take()
            got['other (all but the KD-tree: input copies, votes, bookkeeping)'] = total - sum(got.values())
            got['total'] = total
            per.append(got)
    finally:
        scipy.spatial.cKDTree = base
    return {k: spread_ms([d[k] for d in per]) for k in per[0]}


def nn_spacing(points: np.ndarray, sample: int = 20_000) -> float:
    """Median distance from a point to its nearest neighbour (over a random sample of the points)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(0)
    d, _ = cKDTree(points).query(points[rng.choice(len(points), min(sample, len(points)), replace=False)], k=2)
    return float(np.median(d[:, 1]))


def bench_propagation(cfg: Config, scene: Scene, n: int, pattern: str,
                      log) -> tuple[dict, np.ndarray, np.ndarray]:
    """Time ``propagate`` on ``n`` points against the tutorial way (on a subsample of its queries, extrapolated)."""
    pts, lab, truth = surface_set(scene, n, cfg, pattern)
    todo = np.flatnonzero(lab == 0)
    q = np.random.default_rng(cfg.seed + 20).choice(todo, min(cfg.baseline_queries, len(todo)), replace=False)
    results: dict[str, object] = {}
    builds: list[float] = []

    def ours(_r: int) -> None:
        results[OURS] = propagate(pts, lab)

    def tutorial(_r: int) -> None:
        results[TUTORIAL], b = tutorial_propagate(pts, lab, q)
        builds.append(b)

    times = time_interleaved({OURS: ours, TUTORIAL: tutorial}, cfg.prop_repeats, 0, cfg.prop_budget_s)
    scale = len(todo) / max(len(q), 1)
    b = np.array(builds[-len(times[TUTORIAL]):])
    extrapolated = list(b + (np.array(times[TUTORIAL]) - b) * scale)
    res = results[OURS]
    new = (lab == 0) & (res.labels > 0)
    stats = {OURS: spread_ms(times[OURS]),
             TUTORIAL: {**spread_ms(extrapolated), 'extrapolated_from_queries': int(len(q)),
                        'measured_median_ms': spread_ms(times[TUTORIAL])['median_ms'],
                        'tree_build_median_ms': float(np.median(b) * 1e3)}}
    tut = results[TUTORIAL]
    row = {
        'points': int(n), 'labels': pattern,
        'labelled_before': res.labelled_before, 'labelled_after': res.labelled_after,
        'coverage_before': res.coverage_before, 'coverage_after': res.coverage_after,
        'accuracy_new': float((res.labels[new] == truth[new]).mean()) if new.any() else float('nan'),
        'tiles': -(-n // len(scene.truth)), 'unlabelled': int(len(todo)),
        'classes': int(len(np.unique(lab[lab > 0]))),
        'variants': stats, 'speedup': {TUTORIAL: stats[TUTORIAL]['median_ms'] / stats[OURS]['median_ms']},
        'tutorial_sample': {
            'queries': int(len(q)), 'coverage': float((tut > 0).mean()),
            'agreement_with_ours': float((tut == res.labels[q]).mean()),
            'accuracy': float((tut[tut > 0] == truth[q][tut > 0]).mean()) if (tut > 0).any() else float('nan')},
    }
    log(f"propagation {n:>9,} {pattern:<7}: ours {stats[OURS]['median_ms']:8.0f} ms, "
        f"tutorial ~{stats[TUTORIAL]['median_ms']:9.0f} ms (extrapolated), "
        f"coverage {row['coverage_before']:.3f} -> {row['coverage_after']:.3f}")
    return row, pts, lab


# ----------------------------------------------------------------------------- the run

def targets(integration: dict, propagation: list[dict]) -> dict:
    """The issue's targets from the measured medians: propagation at the sizes it names, its slower labelling."""
    s = integration['variants'][ADD_FRAME]
    split = {k: v['median_ms'] for k, v in integration['split_ms'].items()}
    slowest = max(split, key=split.get)
    out = {'integration': {'limit_ms': TARGET_INTEGRATION_MS, **s, 'map_voxels': integration['map_voxels_before'],
                           'masks': integration['masks_per_frame'],
                           'integrate_alone_ms': integration['variants'][INTEGRATE]['median_ms'],
                           'slowest_stage': slowest, 'slowest_stage_ms': split[slowest],
                           'met': bool(s['median_ms'] <= TARGET_INTEGRATION_MS)},
           'propagation': []}
    for n, limit in TARGET_PROPAGATION_MS.items():
        rows = [r for r in propagation if r['points'] == n]
        if rows:
            slowest = max(rows, key=lambda r: r['variants'][OURS]['median_ms'])
            s = slowest['variants'][OURS]
            out['propagation'].append({'points': n, 'limit_ms': limit, **s, 'labels': slowest['labels'],
                                       'by_labels': {r['labels']: r['variants'][OURS]['median_ms'] for r in rows},
                                       'coverage_before': slowest['coverage_before'],
                                       'tutorial_ms': slowest['variants'][TUTORIAL]['median_ms'],
                                       'met': bool(s['median_ms'] <= limit)})
    return out


def run(cfg: Config, log=print) -> dict:
    machine = machine_info()
    t_start = time.perf_counter()
    reset_peak()
    rss = [{'stage': 'start', **rss_mb()}]
    scene = fill_map(cfg, log)
    rss.append({'stage': f'map filled ({len(scene.fusion.map):,} voxels)', **rss_mb()})
    reset_peak()
    integration, memory = bench_integration(cfg, scene, log)
    rss.append({'stage': 'integration timed (map + its copy + the baselines\' clouds)', **rss_mb()})
    reset_peak()
    propagation = []
    for n in cfg.prop_sizes:
        for pattern in PATTERNS:
            row, pts, lab = bench_propagation(cfg, scene, n, pattern, log)
            row['split_ms'], row['peak_rss'] = peak_during(
                f'propagate, {n:,} points ({pattern})',
                lambda pts=pts, lab=lab: propagation_split(pts, lab, cfg.profile_runs))
            propagation.append(row)
            del pts, lab
            gc.collect()
            rss.append({'stage': f'propagation of {n:,} points ({pattern}; and the tutorial way)', **rss_mb()})
            reset_peak()
    spacing = nn_spacing(scene.fusion.map.positions[:len(scene.truth)].astype(np.float64))
    memory['rss'] = rss
    memory['memory_bytes_per_million_voxels'] = memory['memory_bytes'] / memory['map_voxels'] * 1e6
    result = {'name': NAME, 'machine': machine, 'config': asdict(cfg), 'quick': cfg.quick,
              'scene': {'room_m': [2 * cfg.room[0], 2 * cfg.room[1]], 'objects': cfg.objects, 'fill_views': cfg.views,
                        'voxel_m': cfg.voxel, 'surface_spacing_m': spacing},
              'integration': integration, 'propagation': propagation,
              'memory': memory, 'target': targets(integration, propagation)}
    result['machine']['total_seconds'] = round(time.perf_counter() - t_start, 1)
    result['machine']['speed_probe_ms_after'] = round(speed_probe(), 2)  # did the machine change speed meanwhile
    result['machine']['load_average_after'] = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
    return result


# ----------------------------------------------------------------------------- report

def _cell(s: dict, scale: float = 1.0, digits: str = '.1f') -> str:
    return (f"{s['median_ms'] * scale:{digits}} ({s['p10_ms'] * scale:{digits}}-{s['p90_ms'] * scale:{digits}})")


def _verdict(met: bool) -> str:
    return '**met**' if met else '**missed**'


def _profile_table(rows: list[dict], unit: str = 'ms') -> list[str]:
    lines = [f'| function | calls per run | own {unit} | cumulative {unit} |', '|---|---:|---:|---:|']
    return lines + [f"| `{r['function']}` | {r['calls_per_run']:g} | {r['own_ms']:.1f} | {r['cumulative_ms']:.1f} |"
                    for r in rows]


def markdown(r: dict) -> str:
    """The ``## `` section for docs/BENCHMARKS.md."""
    m, c, i, mem, t = r['machine'], r['config'], r['integration'], r['memory'], r['target']
    ti = t['integration']
    load = ', '.join(f'{x:.1f}' for x in m.get('load_average') or [])
    load_after = ', '.join(f'{x:.1f}' for x in m.get('load_average_after') or [])
    lines = [
        '## Multi-view fusion: frame integration, label propagation, memory (issue 13)', '',
        f"`bench/bench_fusion.py` on {m['cpu']} ({m['cpu_count']} cores, load average {load} at start and "
        f"{load_after} at the end, speed probe {m['speed_probe_ms']:.1f} / {m.get('speed_probe_ms_after', 0):.1f} ms), "
        f"Python {m['python']}, numpy {m['numpy']}, commit {m['git_commit']}"
        f"{' + uncommitted changes' if m.get('uncommitted_changes') else ''}, {m['date']}"
        f"{' (quick run: small sizes)' if r['quick'] else ''}.", '',
        f"**Targets.** Integration of a VGA frame with {c['masks']} masks into a "
        f"{i['map_voxels_before'] / 1e6:.2f}M-voxel map <= {TARGET_INTEGRATION_MS:g} ms: "
        f"{ti['median_ms']:.1f} ms median, {_verdict(ti['met'])}. "
        + ' '.join(f"Propagation of {p['points'] / 1e6:g}M points <= {p['limit_ms'] / 1e3:g} s: "
                   f"{p['median_ms'] / 1e3:.2f} s ({p['labels']} labels, the slower), {_verdict(p['met'])}."
                   for p in t['propagation']), '',
        f"The scene: `furnished_room` of {r['scene']['room_m'][0]:g} x {r['scene']['room_m'][1]:g} m with "
        f"{c['objects']} objects (seed {c['seed']}), fused from a loop of {c['views']} VGA views "
        f"(`SceneFusion(voxel_size={c['voxel']:g})`, instance mode, other parameters at their defaults; "
        f"{i['fill_ms_per_frame']:.0f} ms a frame while it filled) into {i['map_voxels_before']:,} voxels and "
        f"{i['instances']} instances ({i['confirmed_instances']} confirmed). Timed frames: {i['frames']} views of a "
        f"second loop 15 cm higher, each with {'-'.join(map(str, i['masks_per_frame']))} masks "
        f"(the largest detections, grown {c['grow']} px), {i['frame_points']:,} valid points; they overlap the map, "
        f"so lookup and association work on real instances (the map grew to {i['map_voxels_after']:,} voxels "
        f"while they were timed). All ways run interleaved (round robin, GC off; {c.get('block', 1)} frames back to "
        f"back on a way's turn) after {c['warmup']} warm-up rounds, up to {c['repeats']} rounds or "
        f"{c['budget_s']:g} s. Cells: median (p10-p90).", '',
        '### Integration of one frame', '',
        '| way | ms | runs | x add_frame |', '|---|---:|---:|---:|',
    ]
    about = {
        ADD_FRAME: '`SceneFusion.add_frame`: back-projection, lifting of the 10 masks (visible mode), lookup, '
                   'association, negative evidence, integration',
        INTEGRATE: '`VoxelMap.integrate` alone (points, colours, labels; on a copy of the map)',
        APPEND: 'naive: back-project, label by pixel mask value, append to a list (no map, no association)',
        REVOXEL: 'naive: the same, then `np.unique` of the voxel keys of accumulated cloud + frame '
                 '(one point per voxel, no votes, no association)'}
    for k, s in i['variants'].items():
        ratio = f"{i['speedup'][k]:.2f}" if k in i['speedup'] else '1'
        lines.append(f'| {about[k]} | {_cell(s)} | {s["runs"]} | {ratio} |')
    bs = i['baseline_state']
    lines += [
        '', f"The naive ways give no object identity across frames (a mask's value is per frame) and no "
        f"vote; *append* keeps every point, {bs['append_bytes_per_frame'] / 2**20:.1f} MiB more per frame "
        f"(float32 xyz + int32 label), *re-voxelise* held {bs['revoxelised_points']:,} points, and its cost grows "
        'with the map (a sort of the whole cloud per frame).', '',
        '`add_frame` by stage (wrapped calls in the same timed runs; share = median of stage / frame). The map\'s '
        'side (rows, best labels) runs on a helper thread while the masks are lifted, so those stages overlap the '
        'lifting; *other* includes the wait for it where it took longer:', '',
        '| stage | thread | ms | share |', '|---|---|---:|---:|',
        *[f"| {s} | {v.get('thread', 'caller')} | {_cell(v)} | {v['share']:.0%} |" for s, v in i['split_ms'].items()],
        '',
        f"Where the time goes (`cProfile` of {c['profile_frames']} frame(s), top functions by own time; profiling "
        'inflates Python-heavy parts):', '', *_profile_table(i['profile']), '',
        '### Label propagation', '',
        f"Points: the map's voxel means ({r['scene']['surface_spacing_m'] * 100:.1f} cm median nearest-neighbour "
        'spacing: floor, walls and objects), cropped (the points of smallest x) or tiled side by side (a copy of '
        'the room per tile, each with labels of its own). Labels: the true surface (each object, the floor, each '
        'wall) of ' + '; or of '.join(f"`{k}`: {v.format(f=format(c['painted'], '.0%'))}" for k, v in PATTERNS.items())
        + '. The target rows take the slower labelling. `propagate` with its defaults '
        '(16 nearest labelled within 5 cm, quorum 3, one pass). The tutorial way runs the same vote rule over all '
        'neighbours in the ball (`cKDTree` of all points, `query_ball_point` per unlabelled point, '
        f"`collections.Counter`) on {c['baseline_queries']:,} random unlabelled points; its time (`*`) is the "
        'tree build plus the measured queries scaled to all unlabelled points (extrapolated, not measured). '
        'Accuracy = share of the newly labelled points that got their true surface.', '',
        '| points | labels | classes | labelled before | after | accuracy of new | propagate ms | tutorial ms* | x | '
        'runs | tutorial sample: agreement, accuracy |',
        '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|']
    for p in r['propagation']:
        v, ts = p['variants'], p['tutorial_sample']
        lines.append(f"| {p['points']:,} | {p['labels']} | {p['classes']} | {p['coverage_before']:.3f} | "
                     f"{p['coverage_after']:.3f} | "
                     f"{p['accuracy_new']:.3f} | {_cell(v[OURS], digits='.0f')} | {_cell(v[TUTORIAL], digits='.0f')} | "
                     f"{p['speedup'][TUTORIAL]:.0f} | {v[OURS]['runs']} | {ts['agreement_with_ours']:.3f}, "
                     f"{ts['accuracy']:.3f} on {ts['queries']:,} |")
    stages = list(dict.fromkeys(k for p in r['propagation'] for k in p['split_ms']))
    lines += ['', f"Where `propagate`'s time goes ({c['profile_runs']} more runs each; where it builds a "
              '`scipy.spatial.cKDTree`, the tree\'s constructor and `query` timed; ms, median):', '',
              '| points | labels | ' + ' | '.join(stages) + ' |', '|---:|---|' + '---:|' * len(stages)]
    for p in r['propagation']:
        lines.append(f"| {p['points']:,} | {p['labels']} | "
                     + ' | '.join(f"{p['split_ms'][k]['median_ms']:.0f}" if k in p['split_ms'] else ''
                                  for k in stages) + ' |')
    lines += [
        '', '### Memory', '',
        '| what | value |', '|---|---:|',
        '| `VoxelMap.bytes_per_voxel` (key, position, colour, count, background, 4 votes) | '
        f"{mem['bytes_per_voxel']} B |",
        f"| map voxels | {mem['map_voxels']:,} |",
        f"| `memory_bytes()` (rows allocated {mem['rows_allocated']:,}, hash table "
        f"{mem['table_bytes'] / 2**20:.0f} MiB) | {mem['memory_bytes'] / 2**20:.0f} MiB |",
        f"| `memory_bytes()` per million voxels held | {mem['memory_bytes_per_million_voxels'] / 2**20:.0f} MiB |",
        '', 'Process RSS after each stage: the peak so far (`ru_maxrss`, the highest read), the peak during the '
        'stage (`VmHWM`, restarted at each stage start by writing 5 to `/proc/self/clear_refs`) and the RSS after '
        'it. The stages hold the benchmark\'s own data too (the timed frames, the map\'s copy, the baselines\' '
        'clouds and KD-trees):', '',
        '| after | peak RSS so far MiB | peak during the stage MiB | RSS after MiB |', '|---|---:|---:|---:|',
        *[f"| {x['stage']} | {x['peak_rss_mb']:.0f} | {x['stage_peak_rss_mb']:.0f} | {x['rss_mb']:.0f} |"
          for x in mem['rss']], '',
        'Our code alone (peak RSS while only it ran, against the RSS just before):', '',
        '| run | RSS before MiB | peak MiB | + MiB |', '|---|---:|---:|---:|',
        *[f"| {x['what']} | {x['rss_before_mb']:.0f} | {x['peak_mb']:.0f} | {x['peak_mb'] - x['rss_before_mb']:.0f} |"
          for x in [i['peak_rss'], *[p['peak_rss'] for p in r['propagation']]]], '']
    return '\n'.join(lines)


def write_outputs(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f'{NAME}.json').write_text(json.dumps(result, indent=1) + '\n')
    (out / f'{NAME}.md').write_text(markdown(result))


def main(argv: list[str] | None = None) -> int:
    d = Config()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--repeats', type=int, default=d.repeats, help='timed rounds of integration (default %(default)s)')
    p.add_argument('--budget', type=float, default=d.budget_s, help='stop integration after this many s once 5 '
                   'rounds ran (default %(default)s)')
    p.add_argument('--prop-sizes', default=','.join(map(str, d.prop_sizes)),
                   help='propagation point counts (default %(default)s)')
    p.add_argument('--prop-repeats', type=int, default=d.prop_repeats, help='timed rounds per propagation size '
                   '(default %(default)s)')
    p.add_argument('--baseline-queries', type=int, default=d.baseline_queries,
                   help='unlabelled points the tutorial propagation runs on before extrapolating (default %(default)s)')
    p.add_argument('--out', default=d.out, help='output folder (default %(default)s)')
    p.add_argument('--quick', action='store_true', help='smoke run: small map and point sets, a few rounds (< 1 min)')
    a = p.parse_args(argv)
    cfg = Config(repeats=a.repeats, budget_s=a.budget, prop_sizes=tuple(int(s) for s in a.prop_sizes.split(',') if s),
                 prop_repeats=a.prop_repeats, baseline_queries=a.baseline_queries, out=a.out)
    if a.quick:
        cfg = Config(**{**asdict(cfg), **QUICK})

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = run(cfg, log)
    write_outputs(result, Path(cfg.out))
    t = result['target']
    parts = [f"integration {t['integration']['median_ms']:.1f} ms ({'met' if t['integration']['met'] else 'MISSED'})"]
    parts += [f"propagation {x['points']:,} {x['median_ms']:.0f} ms ({'met' if x['met'] else 'MISSED'})"
              for x in t['propagation']]
    log(f"targets: {'; '.join(parts)}; wrote {cfg.out}/{NAME}.json and .md")
    return 0


if __name__ == '__main__':
    sys.exit(main())
