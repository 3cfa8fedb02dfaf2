"""Soak run of vizion3d_node: a camera-like 30 Hz VGA stream for minutes, with memory and latency over time.

Starts the real node (``vizion3d_node`` on PATH, in its own process and namespace) and publishes
image + camera_info + organised XYZRGB cloud at ``--rate`` Hz, stamped with the clock at publishing,
for ``--duration`` seconds. The frames are the real TUM RGB-D frame (``--frame``, as for
``vizion3d_player``) in ``--variants`` horizontally shifted copies, sent in turn, so the detections
move a little from frame to frame. It records

- the node's resident memory (psutil, else ``/proc/<pid>/status``) every ``--sample-period`` s;
- the end-to-end latency of every ``objects`` message: receive time minus its header stamp (the
  stamp the frame was published with), so transport, synchronisation, waiting, inference, lifting
  and publishing are all in it;
- frames sent, outputs received, and the node's own counters from /diagnostics (frames processed,
  drops per reason: with a model slower than the camera most frames are ``superseded``).

and writes ``soak.json``, ``soak.md`` (summary) and, where matplotlib can be imported, ``soak.png``
(memory and latency over time) into ``--out``. The node log goes to ``--out``/node.log.

    source scripts/env.sh
    python bench/soak.py --duration 300 --rate 30 --out out/soak

Defaults favour a fast model: ``../shared/models/yolov8n-seg-coco.pt`` at ``--imgsz 320`` on the CPU.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from _node_io import NodeRun, matched_alike

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('VIZION3D_SHARED', ROOT.parent / 'shared'))
DEFAULT_MODEL = SHARED / 'models' / 'yolov8n-seg-coco.pt'


@dataclass
class SoakConfig:
    """What one soak run does (the command-line options)."""

    duration: float = 60.0
    rate: float = 30.0
    model: str = str(DEFAULT_MODEL)
    imgsz: int = 320
    device: str = 'cpu'
    frame: str | None = None
    variants: int = 8
    input_reliability: str = 'auto'
    namespace: str = '/soak'
    sample_period: float = 1.0
    startup_timeout: float = 300.0
    node_params: list[str] = field(default_factory=list)
    out: str = 'out/soak'


# ----------------------------------------------------------------------------- measurements

def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (NaN when the process is gone)."""
    try:
        import psutil
        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - psutil.NoSuchProcess and friends
        return float('nan')
    try:
        m = re.search(r'VmRSS:\s+(\d+) kB', Path(f'/proc/{pid}/status').read_text())
    except OSError:
        return float('nan')
    return int(m.group(1)) / 1024 if m else float('nan')


def _median(values) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(np.median(values)) if values else float('nan')


def summarize(rss: list[tuple[float, float]], latency: list[tuple[float, float]], duration: float) -> dict:
    """Memory and latency numbers of a run: overall, per quarter, and growth over the second half.

    ``rss``: (seconds since publishing started, MiB); ``latency``: (receive time in the same seconds, ms).
    """
    out: dict = {}
    r = np.array(rss, dtype=np.float64).reshape(-1, 2)
    if len(r):
        t, mb = r[:, 0], r[:, 1]
        half = duration / 2
        mid = mb[np.argsort(np.abs(t - half))[:5]]
        end = mb[t >= t.max() - 5 * max(np.median(np.diff(t)) if len(t) > 1 else 1.0, 1e-3)]
        second = r[t >= half]
        slope = float(np.polyfit(second[:, 0], second[:, 1], 1)[0] * 60) if len(second) >= 3 else float('nan')
        out['rss_mb'] = {
            'first': float(mb[0]), 'mid': _median(mid), 'end': _median(end), 'max': float(np.nanmax(mb)),
            'second_half_growth': _median(end) - _median(mid),
            'second_half_max_over_mid': float(np.nanmax(second[:, 1])) - _median(mid) if len(second) else float('nan'),
            'second_half_slope_mb_per_min': slope,
        }
    lat = np.array(latency, dtype=np.float64).reshape(-1, 2)
    if len(lat):
        t, ms = lat[:, 0], lat[:, 1]
        quarters = [ms[(t >= duration * q / 4) & (t < duration * (q + 1) / 4)] for q in range(4)]
        out['latency_ms'] = {
            'median': float(np.median(ms)), 'p90': float(np.percentile(ms, 90)), 'max': float(ms.max()),
            'quarter_medians': [float(np.median(q)) if len(q) else float('nan') for q in quarters],
            'quarter_p90s': [float(np.percentile(q, 90)) if len(q) else float('nan') for q in quarters],
            'quarter_counts': [int(len(q)) for q in quarters],
        }
    return out


