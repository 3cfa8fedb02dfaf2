"""The live map node's per-frame work, the cost of publishing its map, and its memory (issue 14); not a test.

Measures ``vizion3d_ros.ros.mapping.MapIntegrator``, the node's per-frame work without the ROS executor
(the node calls exactly this under its lock), on a ray-cast ``furnished_room`` (``core/synthetic/multiview``)
seen by posed VGA cameras, each frame given as the node receives it: an organised optical-frame XYZRGB
``PointCloud2`` and an ``ObjectMask3DArray`` with the exact ``point_indices`` of its 10 largest objects,
both after one trip through rclpy's serialisation (``bench/_map_frames.py``):

1. **Integration**: ``MapIntegrator.integrate`` (default ``MapSettings``: 2 cm voxels, consolidation every
   10 frames) into a map already filled by one loop of views; the timed frames come from a second loop
   15 cm higher, so every frame overlaps the map and the association works on real objects. p10 / p50 /
   p90 / p95 against the targets (p50 <= 30 ms, p95 <= 60 ms on 2 cores) and the split by the calls
   ``integrate`` makes (cloud conversion, labels, ``SceneFusion.add_lifted``, message building, ...).
2. **Publishing the map**: ``MapIntegrator.cloud()`` (map_points) and rclpy's ``serialize_message`` of it
   (what ``publish`` pays) and ``deserialize_message`` (a subscriber), at the filled map's size and at
   ~1M voxels (the same room and views at 1 cm); bytes per point and per message.
3. **Memory**: ``VoxelMap.bytes_per_voxel``, ``memory_bytes() / len(map)`` of the filled maps and the
   process's RSS growth while each filled, per voxel.

Writes ``map.json`` and ``map.md`` (the section of docs/BENCHMARKS.md) into ``--out``.

    source scripts/env.sh
    python bench/bench_map.py                       # ~30 s on 2 cores
    python bench/bench_map.py --quick --out /tmp/m  # smoke run, < 1 min
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, speed_probe  # noqa: E402
from _map_frames import MapFrame, as_received, make_frame  # noqa: E402
from bench_fusion import WORLD_SHIFT, StageTimer, profile_top, rss_mb, spread_ms  # noqa: E402

from vizion3d_ros.core.synthetic.multiview import furnished_room, orbit_poses  # noqa: E402
from vizion3d_ros.core.synthetic.scenes import DEFAULT_CAMERA  # noqa: E402
from vizion3d_ros.ros.mapping import integrator as integrator_module  # noqa: E402
from vizion3d_ros.ros.mapping.integrator import MapIntegrator  # noqa: E402
from vizion3d_ros.ros.mapping.messages import MAP_POINT_DTYPE  # noqa: E402
from vizion3d_ros.ros.mapping.params import MapSettings  # noqa: E402

NAME = 'map'
TARGETS_MS = {'p50': 30.0, 'p95': 60.0}
#: Module-level functions ``integrate`` calls, wrapped in the integrator's namespace, by stage.
MODULE_STAGES = {'pointcloud2_to_arrays': 'cloud conversion (pointcloud2_to_arrays)',
                 'point_labels': 'labels (point_labels)',
                 'split_dynamic': 'dynamic classes out (split_dynamic)',
                 'readout': 'map readout for the message (best votes, confirmed instances: readout)',
                 'map_objects_message': 'message building (map_objects_message)'}
#: What the issue's target covers: integrate() without describing the map (readout + message).
DESCRIBE = ('readout', 'map_objects_message')
#: SceneFusion methods ``integrate`` calls, wrapped on the instance, by stage.
FUSION_STAGES = {'add_lifted': 'SceneFusion.add_lifted (association + integration)',
                 'prune_tentative': 'prune tentative objects (prune_tentative)',
                 'consolidate': 'consolidation (consolidate, every consolidate_every frames)',
                 'forget_beyond': 'map_radius (forget_beyond)'}
CONSOLIDATE = FUSION_STAGES['consolidate']
OTHER = 'other (stamps, dynamic tracks, bookkeeping)'
SER, DESER, BUILD = 'serialize_message', 'deserialize_message', 'MapIntegrator.cloud()'


@dataclass
class Config:
    """What one run measures (the command-line options)."""

    frames: int = 100  # timed integrations (passes over the timed loop)
    budget_s: float = 60.0
    warmup: int = 2
    room: tuple[float, float] = (3.9, 3.4)  # half extents (x, z) in metres
    objects: int = 16
    views: int = 20  # the loop that fills the map
    timed_views: int = 20  # the second loop the timed frames come from
    masks: int = 10
    big_voxel: float = 0.01  # the second map, for the publish cost at ~1M voxels
    cloud_repeats: int = 15
    profile_frames: int = 5
    seed: int = 3
    out: str = 'docs/bench'
    quick: bool = False


QUICK = dict(frames=12, budget_s=10.0, warmup=1, room=(2.0, 2.0), objects=10, views=6, timed_views=4,
             cloud_repeats=3, profile_frames=1, quick=True)


def pct_ms(seconds) -> dict:
    """:func:`bench_fusion.spread_ms` with the p95, mean and max (ms) too."""
    ms = np.asarray(seconds, np.float64) * 1e3
    return {**spread_ms(list(seconds)), 'p95_ms': float(np.percentile(ms, 95)), 'mean_ms': float(ms.mean()),
            'max_ms': float(ms.max())}


def current_rss_mb() -> float:
    gc.collect()
    return rss_mb()['rss_mb']


# ----------------------------------------------------------------------------- the scene

def make_frames(room, poses, cfg: Config, rng: np.random.Generator) -> list[MapFrame]:
    """The views at ``poses`` as received messages, in the map's world frame (the room's, shifted)."""
    out = []
    for pose in poses:
        # floor and walls off the voxel faces (see bench_fusion.WORLD_SHIFT)
        f = make_frame(room, pose, DEFAULT_CAMERA, rng, cfg.masks, shift=WORLD_SHIFT)
        out.append(MapFrame(as_received(f.cloud), as_received(f.objects), f.pose, f.masks, f.points))
    return out


class Stamps:
    """Frame stamps 1/15 s apart, increasing across every map of the run."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        self.ns += 66_666_667
        return self.ns


