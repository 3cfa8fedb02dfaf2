"""Soak run of vizion3d_map_node: a looped posed sequence for minutes; memory, latency and ids over time.

Starts the real ``vizion3d_map_node`` (on PATH, its own process, default parameters: world frame
``odom``, poses from TF, 2 cm voxels) and, in this process, plays what it listens to at ``--rate`` Hz for
``--duration`` s: a loop of ``--views`` posed views of a ray-cast ``furnished_room``, sent over and over
(``bench/_map_frames.py``). Per frame an organised optical-frame XYZRGB cloud on ``points``, the
ObjectMask3DArray of its exact masks (``point_indices``) on ``objects`` with the same header, and the pose
``odom`` <- ``camera_optical`` on /tf (tf2_msgs/TFMessage) at the same stamp; every stamp is the clock at
publishing. It records

- every ``map_objects`` message: its latency (receive time minus the frame's stamp), the map's ids,
  confirmed ones and voxels, by the loop its frame belonged to;
- every ``--sample-period`` s: the node's RSS (``/proc/<pid>/status`` VmRSS) and its /diagnostics values
  (integration_ms_p50 / p95, map_voxels, objects, dropped/<reason>, rss_mib, ...);

and reports whether the ids stay put over re-traversals (the objects after loop 1, after loop 3 and at the
end), the RSS once the map has saturated against the end, the latency per minute and the drops. It writes
``soak_map.json``, ``soak_map.md`` (the section of docs/BENCHMARKS.md) and ``soak_map.png`` into ``--out``;
the node's log goes to ``--logs``/node.log.

    source scripts/env.sh
    python bench/soak_map.py                          # 10 minutes at 15 Hz
    python bench/soak_map.py --quick --out /tmp/soak  # 60 s
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, speed_probe  # noqa: E402
from _map_frames import CAMERA, WORLD, MapFrame, make_frame, pose_transform, stamp  # noqa: E402
from _node_io import NodeRun, matched_alike  # noqa: E402
from bench_fusion import WORLD_SHIFT  # noqa: E402
from soak import PacedPublisher, _wait, rss_mb  # noqa: E402

NAME = 'soak_map'
STATUS_SUFFIX = 'vizion3d_map_node: map'
#: What "flat" means in the verdicts: RSS growth from saturation to the end, and the latency's rise.
RSS_FLAT_MIB = 25.0
LATENCY_FLAT_RATIO = 1.5
LATENCY_FLAT_MS = 5.0


@dataclass
class SoakMapConfig:
    """What one soak run does (the command-line options)."""

    duration: float = 600.0
    rate: float = 15.0
    views: int = 12
    camera: str = 'small'  # 'small' (320x240) or 'vga' (640x480)
    objects: int = 8
    room: tuple[float, float] = (2.5, 2.5)  # half extents (x, z) in metres
    seed: int = 5
    sample_period: float = 2.0
    domain: int | None = None
    startup_timeout: float = 120.0
    node_params: list[str] = field(default_factory=list)
    out: str = 'docs/bench'
    logs: str = 'out/soak_map'
    quick: bool = False


# ----------------------------------------------------------------------------- frames

def build_loop(cfg: SoakMapConfig) -> list[MapFrame]:
    """The looped sequence: ``cfg.views`` views on an orbit through the room, exact masks, the world shifted."""
    from vizion3d_ros.core.synthetic.multiview import furnished_room, orbit_poses
    from vizion3d_ros.core.synthetic.scenes import DEFAULT_CAMERA, SMALL_CAMERA

    cam = SMALL_CAMERA if cfg.camera == 'small' else DEFAULT_CAMERA
    room = furnished_room(np.random.default_rng(cfg.seed), num_objects=cfg.objects, half_x=cfg.room[0],
                          half_z=cfg.room[1])
    rng = np.random.default_rng(cfg.seed + 1)
    return [make_frame(room, p, cam, rng, shift=WORLD_SHIFT)
            for p in orbit_poses(room, cfg.views, rng=np.random.default_rng(1))]


# ----------------------------------------------------------------------------- the client

class MapSoakClient(PacedPublisher):
    """Publishes the loop with its TF and records map_objects and the map's diagnostics (spun in a thread)."""

    def __init__(self, frames: list[MapFrame]) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import PointCloud2
        from tf2_msgs.msg import TFMessage

        from vizion3d_ros.msg import MapObject3DArray, ObjectMask3DArray

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.node = Node('vizion3d_soak_map')
        self.frames = frames
        self.tf_pub = self.node.create_publisher(TFMessage, '/tf', QoSProfile(depth=100))
        self.cloud_pub = self.node.create_publisher(PointCloud2, 'points', reliable)
        self.objects_pub = self.node.create_publisher(ObjectMask3DArray, 'objects', reliable)
        self.node.create_subscription(MapObject3DArray, 'map_objects', self._on_map,
                                      QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag,
                                      QoSProfile(depth=20, reliability=ReliabilityPolicy.BEST_EFFORT))
        self._tf_type = TFMessage
        self.lock = threading.Lock()
        self.t0_ns: int | None = None
        self.sent = 0
        self.skipped = 0
        self.frame_of: dict[int, int] = {}  # stamp ns -> frame number sent
        self.maps: list[tuple[float, float, int, int, int, int, int]] = []  # see _on_map
        self.by_loop: dict[int, dict] = {}  # loop sent -> the map after the last received frame of that loop
        self.integrated_views = np.zeros(len(frames), np.int64)  # map_objects received per view of the loop
        self.by_traversal: dict[int, dict] = {}  # k -> the map once every view was integrated k times
        self.latest: dict | None = None
        self.merges: list[dict] = []  # the merges map_objects reported, with the frames integrated then
        self.max_id = 0
        self.status: dict | None = None
        self.statuses = 0
        self._stop = threading.Event()

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def matched(self) -> bool:
        pubs = (self.cloud_pub, self.objects_pub)
        return (all(matched_alike(self.node, p) for p in pubs) and self.tf_pub.get_subscription_count() > 0
                and self.node.count_publishers('map_objects') > 0)

    def _on_map(self, msg) -> None:
        from vizion3d_ros.msg import MapObject3D
        from vizion3d_ros.ros.stamps import stamp_ns

        recv = self.now_ns()
        ns = stamp_ns(msg.header)
        ids = sorted(int(o.id) for o in msg.objects if o.state != MapObject3D.STATE_DYNAMIC)
        confirmed = sorted(int(o.id) for o in msg.objects if o.state == MapObject3D.STATE_CONFIRMED)
        with self.lock:
            k = self.frame_of.get(ns, -1)
            loop = k // len(self.frames) if k >= 0 else -1
            self.max_id = max([self.max_id, *ids])
            snap = {'loop': loop, 'frame': k, 'ids': ids, 'confirmed': confirmed, 'max_id_so_far': self.max_id,
                    'frames_integrated': int(msg.frames_integrated), 'map_voxels': int(msg.map_voxels),
                    'merged_from': [int(x) for x in msg.merged_from]}
            self.latest = snap
            if len(msg.merged_from):
                self.merges.append({'frames_integrated': int(msg.frames_integrated), 'pairs': [
                    [int(a), int(b)] for a, b in zip(msg.merged_from, msg.merged_into)]})
            if loop >= 0:
                self.by_loop[loop] = snap
                self.integrated_views[k % len(self.frames)] += 1
                self.by_traversal.setdefault(int(self.integrated_views.min()), snap)
            t0 = self.t0_ns or recv
            self.maps.append(((recv - t0) / 1e9, (recv - ns) / 1e6, loop, len(ids), len(confirmed),
                              int(msg.map_voxels), int(msg.frames_integrated)))

    def _on_diag(self, msg) -> None:
        for s in msg.status:
            if s.name.endswith(STATUS_SUFFIX):
                with self.lock:
                    self.status = {'level': s.level[0] if isinstance(s.level, (bytes, bytearray)) else int(s.level),
                                   'message': s.message, 'values': {kv.key: kv.value for kv in s.values}}
                    self.statuses += 1

    def publish_frame(self, k: int) -> int:
        """Frame ``k`` of the loop stamped now: its TF, then cloud and objects; returns the stamp (ns)."""
        f = self.frames[k % len(self.frames)]
        ns = self.now_ns()
        t = stamp(f, ns)
        with self.lock:
            self.frame_of[ns] = k
        self.tf_pub.publish(self._tf_type(transforms=[pose_transform(f.pose, t, WORLD, CAMERA)]))
        self.cloud_pub.publish(f.cloud)
        self.objects_pub.publish(f.objects)
        return ns

    def snapshot(self) -> dict:
        with self.lock:
            return {'status': self.status, 'latest': self.latest, 'maps': len(self.maps), 'sent': self.sent}

    def stop(self) -> None:
        self._stop.set()