def machine_info() -> dict:
    """Where and when the numbers were taken."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True,
                                  check=False).stdout.strip()
        except OSError:
            return ''
    cpu = platform.processor()
    try:
        cpu = next(line.split(':', 1)[1].strip() for line in Path('/proc/cpuinfo').read_text().splitlines()
                   if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'platform': platform.platform(), 'cpu': cpu, 'cpu_count': os.cpu_count(),
        'load_average_at_start': list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
        'memory_gb': round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1),
        'python': platform.python_version(), 'git_commit': git('rev-parse', '--short', 'HEAD'),
        'node_modified_since_commit': bool(git('status', '--porcelain', '--', 'vizion3d_ros')),
    }


# ----------------------------------------------------------------------------- frames

def build_frames(frame_arg: str | None, variants: int):
    """``variants`` (Image, CameraInfo, PointCloud2) of the frame, each shifted 12 px further right."""
    from vizion3d_ros.core.io.rgbd import depth_to_points_optical
    from vizion3d_ros.ros.conversions import rgb_to_image, xyzrgb_to_pointcloud2
    from vizion3d_ros.tools.player import camera_info_msg
    from vizion3d_ros.tools.scenes import load_scene

    frame = load_scene(frame_arg)
    h, w = frame.depth.shape
    out = []
    for k in range(max(variants, 1)):
        color = np.roll(frame.color, 12 * k, axis=1)
        depth = np.roll(frame.depth, 12 * k, axis=1)
        xyz = depth_to_points_optical(depth, frame.camera)
        out.append((rgb_to_image(np.ascontiguousarray(color)), camera_info_msg(frame, None),
                    xyzrgb_to_pointcloud2(xyz, color.reshape(-1, 3), width=w, height=h)))
    return frame.name, out


# ----------------------------------------------------------------------------- the run

class PacedPublisher:
    """``publish_for``: ``publish_frame(k)`` for k = 0, 1, ... at a fixed rate (shared by the soak clients).

    The client provides ``now_ns()``, ``publish_frame(k)`` and the attributes ``_stop`` (a threading.Event),
    ``sent``, ``skipped`` and ``t0_ns``.
    """

    def publish_for(self, duration: float, rate: float) -> None:
        """Publish at ``rate`` Hz for ``duration`` s (skips, and counts, periods it falls behind on)."""
        period = 1.0 / rate
        start = time.monotonic()
        self.t0_ns = self.now_ns()
        next_t = start
        while not self._stop.is_set():
            now = time.monotonic()
            if now - start >= duration:
                break
            if now < next_t:
                time.sleep(min(next_t - now, 0.05))  # the stream's pace
                continue
            if now - next_t > period:
                missed = int((now - next_t) / period)
                self.skipped += missed
                next_t += missed * period
            self.publish_frame(self.sent)
            self.sent += 1
            next_t += period


class SoakClient(PacedPublisher):
    """Publishes the stream and records outputs and diagnostics (an rclpy node spun in a thread)."""

    def __init__(self, namespace: str, frames) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from vizion3d_ros.msg import ObjectMask3DArray

        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.node = Node('vizion3d_soak', namespace=namespace)
        self.frames = frames
        self.pubs = (self.node.create_publisher(Image, 'image', reliable),
                     self.node.create_publisher(CameraInfo, 'camera_info', reliable),
                     self.node.create_publisher(PointCloud2, 'points', reliable))
        self.node.create_subscription(ObjectMask3DArray, 'objects', self._on_objects,
                                      QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag,
                                      QoSProfile(depth=20, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.lock = threading.Lock()
        self.t0_ns: int | None = None  # clock time publishing started
        self.sent = 0
        self.skipped = 0  # periods the publisher could not keep (machine too busy)
        self.outputs: list[tuple[int, int, int]] = []  # (receive ns, stamp ns, objects)
        self.status: dict | None = None  # latest '<node>: pipeline' status
        self.statuses = 0
        self._stop = threading.Event()

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def matched(self) -> bool:
        return all(matched_alike(self.node, p) for p in self.pubs) and self.node.count_publishers('objects') > 0

    def _on_objects(self, msg) -> None:
        from vizion3d_ros.ros.stamps import stamp_ns

        stamp = stamp_ns(msg.header)
        with self.lock:
            self.outputs.append((self.now_ns(), stamp, len(msg.objects)))

    def _on_diag(self, msg) -> None:
        for s in msg.status:
            if s.name.endswith('vizion3d_node: pipeline'):
                values = {kv.key: kv.value for kv in s.values}
                level = s.level[0] if isinstance(s.level, (bytes, bytearray)) else int(s.level)
                with self.lock:
                    self.status = {'level': level, 'message': s.message, 'values': values}
                    self.statuses += 1

    def publish_frame(self, k: int) -> int:
        """Publish frame ``k`` (modulo the variants) stamped with the clock now; returns the stamp in ns."""
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header
        image, info, cloud = self.frames[k % len(self.frames)]
        ns = self.now_ns()
        header = Header(frame_id='camera_color_optical_frame',
                        stamp=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000))
        image.header = info.header = cloud.header = header
        for pub, msg in zip(self.pubs, (image, info, cloud)):
            pub.publish(msg)
        return ns

    def stop(self) -> None:
        self._stop.set()


def _wait(predicate, timeout: float, proc: subprocess.Popen | None = None, period: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(period)  # polling what the spinning thread records
    return predicate()


def _frame_drops(values: dict[str, str]) -> int:
    """Frames dropped, from a status's KeyValues ('unmatched' counts messages, not frames)."""
    return sum(int(v) for k, v in values.items() if k.startswith('dropped/') and k != 'dropped/unmatched')