def fill(settings: MapSettings, frames: list[MapFrame], stamps: Stamps, log, what: str) -> tuple[MapIntegrator, dict]:
    """A MapIntegrator filled with ``frames``; its fill time and the RSS it took."""
    before = current_rss_mb()
    mi = MapIntegrator(settings, 'odom')
    times = []
    for f in frames:
        t = time.perf_counter()
        mi.integrate(stamps(), f.objects, f.cloud, f.pose)
        times.append(time.perf_counter() - t)
    after = current_rss_mb()
    m = mi.fusion.map
    log(f'{what}: {len(m):,} voxels of {m.voxel_size * 100:g} cm, {len(mi.fusion.instances)} objects, '
        f'RSS +{after - before:.0f} MiB')
    return mi, {'voxel_m': m.voxel_size, 'voxels': len(m), 'objects': len(mi.fusion.instances),
                'confirmed': len(mi.fusion.confirmed()), 'fill_ms': pct_ms(times),
                'rss_before_mb': before, 'rss_after_mb': after}


def memory_of(mi: MapIntegrator, filled: dict) -> dict:
    """Bytes per voxel of the map: its rows, ``memory_bytes()`` over its voxels and the RSS growth of filling it."""
    m = mi.fusion.map
    held = m.memory_bytes() if callable(m.memory_bytes) else m.memory_bytes
    n = max(len(m), 1)
    growth = (filled['rss_after_mb'] - filled['rss_before_mb']) * 2**20
    return {'voxel_m': m.voxel_size, 'voxels': len(m), 'bytes_per_voxel': int(m.bytes_per_voxel),
            'rows_allocated': int(m.capacity), 'memory_bytes': int(held), 'memory_bytes_per_voxel': held / n,
            'rss_growth_mb': growth / 2**20, 'rss_growth_bytes_per_voxel': growth / n}


# ----------------------------------------------------------------------------- 1. integration