def _number(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float('nan')


def _drops(values: dict[str, str]) -> dict[str, int]:
    return {k.split('/', 1)[1]: int(_number(v)) for k, v in values.items() if k.startswith('dropped/')}


def _accounted(client: MapSoakClient) -> int:
    """Frames the node integrated or dropped as frames (unpaired counts messages)."""
    st = client.snapshot()['status']
    if st is None:
        return 0
    v = st['values']
    return int(_number(v.get('frames_integrated', 0))) + sum(n for k, n in _drops(v).items() if k != 'unpaired')


# ----------------------------------------------------------------------------- the run

def run_soak(cfg: SoakMapConfig, log=print) -> dict:
    """Run the soak described by ``cfg``; returns the results (also written to ``cfg.out``)."""
    os.environ['ROS_DOMAIN_ID'] = str(cfg.domain if cfg.domain is not None else random.randint(1, 100))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    out, logs = Path(cfg.out), Path(cfg.logs)
    out.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    frames = build_loop(cfg)
    machine = machine_info()
    params = dict(p.partition(':=')[::2] for p in cfg.node_params)
    node_log = logs / 'node.log'
    cam = frames[0].cloud
    log(f"soak_map: {cfg.duration:g} s at {cfg.rate:g} Hz, a loop of {len(frames)} {cam.width}x{cam.height} views "
        f"({', '.join(str(f.masks) for f in frames)} objects), ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}; "
        f'node log {node_log}')
    node = NodeRun(node_log, params=params, executable='vizion3d_map_node')
    rclpy.init()
    client = MapSoakClient(frames)
    executor = SingleThreadedExecutor()
    executor.add_node(client.node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    samples: list[dict] = []
    exit_code = None
    failure = None
    try:
        node.wait_for_log('map ready', cfg.startup_timeout)
        if not _wait(client.matched, 60, node.proc):
            raise RuntimeError(f'the map node did not match the client in time:\n{node.log()[-3000:]}')
        time.sleep(1.5)  # input_reliability auto: let the node settle on reliable before large messages
        rss_start = rss_mb(node.pid)
        publisher = threading.Thread(target=client.publish_for, args=(cfg.duration, cfg.rate), daemon=True)
        publisher.start()
        start = time.monotonic()
        next_report = start + 30
        while publisher.is_alive():
            samples.append(sample(client, node.pid, time.monotonic() - start))
            if not node.alive:
                failure = f'the node exited with {node.proc.returncode} at {samples[-1]["t"]:.0f} s'
                client.stop()
                break
            if time.monotonic() >= next_report:
                log(describe(samples[-1]))
                next_report += 30
            publisher.join(timeout=cfg.sample_period)
        publisher.join()
        sent = client.sent
        if failure is None:
            _wait(lambda: _accounted(client) >= sent, 15)
            seen = client.statuses
            _wait(lambda: client.statuses >= seen + 2, 10)
            samples.append(sample(client, node.pid, time.monotonic() - start))
    finally:
        client.stop()
        exit_code = node.stop()
        executor.shutdown()
        client.node.destroy_node()
        rclpy.try_shutdown()
    result = summarize(cfg, client, samples, sent, machine, frames)
    result['node'] = {'command': node.cmd, 'exit_code': exit_code, 'log': str(node_log),
                      'rss_mb_before_stream': rss_start, 'failure': failure,
                      'log_errors': [ln for ln in node.log().splitlines() if 'ERROR' in ln or 'Traceback' in ln][:40]}
    result['machine']['speed_probe_ms_after'] = round(speed_probe(), 2)
    result['machine']['load_average_after'] = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
    (out / f'{NAME}.json').write_text(dump(result))
    (out / f'{NAME}.md').write_text(markdown(result))
    plotted = plot(result, out / f'{NAME}.png')
    log(markdown(result))
    log(f"wrote {out / f'{NAME}.json'}, {out / f'{NAME}.md'}" + (f", {out / f'{NAME}.png'}" if plotted else ''))
    return result


def dump(result: dict) -> str:
    """``result`` as JSON, indented, but each time series on one line (9000 frames of 10 minutes)."""
    text = json.dumps({k: v for k, v in result.items() if k != 'series'}, indent=1)
    series = ',\n'.join(f'  {json.dumps(k)}: {json.dumps(v, separators=(",", ":"))}'
                         for k, v in result.get('series', {}).items())
    return text[:-2] + ',\n "series": {\n' + series + '\n }\n}\n'


def sample(client: MapSoakClient, pid: int, t: float) -> dict:
    """One row of the time series: node RSS, the diagnostics' numbers, the latest map."""
    snap = client.snapshot()
    values = (snap['status'] or {}).get('values', {})
    latest = snap['latest'] or {}
    return {'t': t, 'rss_mb': rss_mb(pid), 'sent': snap['sent'], 'maps_received': snap['maps'],
            'loop': snap['sent'] // len(client.frames),
            'diag': {k: v if k == 'state' else _number(v) for k, v in values.items()},
            'objects': len(latest.get('ids', [])), 'confirmed': len(latest.get('confirmed', [])),
            'ids': latest.get('ids', []), 'max_id': latest.get('max_id_so_far', 0)}


def describe(s: dict) -> str:
    d = s['diag']
    return (f"  {s['t']:5.0f} s: loop {s['loop']}, sent {s['sent']}, integrated "
            f"{d.get('frames_integrated', float('nan')):.0f}, node RSS {s['rss_mb']:.0f} MiB, voxels "
            f"{d.get('map_voxels', float('nan')):.0f}, objects {s['objects']} ({s['confirmed']} confirmed), "
            f"integration p50/p95 {d.get('integration_ms_p50', float('nan')):.1f}/"
            f"{d.get('integration_ms_p95', float('nan')):.1f} ms")


# ----------------------------------------------------------------------------- summary

def saturation_time(samples: list[dict], tolerance: float = 0.01) -> float:
    """The first sample time from which the map's voxel count stays within ``tolerance`` of its final value."""
    t = np.array([s['t'] for s in samples])
    v = np.array([s['diag'].get('map_voxels', np.nan) for s in samples], np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return float('nan')
    t, v = t[ok], v[ok]
    off = np.flatnonzero(np.abs(v - v[-1]) > tolerance * max(v[-1], 1.0))
    return float(t[0]) if not len(off) else float(t[min(off[-1] + 1, len(t) - 1)])


def rss_summary(samples: list[dict], t_sat: float) -> dict:
    """RSS at saturation (median of the samples of the 20 s after it), at the end (last 5), growth, slope."""
    t = np.array([s['t'] for s in samples])
    mb = np.array([s['rss_mb'] for s in samples], np.float64)
    if not len(mb):
        return {}
    at_sat = mb[(t >= t_sat) & (t <= t_sat + 20)] if np.isfinite(t_sat) else mb[:0]
    sat = float(np.nanmedian(at_sat)) if len(at_sat) else float('nan')
    end = float(np.nanmedian(mb[-5:]))
    after = (t >= t_sat) & np.isfinite(mb)
    slope = float(np.polyfit(t[after], mb[after], 1)[0] * 60) if after.sum() >= 3 else float('nan')
    return {'first': float(mb[0]), 'saturation_t': t_sat, 'at_saturation': sat, 'end': end,
            'max': float(np.nanmax(mb)),
            'growth_after_saturation': end - sat, 'slope_after_saturation_mb_per_min': slope}


def per_minute(cfg: SoakMapConfig, maps: list[tuple], samples: list[dict]) -> list[dict]:
    """Per minute of the stream: end-to-end latency of map_objects and the node's own integration p50/p95."""
    minutes = max(int(np.ceil(cfg.duration / 60.0)), 1)
    lat = np.array([(m[0], m[1]) for m in maps], np.float64).reshape(-1, 2)
    rows = []
    for k in range(minutes):
        lo, hi = 60.0 * k, min(60.0 * (k + 1), cfg.duration)
        sel = lat[(lat[:, 0] >= lo) & (lat[:, 0] < hi), 1]
        ss = [s for s in samples if lo <= s['t'] < hi]
        p50 = [s['diag'].get('integration_ms_p50', np.nan) for s in ss]
        p95 = [s['diag'].get('integration_ms_p95', np.nan) for s in ss]
        integrated = [s['diag'].get('frames_integrated', np.nan) for s in ss]
        rows.append({
            'minute': k + 1, 'from_s': lo, 'to_s': hi, 'map_objects_received': int(len(sel)),
            'latency_ms_p50': float(np.percentile(sel, 50)) if len(sel) else float('nan'),
            'latency_ms_p95': float(np.percentile(sel, 95)) if len(sel) else float('nan'),
            'integration_ms_p50': float(np.nanmedian(p50)) if np.isfinite(p50).any() else float('nan'),
            'integration_ms_p95': float(np.nanmedian(p95)) if np.isfinite(p95).any() else float('nan'),
            'integration_ms_p95_max': float(np.nanmax(p95)) if np.isfinite(p95).any() else float('nan'),
            'frames_integrated': float(np.nanmax(integrated)) if np.isfinite(integrated).any() else float('nan'),
            'rss_mb': float(np.nanmedian([s['rss_mb'] for s in ss])) if ss else float('nan')})
    return rows


def id_report(by_traversal: dict[int, dict], by_loop: dict[int, dict], latest: dict | None) -> dict:
    """The map's objects after the 1st and 3rd traversal and at the end, and whether they are the same.

    Traversal k is complete once every view of the loop has been integrated k times (the node skips frames as
    superseded when it falls behind, e.g. on its first frames, so the k-th loop sent may leave views out);
    ``sent_loop_*`` are the maps after the last frame of the 1st and 3rd loop *sent* that the node answered.
    """
    keys = ('frame', 'ids', 'confirmed', 'max_id_so_far', 'frames_integrated', 'map_voxels')

    def pick(snap: dict | None) -> dict | None:
        return None if snap is None else {k: snap[k] for k in keys}

    one, three, end = pick(by_traversal.get(1)), pick(by_traversal.get(3)), pick(latest)
    have = one is not None and three is not None and end is not None
    same_confirmed = have and one['confirmed'] == three['confirmed'] == end['confirmed']
    same_ids = have and one['ids'] == three['ids'] == end['ids']
    no_new_ids = have and one['max_id_so_far'] == end['max_id_so_far']
    return {'after_traversal_1': one, 'after_traversal_3': three, 'end': end,
            'traversals': max(by_traversal, default=0),
            'sent_loop_1': pick(by_loop.get(0)), 'sent_loop_3': pick(by_loop.get(2)),
            'confirmed_equal': bool(same_confirmed), 'ids_equal': bool(same_ids), 'no_new_ids': bool(no_new_ids),
            'max_id_after_traversal_1': one['max_id_so_far'] if one else None,
            'max_id_end': end['max_id_so_far'] if end else None}


def summarize(cfg: SoakMapConfig, client: MapSoakClient, samples: list[dict], sent: int, machine: dict,
              frames: list[MapFrame]) -> dict:
    """Everything the run measured, with the verdicts."""
    with client.lock:
        maps, by_loop, latest = list(client.maps), dict(client.by_loop), client.latest
        by_traversal, merges = dict(client.by_traversal), list(client.merges)
        status = client.status or {'values': {}, 'level': None, 'message': ''}
    values = status['values']
    drops = _drops(values)
    integrated = int(_number(values.get('frames_integrated', -1)))
    t_sat = saturation_time(samples)
    rss = rss_summary(samples, t_sat)
    minutes = per_minute(cfg, maps, samples)
    ids = id_report(by_traversal, by_loop, latest)
    full = [m for m in minutes if m['to_s'] - m['from_s'] >= 30 and np.isfinite(m['integration_ms_p50'])]
    first, last = (full[0], full[-1]) if full else (None, None)
    latency_flat = bool(first and last['integration_ms_p50'] <= LATENCY_FLAT_RATIO * first['integration_ms_p50']
                        + LATENCY_FLAT_MS)
    rss_flat = bool(np.isfinite(rss.get('growth_after_saturation', np.nan))
                    and rss['growth_after_saturation'] <= RSS_FLAT_MIB)
    lat = np.array([m[1] for m in maps], np.float64)
    return {
        'name': NAME, 'config': asdict(cfg), 'quick': cfg.quick, 'machine': machine,
        'sequence': {'views': len(frames), 'size': [int(frames[0].cloud.width), int(frames[0].cloud.height)],
                     'objects_per_view': [f.masks for f in frames], 'points_per_view': [f.points for f in frames],
                     'room_objects': cfg.objects, 'loop_s': len(frames) / cfg.rate},
        'frames': {'sent': sent, 'publisher_skipped_periods': client.skipped, 'sent_rate_hz': sent / cfg.duration,
                   'loops_sent': sent / len(frames), 'integrated': integrated,
                   'integrated_rate_hz': integrated / cfg.duration, 'map_objects_received': len(maps),
                   'drops': drops,
                   'unaccounted': sent - integrated - sum(n for k, n in drops.items() if k != 'unpaired')},
        'final_status': {'level': status['level'], 'message': status['message'], 'values': values},
        'ids': ids, 'merges': merges, 'rss_mb': rss, 'per_minute': minutes,
        'latency_ms': {'first': float(lat[0]) if len(lat) else float('nan'),
                       'p50': float(np.percentile(lat, 50)) if len(lat) else float('nan'),
                       'p95': float(np.percentile(lat, 95)) if len(lat) else float('nan'),
                       'max': float(lat.max()) if len(lat) else float('nan')},
        'verdicts': {'ids_stable': ids['confirmed_equal'] and ids['ids_equal'] and ids['no_new_ids'],
                     'rss_flat': rss_flat, 'latency_flat': latency_flat,
                     'rss_flat_limit_mib': RSS_FLAT_MIB,
                     'latency_flat_rule': f'last minute p50 <= {LATENCY_FLAT_RATIO:g} x first minute p50 + '
                                          f'{LATENCY_FLAT_MS:g} ms'},
        'series': {'samples': [{k: v for k, v in s.items() if k != 'ids'} for s in samples],
                   'map_objects': [[round(m[0], 3), round(m[1], 2), *m[2:]] for m in maps]},
    }


# ----------------------------------------------------------------------------- reports

def _f(x, spec: str = '.1f') -> str:
    return 'n/a' if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def _ids(s: dict | None) -> str:
    if s is None:
        return 'n/a (no map_objects for that loop)'
    return f"{len(s['ids'])} ids {s['ids']}; {len(s['confirmed'])} confirmed {s['confirmed']}"


def _merges(merges: list[dict]) -> str:
    shown = '; '.join(f"{m['frames_integrated']}: " + ', '.join(f'{a} -> {b}' for a, b in m['pairs'])
                      for m in merges[:10])
    return (shown + (f'; ... ({len(merges)} in all)' if len(merges) > 10 else '')) or 'none'


def _at(s: dict | None) -> str:
    return '' if s is None else f", {s['frames_integrated']} frames integrated"


def markdown(r: dict) -> str:
    """The ``## `` section for docs/BENCHMARKS.md."""
    c, m, f, q, ids, rss, v = (r['config'], r['machine'], r['frames'], r['sequence'], r['ids'], r['rss_mb'],
                               r['verdicts'])
    load = ', '.join(f'{x:.1f}' for x in m.get('load_average') or [])
    load_after = ', '.join(f'{x:.1f}' for x in m.get('load_average_after') or [])
    drops = ', '.join(f'{k} {n}' for k, n in sorted(f['drops'].items())) or 'none'
    yes = {True: 'yes', False: '**NO**'}
    node = r['node']
    lines = [
        f"## Live map soak: {c['duration']:g} s of a looped sequence at {c['rate']:g} Hz (issue 14)", '',
        f"`bench/soak_map.py` (not part of `make bench`: `python bench/soak_map.py [--duration 600] [--rate 15]`) on "
        f"{m['cpu']} ({m['cpu_count']} cores, load average {load} at start and {load_after} at the end, speed probe "
        f"{m['speed_probe_ms']:.1f} / {_f(m.get('speed_probe_ms_after'))} ms), commit {m['git_commit']}"
        f"{' + uncommitted changes' if m.get('uncommitted_changes') else ''}, {m['date']}"
        f"{' (quick run)' if r['quick'] else ''}.", '',
        f"The real `vizion3d_map_node` (own process, default parameters: world frame `odom`, poses from TF, 2 cm "
        f"voxels) gets a loop of {q['views']} posed {q['size'][0]}x{q['size'][1]} views of a ray-cast "
        f"`furnished_room` ({2 * c['room'][0]:g} x {2 * c['room'][1]:g} m, {q['room_objects']} objects), sent over "
        f"and over at {c['rate']:g} Hz (a loop every {q['loop_s']:.1f} s): per frame the organised optical-frame "
        f"XYZRGB cloud on `points`, its exact masks as an ObjectMask3DArray "
        f"({min(q['objects_per_view'])}-{max(q['objects_per_view'])} objects with `point_indices`) on `objects` "
        'and the pose `odom` <- `camera_optical` on /tf, all with the '
        'stamp of the clock when sent. The resolution is the small camera so that 2 cores hold the rate with the '
        'publisher in the same machine.', '',
        '| check | result |', '|---|---|',
        '| ids stable over re-traversals (map objects after traversal 1 == after traversal 3 == end, no new id '
        f"after traversal 1) | {yes[v['ids_stable']]} |",
        f"| RSS flat after the map saturates (growth <= {v['rss_flat_limit_mib']:g} MiB) | {yes[v['rss_flat']]} |",
        f"| integration latency flat ({v['latency_flat_rule']}) | {yes[v['latency_flat']]} |", '',
        '| measure | value |', '|---|---|',
        f"| frames sent (publisher skipped periods) | {f['sent']} ({f['sent_rate_hz']:.1f} Hz, "
        f"{f['loops_sent']:.0f} loops; {f['publisher_skipped_periods']} skipped) |",
        f"| frames integrated (node) / map_objects received | {f['integrated']} ({f['integrated_rate_hz']:.1f} Hz) / "
        f"{f['map_objects_received']} |",
        f"| drops by reason (node) | {drops} |",
        f"| frames neither integrated nor counted as dropped | {f['unaccounted']} |",
        f"| map after traversal 1 (every view integrated once{_at(ids['after_traversal_1'])}) | "
        f"{_ids(ids['after_traversal_1'])} |",
        f"| map after traversal 3 (every view 3 times{_at(ids['after_traversal_3'])}) | "
        f"{_ids(ids['after_traversal_3'])} |",
        f"| map at the end ({ids['traversals']} traversals{_at(ids['end'])}) | {_ids(ids['end'])} |",
        f"| highest id after traversal 1 / at the end | {ids['max_id_after_traversal_1']} / {ids['max_id_end']} |",
        f"| for comparison: the map once the 1st / 3rd loop *sent* was answered (1st{_at(ids['sent_loop_1'])}) | "
        f"{_ids(ids['sent_loop_1'])} / {_ids(ids['sent_loop_3'])} |",
        f"| merges map_objects reported (frames integrated then: from -> into) | {_merges(r['merges'])} |",
        f"| map voxels at the end | {_f(r['final_status']['values'].get('map_voxels'), 's')} |",
        f"| node RSS before the stream / at saturation ({_f(rss.get('saturation_t'), '.0f')} s) / end / max | "
        f"{_f(node['rss_mb_before_stream'], '.0f')} / {_f(rss.get('at_saturation'), '.0f')} / "
        f"{_f(rss.get('end'), '.0f')} / {_f(rss.get('max'), '.0f')} MiB |",
        f"| node RSS growth after saturation (end - saturation; slope) | {_f(rss.get('growth_after_saturation'))} MiB; "
        f"{_f(rss.get('slope_after_saturation_mb_per_min'), '.2f')} MiB/min |",
        f"| map_objects latency (receive - stamp): first frame; p50 / p95 / max | "
        f"{_f(r['latency_ms']['first'], '.0f')}; {_f(r['latency_ms']['p50'])} / "
        f"{_f(r['latency_ms']['p95'])} / {_f(r['latency_ms']['max'], '.0f')} ms |",
        f"| node exit code after SIGTERM | {node['exit_code']}{'; ' + node['failure'] if node['failure'] else ''} |",
        '', 'Per minute: the node\'s integration time (its /diagnostics `integration_ms_p50` / `_p95` over its last '
        '200 frames, median of the samples of the minute; the p95 column also gives the highest sample) and the '
        'latency of map_objects as received here (receive time - frame stamp: TF wait, pairing, integration, '
        'transport):', '',
        '| minute | integrated | integration p50 ms | integration p95 ms (max) | map_objects | latency p50 ms | '
        'latency p95 ms | node RSS MiB |', '|---:|---:|---:|---:|---:|---:|---:|---:|',
        *[f"| {x['minute']} | {_f(x['frames_integrated'], '.0f')} | {_f(x['integration_ms_p50'])} | "
          f"{_f(x['integration_ms_p95'])} ({_f(x['integration_ms_p95_max'])}) | {x['map_objects_received']} | "
          f"{_f(x['latency_ms_p50'])} | {_f(x['latency_ms_p95'])} | {_f(x['rss_mb'], '.0f')} |"
          for x in r['per_minute']], '']
    if node['log_errors']:
        lines += ['Error lines in the node\'s log (first ones):', '', '```',
                  *[ln[:300] for ln in node['log_errors'][:10]], '```', '']
    lines += [f'![RSS, integration time and map size over the soak](bench/{NAME}.png)', '']
    return '\n'.join(lines)


def plot(r: dict, path: Path) -> bool:
    """RSS, integration p50/p95 and map size over time as a PNG; False when matplotlib is not importable."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    s = r['series']['samples']
    t = np.array([x['t'] for x in s])
    maps = np.array(r['series']['map_objects'], np.float64).reshape(-1, 7)
    fig, (a, b, c) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    a.plot(t, [x['rss_mb'] for x in s], lw=1, label='node RSS (VmRSS)')
    a.plot(t, [x['diag'].get('rss_mib', np.nan) for x in s], lw=1, ls='--', label="node's rss_mib (diagnostics)")
    sat = r['rss_mb'].get('saturation_t')
    if sat is not None and np.isfinite(sat):
        a.axvline(sat, color='grey', lw=0.8, ls=':', label='map saturated')
    a.set_ylabel('MiB')
    a.legend(fontsize=8)
    b.plot(maps[:, 0], maps[:, 1], '.', ms=1.5, alpha=0.4, color='0.6', label='map_objects latency')
    b.plot(t, [x['diag'].get('integration_ms_p50', np.nan) for x in s], lw=1.2, label='integration p50')
    b.plot(t, [x['diag'].get('integration_ms_p95', np.nan) for x in s], lw=1.2, label='integration p95')
    b.set_ylabel('ms')
    b.set_yscale('log')
    b.legend(fontsize=8)
    c.plot(t, [x['diag'].get('map_voxels', np.nan) for x in s], lw=1, color='C2', label='map voxels')
    c.set_ylabel('voxels')
    c2 = c.twinx()
    c2.plot(t, [x['objects'] for x in s], lw=1, color='C3', label='objects')
    c2.plot(t, [x['confirmed'] for x in s], lw=1, ls='--', color='C4', label='confirmed')
    c2.set_ylabel('objects')
    c2.legend(fontsize=8, loc='lower right')
    c.set_xlabel('time since the stream started (s)')
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
    cfg = r['config']
    fig.suptitle(f"vizion3d_map_node soak: {cfg['rate']:g} Hz, loop of {r['sequence']['views']} "
                 f"{r['sequence']['size'][0]}x{r['sequence']['size'][1]} views")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit status 1 when the node failed or the ids were not stable."""
    d = SoakMapConfig()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--duration', type=float, default=d.duration, help='seconds of streaming (default %(default)s)')
    p.add_argument('--rate', type=float, default=d.rate, help='frames per second (default %(default)s)')
    p.add_argument('--views', type=int, default=d.views, help='views in the loop (default %(default)s)')
    p.add_argument('--camera', choices=('small', 'vga'), default=d.camera,
                   help='320x240 (small, default) or 640x480 views')
    p.add_argument('--sample-period', type=float, default=d.sample_period, help='seconds between samples')
    p.add_argument('--domain', type=int, default=None, help='ROS_DOMAIN_ID (default: random in 1-100)')
    p.add_argument('--node-param', action='append', default=[], metavar='NAME:=VALUE',
                   help='node parameter other than its default (repeatable)')
    p.add_argument('--out', default=d.out, help='output folder (default %(default)s)')
    p.add_argument('--logs', default=d.logs, help='folder of the node log (default %(default)s)')
    p.add_argument('--quick', action='store_true', help='60 s instead of --duration')
    a = p.parse_args(argv)
    cfg = SoakMapConfig(duration=60.0 if a.quick else a.duration, rate=a.rate, views=a.views, camera=a.camera,
                        sample_period=a.sample_period, domain=a.domain, node_params=a.node_param, out=a.out,
                        logs=a.logs, quick=a.quick)
    r = run_soak(cfg)
    ok = r['node']['exit_code'] == 0 and r['node']['failure'] is None
    print(f"ids stable: {r['verdicts']['ids_stable']}; RSS flat: {r['verdicts']['rss_flat']}; latency flat: "
          f"{r['verdicts']['latency_flat']}; node exit code {r['node']['exit_code']}", file=sys.stderr)
    return 0 if ok and r['verdicts']['ids_stable'] else 1


if __name__ == '__main__':
    sys.exit(main())