def _accounted(client: SoakClient) -> int:
    with client.lock:
        if client.status is None:
            return 0
        values = client.status['values']
    return int(values.get('frames_processed', 0)) + _frame_drops(values)


def run_soak(cfg: SoakConfig, log=print) -> dict:
    """Run the soak described by ``cfg``; returns the results (also written to ``cfg.out``)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    frame_name, frames = build_frames(cfg.frame, cfg.variants)
    params = {'model': cfg.model, 'device': cfg.device, 'imgsz': str(cfg.imgsz),
              'input_reliability': cfg.input_reliability}
    for p in cfg.node_params:
        k, _, v = p.partition(':=')
        params[k] = v
    node_log = out / 'node.log'
    machine = machine_info()
    log(f'soak: {cfg.duration:g} s at {cfg.rate:g} Hz, {frame_name} ({len(frames)} variants), model '
        f'{Path(cfg.model).name} imgsz {cfg.imgsz} on {cfg.device}; node log {node_log}')
    node = NodeRun(node_log, cfg.namespace, params)
    proc, cmd = node.proc, node.cmd
    rclpy.init()
    client = SoakClient(cfg.namespace, frames)
    executor = SingleThreadedExecutor()
    executor.add_node(client.node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    rss: list[tuple[float, float]] = []
    cpu: list[tuple[float, float]] = []
    exit_code = None
    try:
        loaded = _wait(lambda: re.search(r'model .* loaded', node_log.read_text()) is not None,
                       cfg.startup_timeout, proc)
        if not loaded or not _wait(client.matched, 120, proc):
            raise RuntimeError(f'the node did not start (or match) in time:\n{node_log.read_text()[-3000:]}')
        rss_start = rss_mb(proc.pid)
        publisher = threading.Thread(target=client.publish_for, args=(cfg.duration, cfg.rate), daemon=True)
        publisher.start()
        start = time.monotonic()
        try:
            import psutil
            ps = psutil.Process(proc.pid)
            ps.cpu_percent(None)
        except ImportError:
            ps = None
        next_report = start + 10
        while publisher.is_alive():
            t = time.monotonic() - start
            rss.append((t, rss_mb(proc.pid)))
            if ps is not None:
                cpu.append((t, ps.cpu_percent(None)))
            if proc.poll() is not None:
                raise RuntimeError(f'the node exited with {proc.returncode}:\n{node_log.read_text()[-3000:]}')
            if time.monotonic() >= next_report:
                with client.lock:
                    n_out = len(client.outputs)
                    last = (client.outputs[-1][0] - client.outputs[-1][1]) / 1e6 if client.outputs else float('nan')
                log(f'  {t:6.0f} s: sent {client.sent}, outputs {n_out}, node RSS {rss[-1][1]:.0f} MiB, '
                    f'last latency {last:.0f} ms')
                next_report += 10
            publisher.join(timeout=cfg.sample_period)
        sent_at_stop = client.sent
        # the node finishes the frame in hand; wait for a status that accounts for every frame sent
        # (frames lost on the way never are: then the wait ends after 10 s)
        _wait(lambda: _accounted(client) >= sent_at_stop, 10)
        seen = client.statuses
        _wait(lambda: client.statuses >= seen + 2, 30)
        rss.append((time.monotonic() - start, rss_mb(proc.pid)))
    finally:
        client.stop()
        exit_code = node.stop()
        executor.shutdown()
        client.node.destroy_node()
        rclpy.try_shutdown()

    t0 = client.t0_ns
    latency = [((recv - t0) / 1e9, (recv - stamp) / 1e6) for recv, stamp, _ in client.outputs]
    stamps = [stamp for _, stamp, _ in client.outputs]
    status = client.status or {'values': {}, 'level': None, 'message': ''}
    values = status['values']
    drops = {k.split('/', 1)[1]: int(v) for k, v in values.items() if k.startswith('dropped/')}
    processed = int(values.get('frames_processed', -1))
    result = {
        'config': asdict(cfg), 'frame': frame_name, 'machine': machine,
        'node': {'command': cmd, 'exit_code': exit_code, 'log': str(node_log), 'rss_mb_before_stream': rss_start},
        'frames': {
            'sent': sent_at_stop, 'publisher_skipped_periods': client.skipped,
            'sent_rate_hz': sent_at_stop / cfg.duration, 'outputs_received': len(client.outputs),
            'output_rate_hz': len(client.outputs) / cfg.duration, 'processed': processed, 'drops': drops,
            # frames the node neither processed nor counted as dropped (unmatched counts messages, not frames)
            'unaccounted': sent_at_stop - processed - _frame_drops(values),
            'output_stamps_increasing': all(b > a for a, b in zip(stamps, stamps[1:])),
            'objects_per_output_median': float(np.median([n for *_, n in client.outputs])) if client.outputs else 0,
        },
        'diagnostics': {'level': status['level'], 'message': status['message'],
                        'latency_ms': {k.split('/', 1)[1]: v for k, v in values.items()
                                       if k.startswith('latency_ms/')}},
        'node_cpu_percent_median': _median([c for _, c in cpu[1:]]),
        **summarize(rss, latency, cfg.duration),
        'series': {'rss_mb': rss, 'latency_ms': latency},
    }
    (out / 'soak.json').write_text(json.dumps(result, indent=1))
    (out / 'soak.md').write_text(markdown(result))
    plotted = plot(result, out / 'soak.png')
    log(markdown(result))
    log(f'wrote {out / "soak.json"}, {out / "soak.md"}' + (f', {out / "soak.png"}' if plotted else
                                                            ' (no plot: matplotlib is not importable)'))
    return result


# ----------------------------------------------------------------------------- reports

def markdown(r: dict) -> str:
    """The run's summary as markdown."""
    c, f, m = r['config'], r['frames'], r['machine']
    rss, lat = r.get('rss_mb', {}), r.get('latency_ms', {})
    q = lat.get('quarter_medians', [float('nan')] * 4)

    def fmt(x, spec='.0f'):
        return 'n/a' if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)
    drops = ', '.join(f'{k} {v}' for k, v in sorted(f['drops'].items())) or 'none'
    lines = [
        f"## Soak: {c['duration']:g} s at {c['rate']:g} Hz ({r['frame']}, {Path(c['model']).name} imgsz {c['imgsz']}, "
        f"{c['device']})",
        '',
        f"{m['date']}, commit {m['git_commit']}{' (node modified)' if m['node_modified_since_commit'] else ''}; "
        f"{m['cpu']}, {m['cpu_count']} CPUs, {m['memory_gb']} GB; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'] or [])}",
        '',
        '| measure | value |',
        '|---|---|',
        f"| frames sent (publisher skipped periods) | {f['sent']} ({f['sent_rate_hz']:.1f} Hz; "
        f"{f['publisher_skipped_periods']} skipped) |",
        f"| outputs received | {f['outputs_received']} ({f['output_rate_hz']:.2f} Hz) |",
        f"| node: frames processed / drops | {f['processed']} / {drops} |",
        f"| frames unaccounted for | {f['unaccounted']} |",
        f"| output stamps strictly increasing | {f['output_stamps_increasing']} |",
        f"| end-to-end latency median / p90 / max | {fmt(lat.get('median'))} / {fmt(lat.get('p90'))} / "
        f"{fmt(lat.get('max'))} ms |",
        f"| latency median per quarter of the run | {' / '.join(fmt(x) for x in q)} ms |",
        f"| node RSS before the stream / first / mid / end / max | {fmt(r['node']['rss_mb_before_stream'])} / "
        f"{fmt(rss.get('first'))} / {fmt(rss.get('mid'))} / {fmt(rss.get('end'))} / {fmt(rss.get('max'))} MiB |",
        f"| node RSS growth over the second half (end - mid; slope) | {fmt(rss.get('second_half_growth'), '.1f')} MiB; "
        f"{fmt(rss.get('second_half_slope_mb_per_min'), '.2f')} MiB/min |",
        f"| node CPU (median, 100 = one core) | {fmt(r['node_cpu_percent_median'])} % |",
        f"| node's own latencies (median / p90 / max, last 100 frames) | "
        f"{'; '.join(f'{k} {v}' for k, v in sorted(r['diagnostics']['latency_ms'].items())) or 'n/a'} |",
        f"| node exit code after SIGTERM | {r['node']['exit_code']} |",
    ]
    return '\n'.join(lines) + '\n'