def bench_integration(cfg: Config, mi: MapIntegrator, frames: list[MapFrame], stamps: Stamps, log) -> dict:
    """``integrate`` of the timed frames in turn (GC on, as in the node), with its split by stage."""
    timer = StageTimer()
    originals = {n: getattr(integrator_module, n) for n in MODULE_STAGES}
    for n, stage in MODULE_STAGES.items():
        setattr(integrator_module, n, timer.wrap(stage, originals[n]))
    fusion = mi.fusion
    for n, stage in FUSION_STAGES.items():
        setattr(fusion, n, timer.wrap(stage, getattr(fusion, n)))
    times, split, sizes = [], [], []

    def one(i: int) -> None:
        f = frames[i % len(frames)]
        mi.integrate(stamps(), f.objects, f.cloud, f.pose)

    try:
        for i in range(cfg.warmup):
            one(i)
        start = time.perf_counter()
        for i in range(cfg.frames):
            timer.take()
            t = time.perf_counter()
            one(cfg.warmup + i)
            times.append(time.perf_counter() - t)
            split.append(timer.take())
            sizes.append(len(fusion.map))
            if i + 1 >= min(10, cfg.frames) and time.perf_counter() - start > cfg.budget_s:
                break
        profile = profile_top(lambda: one(0), cfg.profile_frames)
    finally:
        for n, fn in originals.items():
            setattr(integrator_module, n, fn)
        for n in FUSION_STAGES:
            fusion.__dict__.pop(n, None)
    totals = np.array(times)
    stages = list(dict.fromkeys([*MODULE_STAGES.values(), *FUSION_STAGES.values()]))
    per = {s: np.array([d.get(s, 0.0) for d in split]) for s in stages if any(s in d for d in split)}
    per[OTHER] = totals - sum(per.values(), np.zeros(len(totals)))
    order = [*list(MODULE_STAGES.values())[:3], *dict.fromkeys(FUSION_STAGES.values()),
             MODULE_STAGES['readout'], MODULE_STAGES['map_objects_message'], OTHER]
    describe = sum((per[MODULE_STAGES[k]] for k in DESCRIBE if MODULE_STAGES[k] in per), np.zeros(len(totals)))
    fusing = totals - describe  # seconds, as ``times``
    split_ms = {s: {**pct_ms(per[s]), 'share': float(per[s].sum() / totals.sum())} for s in order if s in per}
    stats = pct_ms(times)
    consolidated = np.array([CONSOLIDATE in d for d in split])
    by_consolidation = {k: {**pct_ms(totals[sel]), 'frames': int(sel.sum())}
                        for k, sel in (('with', consolidated), ('without', ~consolidated)) if sel.any()}
    log(f"integration: p50 {stats['median_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms over {len(times)} frames")
    for s, v in split_ms.items():
        log(f"  {s:<52} {v['median_ms']:7.1f} ms ({v['share']:.0%})")
    f0 = frames[0]
    return {'frames': len(times), 'frame_size': [DEFAULT_CAMERA.width, DEFAULT_CAMERA.height],
            'masks_per_frame': sorted({f.masks for f in frames}), 'frame_points': f0.points,
            'timed_views': len(frames), 'map_voxels': [min(sizes), max(sizes)],
            'objects': len(fusion.instances), 'confirmed': len(fusion.confirmed()),
            'frames_integrated': int(fusion.frames), 'gc': 'enabled (as in the node)',
            'ms': stats, 'fusion_ms': pct_ms(fusing), 'describe_ms': pct_ms(describe),
            'split_ms': split_ms, 'by_consolidation': by_consolidation, 'profile': profile}


# ----------------------------------------------------------------------------- 2. publishing the map

def bench_cloud(mi: MapIntegrator, repeats: int, log) -> dict:
    """map_points of ``mi``: build, serialise, deserialise (round robin, GC off), sizes."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import PointCloud2

    held: dict[str, object] = {}
    times: dict[str, list[float]] = {BUILD: [], SER: [], DESER: []}
    steps = {BUILD: lambda: held.__setitem__('msg', mi.cloud()),
             SER: lambda: held.__setitem__('bytes', serialize_message(held['msg'])),
             DESER: lambda: deserialize_message(held['bytes'], PointCloud2)}
    for fn in steps.values():  # warm-up
        fn()
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for k, fn in steps.items():
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
    finally:
        gc.enable()
    msg, raw = held['msg'], held['bytes']
    n = len(mi.fusion.map)
    stats = {k: pct_ms(v) for k, v in times.items()}
    publish = np.array(times[BUILD]) + np.array(times[SER])
    out = {'voxels': n, 'voxel_m': mi.fusion.map.voxel_size, 'points': int(msg.width * msg.height),
           'point_bytes': int(MAP_POINT_DTYPE.itemsize), 'fields': [f.name for f in msg.fields],
           'message_bytes': len(raw), 'message_mb': len(raw) / 1e6, 'bytes_per_point_on_wire': len(raw) / max(n, 1),
           'ms': stats, 'build_plus_serialize_ms': pct_ms(publish),
           'ns_per_point': {k: v['median_ms'] * 1e6 / max(n, 1) for k, v in stats.items()}}
    log(f"map_points at {n:,} voxels: build {stats[BUILD]['median_ms']:.1f} ms, serialise "
        f"{stats[SER]['median_ms']:.1f} ms, deserialise {stats[DESER]['median_ms']:.1f} ms, {len(raw) / 1e6:.1f} MB")
    return out


def objects_message_size(mi: MapIntegrator) -> dict:
    """Serialised size of the map_objects message now."""
    from rclpy.serialization import serialize_message

    msg = mi.message()
    return {'objects': len(msg.objects), 'bytes': len(serialize_message(msg))}


# ----------------------------------------------------------------------------- the run

def targets(integration: dict) -> list[dict]:
    """The issue's two integration targets as report.py's ``targets`` rows."""
    s = integration['fusion_ms']
    vox = integration['map_voxels'][1]
    spread = (f"p10-p90 {s['p10_ms']:.1f}-{s['p90_ms']:.1f} ms, {s['runs']} frames; "
              f"{integration['objects']} map objects")
    out = []
    for k, key in (('p50', 'median_ms'), ('p95', 'p95_ms')):
        out.append({'name': f"Live map: `MapIntegrator.integrate` {k} of a VGA frame with "
                            f"{'-'.join(map(str, integration['masks_per_frame']))} objects into a "
                            f"{vox / 1e3:.0f}k-voxel map (2 cm): integration + association, without "
                            f"describing the map for map_objects",
                    'limit_ms': TARGETS_MS[k], 'measured_ms': s[key], 'spread': spread,
                    'stat': k, 'met': bool(s[key] <= TARGETS_MS[k]),
                    'source': f'bench_map.py (docs/bench/{NAME}.json)'})
    return out


def run(cfg: Config, log=print) -> dict:
    machine = machine_info()
    t_start = time.perf_counter()
    room = furnished_room(np.random.default_rng(cfg.seed), num_objects=cfg.objects, half_x=cfg.room[0],
                          half_z=cfg.room[1])
    rng = np.random.default_rng(cfg.seed + 1)
    fill_frames = make_frames(room, orbit_poses(room, cfg.views, rng=np.random.default_rng(1)), cfg, rng)
    timed = make_frames(room, orbit_poses(room, cfg.timed_views, height=0.55, rng=np.random.default_rng(7)), cfg, rng)
    timed = [f for f in timed if f.masks >= cfg.masks] or timed
    log(f'{len(fill_frames)} fill and {len(timed)} timed VGA frames, {min(f.masks for f in timed)}-'
        f'{max(f.masks for f in timed)} objects each')
    stamps = Stamps()
    warm = MapIntegrator(MapSettings(), 'odom')  # compile the map's kernels before any RSS is read
    for f in fill_frames[:2]:
        warm.integrate(stamps(), f.objects, f.cloud, f.pose)
    warm.cloud()
    del warm
    settings = MapSettings()
    mi, filled = fill(settings, fill_frames, stamps, log, 'map filled')
    integration = bench_integration(cfg, mi, timed, stamps, log)
    clouds = [bench_cloud(mi, cfg.cloud_repeats, log)]
    memory = [memory_of(mi, filled)]
    objects_msg = objects_message_size(mi)
    del mi
    gc.collect()
    big, big_filled = fill(MapSettings(voxel_size=cfg.big_voxel), fill_frames, stamps, log,
                           f'map at {cfg.big_voxel * 100:g} cm filled')
    clouds.append(bench_cloud(big, cfg.cloud_repeats, log))
    memory.append(memory_of(big, big_filled))
    del big
    result = {'name': NAME, 'machine': machine, 'config': asdict(cfg), 'quick': cfg.quick,
              'settings': asdict(settings),
              'scene': {'room_m': [2 * cfg.room[0], 2 * cfg.room[1]], 'objects': cfg.objects,
                        'fill_views': cfg.views, 'camera': [DEFAULT_CAMERA.width, DEFAULT_CAMERA.height]},
              'fill': [filled, big_filled], 'integration': integration, 'map_cloud': clouds,
              'map_objects_message': objects_msg, 'memory': memory, 'targets': targets(integration)}
    result['machine']['total_seconds'] = round(time.perf_counter() - t_start, 1)
    result['machine']['speed_probe_ms_after'] = round(speed_probe(), 2)
    result['machine']['load_average_after'] = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
    return result


# ----------------------------------------------------------------------------- report

def _cells(s: dict) -> str:
    return f"{s['median_ms']:.1f} | {s['p10_ms']:.1f} | {s['p90_ms']:.1f} | {s['p95_ms']:.1f}"


def markdown(r: dict) -> str:
    """The ``## `` section for docs/BENCHMARKS.md."""
    m, c, i, s = r['machine'], r['config'], r['integration'], r['settings']
    load = ', '.join(f'{x:.1f}' for x in m.get('load_average') or [])
    load_after = ', '.join(f'{x:.1f}' for x in m.get('load_average_after') or [])
    verdict = ' '.join(f"{t['stat']} <= {t['limit_ms']:g} ms: "
                       f"{t['measured_ms']:.1f} ms, {'**met**' if t['met'] else '**missed**'}." for t in r['targets'])
    f0 = r['fill'][0]
    lines = [
        '## Live map: integration per frame, publishing the map, memory (issue 14)', '',
        f"`bench/bench_map.py` on {m['cpu']} ({m['cpu_count']} cores, load average {load} at start and "
        f"{load_after} at the end, speed probe {m['speed_probe_ms']:.1f} / {m.get('speed_probe_ms_after', 0):.1f} ms), "
        f"Python {m['python']}, numpy {m['numpy']}, commit {m['git_commit']}"
        f"{' + uncommitted changes' if m.get('uncommitted_changes') else ''}, {m['date']}"
        f"{' (quick run: small sizes)' if r['quick'] else ''}.", '',
        f"**Targets** (per frame, 2 cores): {verdict}", '',
        f"`MapIntegrator` is the map node's per-frame work without the executor (the node calls it under its lock "
        f"on its worker thread). Default `MapSettings` ({s['voxel_size'] * 100:g} cm voxels, confirm after "
        f"{s['confirm_frames']} frames, consolidation every {s['consolidate_every']} frames, tentative objects "
        f"forgotten after {s['forget_tentative_after']}). The scene: `furnished_room` of {r['scene']['room_m'][0]:g} x "
        f"{r['scene']['room_m'][1]:g} m with {c['objects']} objects (seed {c['seed']}); each frame a VGA view as the "
        'node receives it: an organised optical-frame XYZRGB PointCloud2 and an ObjectMask3DArray with the exact '
        f"`point_indices` of its {c['masks']} largest objects, both through rclpy's (de)serialisation once. One loop "
        f"of {c['views']} views filled the map to {f0['voxels']:,} voxels and {f0['objects']} objects "
        f"({f0['fill_ms']['median_ms']:.0f} ms a frame while it filled); the timed frames are {i['timed_views']} views "
        f"of a second loop 15 cm higher with {'-'.join(map(str, i['masks_per_frame']))} objects and "
        f"{i['frame_points']:,} points each, integrated in turn ({i['frames']} frames after {c['warmup']} warm-up; "
        f"the map held {i['map_voxels'][0]:,}-{i['map_voxels'][1]:,} voxels and {i['objects']} objects, "
        f"{i['confirmed']} confirmed). Garbage collection stays on, as in the node.", '',
        '### Integration of one frame', '',
        '| what | p50 ms | p10 | p90 | p95 | share |', '|---|---:|---:|---:|---:|---:|',
        f"| **`MapIntegrator.integrate`** (max {i['ms']['max_ms']:.0f} ms) | {_cells(i['ms'])} | 100 % |",
        f"| **integration + association** (integrate without describing the map: the target) | "
        f"{_cells(i['fusion_ms'])} | |",
        f"| describing the map for map_objects (readout + message) | {_cells(i['describe_ms'])} | |",
        *[f"| {k} | {_cells(v)} | {v['share']:.0%} |" for k, v in i['split_ms'].items()], '',
        'The stages are the calls `integrate` makes, timed in the same runs (share = stage time / total over all '
        'frames); `add_lifted` (world transform, map lookup, association, negative evidence, votes) is split '
        'further by `bench_fusion.py` for `add_frame`. The issue\'s targets are for the integration and the '
        'association; describing the map for map_objects (the per-voxel readout: best votes, background and '
        'stray-piece checks over every voxel; then one compiled pass for the boxes) is the cost of publishing '
        'the objects, listed apart; map_points reuses that readout. Consolidation runs every '
        f"{s['consolidate_every']} frames; " + '; '.join(
            f"the {v['frames']} frames {k} it took {v['median_ms']:.1f} ms (p95 {v['p95_ms']:.1f})"
            for k, v in i['by_consolidation'].items()) + '.', '',
        f"Where the time goes (`cProfile` of {c['profile_frames']} frame(s), top functions by own time; profiling "
        'inflates Python-heavy parts):', '',
        '| function | calls per run | own ms | cumulative ms |', '|---|---:|---:|---:|',
        *[f"| `{p['function']}` | {p['calls_per_run']:g} | {p['own_ms']:.1f} | {p['cumulative_ms']:.1f} |"
          for p in i['profile']], '',
        '### Publishing the map (map_points)', '',
        f"`MapIntegrator.cloud()` builds the map_points PointCloud2 (fields "
        f"{', '.join(r['map_cloud'][0]['fields'])}: {r['map_cloud'][0]['point_bytes']} bytes a point, one point per "
        "voxel), vectorised into the message's buffer; the node builds it under the map's lock every "
        f"`map_publish_period` ({s['map_publish_period']:g} s) while somebody subscribes, so its build time is time "
        "the worker cannot integrate. `serialize_message` is what `publish` pays in rclpy, `deserialize_message` "
        f"what a Python subscriber pays. {c['cloud_repeats']} rounds, GC off. The second map is the same room and "
        f"fill views at {c['big_voxel'] * 100:g} cm.", '',
        '| map | voxels | message MB | build ms | serialise ms | deserialise ms | build + serialise p50 / p95 ms | '
        'ns a point (build, serialise) |', '|---|---:|---:|---:|---:|---:|---:|---:|']
    for x in r['map_cloud']:
        ms, bs = x['ms'], x['build_plus_serialize_ms']
        lines.append(f"| {x['voxel_m'] * 100:g} cm | {x['voxels']:,} | {x['message_mb']:.1f} | "
                     f"{ms[BUILD]['median_ms']:.1f} | {ms[SER]['median_ms']:.1f} | {ms[DESER]['median_ms']:.1f} | "
                     f"{bs['median_ms']:.1f} / {bs['p95_ms']:.1f} | {x['ns_per_point'][BUILD]:.0f}, "
                     f"{x['ns_per_point'][SER]:.0f} |")
    om = r['map_objects_message']
    lines += [
        '', f"For comparison, the map_objects message of the filled map ({om['objects']} objects) is "
        f"{om['bytes'] / 1e3:.1f} kB serialised.", '',
        '### Memory', '',
        '| map | voxels | `bytes_per_voxel` | rows allocated | `memory_bytes()` MiB | `memory_bytes()` / voxel | '
        'RSS growth while filling MiB | RSS growth / voxel |', '|---|---:|---:|---:|---:|---:|---:|---:|',
        *[f"| {x['voxel_m'] * 100:g} cm | {x['voxels']:,} | {x['bytes_per_voxel']} B | {x['rows_allocated']:,} | "
          f"{x['memory_bytes'] / 2**20:.0f} | {x['memory_bytes_per_voxel']:.0f} B | {x['rss_growth_mb']:.0f} | "
          f"{x['rss_growth_bytes_per_voxel']:.0f} B |" for x in r['memory']], '',
        '`bytes_per_voxel` counts a voxel\'s row (key, position, colour, count, background, 4 votes); '
        '`memory_bytes()` adds the rows allocated ahead (grown by half when full) and the hash table. The RSS growth '
        'is the process\'s resident memory after filling minus before (GC collected, the map\'s kernels compiled '
        'beforehand): the map and what the allocator keeps of the frames\' temporaries.', '']
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    d = Config()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--frames', type=int, default=d.frames, help='timed integrations (default %(default)s)')
    p.add_argument('--budget', type=float, default=d.budget_s, help='stop integrating after this many s once 10 '
                   'frames ran (default %(default)s)')
    p.add_argument('--cloud-repeats', type=int, default=d.cloud_repeats,
                   help='rounds of map_points build / serialise / deserialise (default %(default)s)')
    p.add_argument('--out', default=d.out, help='output folder (default %(default)s)')
    p.add_argument('--quick', action='store_true', help='smoke run: small room, a few frames (< 1 min)')
    a = p.parse_args(argv)
    cfg = Config(frames=a.frames, budget_s=a.budget, cloud_repeats=a.cloud_repeats, out=a.out)
    if a.quick:
        cfg = Config(**{**asdict(cfg), **QUICK})

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = run(cfg, log)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f'{NAME}.json').write_text(json.dumps(result, indent=1) + '\n')
    (out / f'{NAME}.md').write_text(markdown(result))
    parts = [f"{t['stat']} {t['measured_ms']:.1f} ms "
             f"({'met' if t['met'] else 'MISSED'})" for t in result['targets']]
    log(f"targets: {'; '.join(parts)}; wrote {cfg.out}/{NAME}.json and .md")
    return 0


if __name__ == '__main__':
    sys.exit(main())