def plot(r: dict, path: Path) -> bool:
    """RSS and latency over time as a PNG; False when matplotlib is not importable."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rss = np.array(r['series']['rss_mb'], dtype=float).reshape(-1, 2)
    lat = np.array(r['series']['latency_ms'], dtype=float).reshape(-1, 2)
    fig, (a, b) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    a.plot(rss[:, 0], rss[:, 1], lw=1)
    a.set_ylabel('node RSS (MiB)')
    a.grid(alpha=0.3)
    b.plot(lat[:, 0], lat[:, 1], '.', ms=2)
    b.set_ylabel('end-to-end latency (ms)')
    b.set_xlabel('time since the stream started (s)')
    b.grid(alpha=0.3)
    c = r['config']
    fig.suptitle(f"vizion3d_node soak: {c['rate']:g} Hz VGA, {Path(c['model']).name} imgsz {c['imgsz']}, "
                 f"{c['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    d = SoakConfig()
    p.add_argument('--duration', type=float, default=d.duration, help='seconds of streaming (default %(default)s)')
    p.add_argument('--rate', type=float, default=d.rate, help='frames per second (default %(default)s)')
    p.add_argument('--model', default=d.model, help='checkpoint (default ../shared/models/yolov8n-seg-coco.pt)')
    p.add_argument('--imgsz', type=int, default=d.imgsz, help='inference size (default %(default)s)')
    p.add_argument('--device', default=d.device, help='inference device (default %(default)s)')
    p.add_argument('--frame', default=None, help="RGB-D folder or 'bus' (default: ../shared TUM frame)")
    p.add_argument('--variants', type=int, default=d.variants, help='shifted copies of the frame (default 8)')
    p.add_argument('--input-reliability', default=d.input_reliability, choices=('auto', 'reliable', 'best_effort'),
                   help='the node\'s input QoS (default auto, the node\'s default: reliable, as the publishers)')
    p.add_argument('--namespace', default=d.namespace)
    p.add_argument('--sample-period', type=float, default=d.sample_period, help='RSS sampling period (s)')
    p.add_argument('--node-param', action='append', default=[], metavar='NAME:=VALUE',
                   help='extra node parameter (repeatable)')
    p.add_argument('--out', default=d.out, help='output folder (default %(default)s)')
    a = p.parse_args(argv)
    cfg = SoakConfig(duration=a.duration, rate=a.rate, model=a.model, imgsz=a.imgsz, device=a.device,
                     frame=a.frame, variants=a.variants, input_reliability=a.input_reliability,
                     namespace=a.namespace, sample_period=a.sample_period, node_params=a.node_param, out=a.out)
    result = run_soak(cfg)
    return 0 if result['node']['exit_code'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
