"""The node end to end over DDS: where a frame's time goes, sustained throughput, CPU and memory.

Starts the real ``vizion3d_node`` (own process, real checkpoint, default parameters: its inputs follow
this client's reliable publishers) once per ``--imgsz`` and feeds it the real TUM RGB-D frame (image +
camera_info + organised XYZRGB cloud) from this process:

1. **Latency split**: ``--frames`` frames sent one at a time (the next only once every output of the
   previous one has arrived), so no frame ever waits behind another. Each frame's time is split into
   transport (publish stamp -> the node has all three messages), waiting (-> the worker starts),
   conversion, inference, lifting, publishing (building the output messages + the ``publish`` calls)
   and delivery (-> this process has received objects, annotated_points and markers). The node's part
   comes from its per-frame debug line (``vizion3d_node`` logger at debug level), which carries the
   wall-clock times of synchronisation and of the last ``publish``.
2. **Throughput**: a ``--rate`` Hz stream of the frame in shifted copies for ``--duration`` s: outputs/s,
   drops per reason (from /diagnostics), node CPU (user + system time over the window / wall; 100 % =
   one core), node RSS, and latency over time.

Writes ``node.json``, ``node.md`` and ``node_stages.png`` / ``node_latency.png`` into ``--out``.

    source scripts/env.sh
    python bench/bench_node.py                 # imgsz 640 and 320 on the CPU, ~2 min
    python bench/bench_node.py --device cuda:0 # on a GPU machine
    python bench/bench_node.py --quick --out /tmp/node   # smoke run, ~30 s
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from _machine import machine_info, speed_probe
from _node_io import NodeRun, cpu_seconds
from soak import DEFAULT_MODEL, SoakClient, _wait, build_frames, rss_mb

NAME = 'node'
#: Issue 5: the node's overhead beyond model inference, median, VGA.
TARGET_OVERHEAD_MS = 20.0
NODE_STAGES = ('waiting', 'conversion', 'inference', 'alongside', 'lifting', 'geometry', 'publishing',
               'publish_calls', 'end_to_end')
#: The node's serial stages, whose sum is its end to end ('alongside' overlaps 'inference' and is not one).
SERIAL = ('waiting', 'conversion', 'inference', 'lifting', 'geometry', 'publishing')
#: Stacked-bar order; 'building' is publishing minus the publish calls, 'handoff' the rest of end to end.
SPLIT = ('transport', 'waiting', 'conversion', 'inference', 'handoff', 'lifting', 'geometry', 'building',
         'publish_calls', 'delivery')
_FRAME_LINE = re.compile(r'frame (\d+): (\d+) objects; synced (\d+) ns, published (\d+) ns; (.*)$', re.M)
_STAGE = re.compile(r'(\w+) (-?[\d.]+) ms')


@dataclass
class Config:
    """One benchmark run (the command-line options)."""

    imgsz: list[int] = field(default_factory=lambda: [640, 320])
    frames: int = 40
    warmup: int = 3
    duration: float = 20.0
    rate: float = 30.0
    device: str = 'cpu'
    model: str = str(DEFAULT_MODEL)
    frame: str | None = None
    variants: int = 8
    node_params: list[str] = field(default_factory=list)
    startup_timeout: float = 300.0
    out: str = 'docs/bench'
    logs: str = 'out/bench_node'
    quick: bool = False


def parse_frame_lines(log: str) -> dict[int, dict]:
    """The node's per-frame debug lines by frame stamp: objects, wall-clock ns and stage milliseconds."""
    out = {}
    for m in _FRAME_LINE.finditer(log):
        rec = {'objects': int(m.group(2)), 'synced_ns': int(m.group(3)), 'published_ns': int(m.group(4))}
        rec.update({k: float(v) for k, v in _STAGE.findall(m.group(5))})
        out[int(m.group(1))] = rec
    return out


class BenchClient(SoakClient):
    """The soak's publisher and objects/diagnostics recorder, plus receive times of the other outputs."""

    OUTPUTS = ('objects', 'annotated_points', 'markers')

    def __init__(self, namespace: str, frames) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import PointCloud2
        from visualization_msgs.msg import MarkerArray

        super().__init__(namespace, frames)
        self.received: dict[str, dict[int, int]] = {k: {} for k in self.OUTPUTS}
        self.object_counts: dict[int, int] = {}
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(PointCloud2, 'annotated_points',
                                      lambda m: self._record('annotated_points', m.header), qos)
        self.node.create_subscription(MarkerArray, 'markers',
                                      lambda m: m.markers and self._record('markers', m.markers[0].header), qos)

    def _record(self, topic: str, header) -> None:
        from vizion3d_ros.ros.stamps import stamp_ns
        self.received[topic].setdefault(stamp_ns(header), self.now_ns())

    def _on_objects(self, msg) -> None:
        from vizion3d_ros.ros.stamps import stamp_ns
        super()._on_objects(msg)
        self.object_counts[stamp_ns(msg.header)] = len(msg.objects)
        self._record('objects', msg.header)

    def delivered(self, stamp: int) -> int | None:
        """Receive time of the frame's last output (markers only when it had objects), or None if incomplete."""
        with self.lock:
            n = self.object_counts.get(stamp)
        if n is None or stamp not in self.received['annotated_points']:
            return None
        topics = self.OUTPUTS if n else self.OUTPUTS[:2]
        if any(stamp not in self.received[t] for t in topics):
            return None
        return max(self.received[t][stamp] for t in topics)


# ----------------------------------------------------------------------------- measurements

def frame_split(stamp: int, node: dict, delivered_ns: int) -> dict:
    """One frame's time in ms, stage by stage, from the sender's stamp to the last output received."""
    rec = {'stamp': stamp, 'objects': node['objects'],
           'transport': (node['synced_ns'] - stamp) / 1e6,
           **{k: node[k] for k in NODE_STAGES},
           'building': node['publishing'] - node['publish_calls'],
           'delivery': (delivered_ns - node['published_ns']) / 1e6,
           'client_end_to_end': (delivered_ns - stamp) / 1e6}
    rec['handoff'] = rec['end_to_end'] - sum(node[k] for k in SERIAL)
    rec['overhead'] = rec['end_to_end'] - rec['inference']
    rec['overhead_without_lifting'] = rec['overhead'] - rec['lifting']
    rec['client_overhead'] = rec['client_end_to_end'] - rec['inference']
    return rec


def spread(values) -> dict:
    """Median, p10, p90, min, max and count of finite values."""
    a = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if not len(a):
        return {'median': float('nan'), 'p10': float('nan'), 'p90': float('nan'), 'n': 0}
    p10, med, p90 = np.percentile(a, [10, 50, 90])
    return {'median': float(med), 'p10': float(p10), 'p90': float(p90), 'min': float(a.min()),
            'max': float(a.max()), 'n': int(len(a))}


def measure_latency(client: BenchClient, node: NodeRun, frames: int, warmup: int) -> list[dict]:
    """Send ``warmup + frames`` frames one at a time; the split of the last ``frames``."""
    out = []
    lines: dict[int, dict] = {}

    def done(stamp: int) -> bool:
        if client.delivered(stamp) is None:
            return False
        lines.update(parse_frame_lines(node.log()))  # the node logs a frame just after its last publish
        return stamp in lines
    for i in range(warmup + frames):
        stamp = client.publish_frame(0)
        if not _wait(lambda s=stamp: done(s), 60, node.proc, period=0.002):
            raise RuntimeError(f'no complete output for frame {i} within 60 s:\n{node.log()[-3000:]}')
        if i >= warmup:
            out.append(frame_split(stamp, lines[stamp], client.delivered(stamp)))
    return out


def _diag_values(client: BenchClient) -> dict[str, str]:
    with client.lock:
        return dict(client.status['values']) if client.status else {}


def _fresh_status(client: BenchClient, n: int = 2) -> dict[str, str]:
    seen = client.statuses
    _wait(lambda: client.statuses >= seen + n, 10, period=0.05)
    return _diag_values(client)


def measure_throughput(client: BenchClient, node: NodeRun, duration: float, rate: float) -> dict:
    """Stream at ``rate`` Hz for ``duration`` s: outputs/s, drops, CPU, RSS and latency over time."""
    before = _fresh_status(client, 1)
    load_before = os.getloadavg()[0]
    sent0 = client.sent
    rss_before = rss_mb(node.pid)
    publisher = threading.Thread(target=client.publish_for, args=(duration, rate), daemon=True)
    cpu0, wall0 = cpu_seconds(node.pid), time.monotonic()
    publisher.start()
    rss = []
    while publisher.is_alive():
        rss.append((time.monotonic() - wall0, rss_mb(node.pid)))
        publisher.join(timeout=0.5)
    cpu1, wall1 = cpu_seconds(node.pid), time.monotonic()
    load_after = os.getloadavg()[0]
    t0_ns = client.t0_ns
    time.sleep(1.0)  # the frame in hand
    after = _fresh_status(client)
    lines = parse_frame_lines(node.log())
    with client.lock:
        outputs = [(recv, stamp) for recv, stamp, _ in client.outputs if stamp >= t0_ns]
    series = []
    for recv, stamp in outputs:
        rec = {'t': (stamp - t0_ns) / 1e9, 'client_end_to_end': (recv - stamp) / 1e6}
        if stamp in lines:
            rec.update({k: lines[stamp][k] for k in ('inference', 'end_to_end')})
            rec['overhead'] = rec['end_to_end'] - rec['inference']
            rec['transport'] = (lines[stamp]['synced_ns'] - stamp) / 1e6
        series.append(rec)

    def delta(key: str) -> int:
        return int(after.get(key, 0)) - int(before.get(key, 0))
    reasons = {k.split('/', 1)[1] for k in after if k.startswith('dropped/')}
    window = wall1 - wall0
    return {
        'duration_s': window, 'rate_hz': rate, 'sent': client.sent - sent0,
        'publisher_skipped_periods': client.skipped, 'outputs': len(outputs),
        'outputs_per_s': len(outputs) / window, 'processed': delta('frames_processed'),
        'drops': {r: delta(f'dropped/{r}') for r in sorted(reasons)},
        'node_cpu_percent': 100.0 * (cpu1 - cpu0) / window,
        # 1-minute load average before and after: the machine is shared, other work shows up here
        'load_average_1min': [load_before, load_after],
        'node_rss_mb': {'before': rss_before, **spread([mb for _, mb in rss])},
        'latency_ms': {k: spread([s[k] for s in series if k in s])
                       for k in ('client_end_to_end', 'end_to_end', 'inference', 'overhead', 'transport')},
        'series': series, 'rss_series': rss,
    }


def run_one(cfg: Config, imgsz: int, frames, log_dir: Path, log=print) -> dict:
    """Start a node at ``imgsz``, measure the latency split and the throughput, stop it."""
    from rclpy.executors import SingleThreadedExecutor

    namespace = f'/bench_node_{imgsz}'
    params = {'model': cfg.model, 'device': cfg.device, 'imgsz': str(imgsz)}  # default QoS: auto
    params.update(p.split(':=', 1) for p in cfg.node_params)
    node = NodeRun(log_dir / f'node_{imgsz}.log', namespace, params, debug_log=True)
    client = BenchClient(namespace, frames)
    executor = SingleThreadedExecutor()
    executor.add_node(client.node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        loaded = node.wait_loaded(cfg.startup_timeout)
        if not _wait(client.matched, 120, node.proc):
            raise RuntimeError(f'the node did not match the client:\n{node.log()[-3000:]}')
        log(f'imgsz {imgsz}: model loaded on {loaded.group(2)}; {cfg.frames} frames one at a time')
        split = measure_latency(client, node, cfg.frames, cfg.warmup)
        rss_idle = rss_mb(node.pid)
        log(f'imgsz {imgsz}: streaming at {cfg.rate:g} Hz for {cfg.duration:g} s')
        throughput = measure_throughput(client, node, cfg.duration, cfg.rate)
        device = _diag_values(client).get('device', loaded.group(2))
    finally:
        client.stop()
        exit_code = node.stop()
        executor.shutdown()
        client.node.destroy_node()  # rclpy itself stays up for the next imgsz
    stages = {k: spread([f[k] for f in split]) for k in (*SPLIT, 'alongside', 'publishing', 'end_to_end', 'overhead',
                                                          'overhead_without_lifting', 'client_end_to_end',
                                                          'client_overhead')}
    return {'imgsz': imgsz, 'device': device, 'node_command': node.cmd, 'node_exit_code': exit_code,
            'node_rss_mb_after_latency_run': rss_idle,
            'latency': {'frames': len(split), 'objects_median': float(np.median([f['objects'] for f in split])),
                        'stages_ms': stages, 'per_frame': split},
            'throughput': throughput}


def run(cfg: Config, log=print) -> dict:
    """The whole benchmark; writes the JSON, markdown and plots into ``cfg.out``."""
    import rclpy

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    out, log_dir = Path(cfg.out), Path(cfg.logs)
    out.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    frame_name, frames = build_frames(cfg.frame, cfg.variants)
    rclpy.init()
    try:
        runs = [run_one(cfg, imgsz, frames, log_dir, log) for imgsz in cfg.imgsz]
    finally:
        rclpy.try_shutdown()
    machine['speed_probe_ms_after'] = round(speed_probe(), 2)  # did the machine change speed during the run
    result = {'name': NAME, 'machine': machine, 'config': asdict(cfg), 'frame': frame_name,
              'targets': targets(runs), 'runs': runs}
    (out / f'{NAME}.json').write_text(json.dumps(result, indent=1))
    plots = plot_stages(result, out / f'{NAME}_stages.png'), plot_latency(result, out / f'{NAME}_latency.png')
    result['plots'] = [p.name for p in plots]
    (out / f'{NAME}.json').write_text(json.dumps(result, indent=1))
    (out / f'{NAME}.md').write_text(markdown(result))
    log(markdown(result))
    return result


def targets(runs: list[dict]) -> list[dict]:
    """Issue 5's target per imgsz, in the form bench/report.py lists: node overhead beyond inference, VGA."""
    out = []
    for run in runs:
        s = run['latency']['stages_ms']['overhead']
        out.append({'name': f"Node overhead beyond inference, VGA TUM frame over DDS, imgsz {run['imgsz']} "
                            f"({run['device']})",
                    'limit_ms': TARGET_OVERHEAD_MS, 'measured_ms': s['median'],
                    'spread': f"p10-p90 {s['p10']:.1f}-{s['p90']:.1f} ms, {s['n']} frames; lifting "
                              f"{run['latency']['stages_ms']['lifting']['median']:.1f} ms of it",
                    'met': bool(s['median'] <= TARGET_OVERHEAD_MS), 'source': 'bench_node.py (docs/bench/node.json)'})
    return out


# ----------------------------------------------------------------------------- reports

def _ms(s: dict) -> str:
    return f"{s['median']:.1f} ({s['p10']:.1f} - {s['p90']:.1f})" if s['n'] else 'n/a'


STAGE_TEXT = {
    'transport': 'publish stamp -> the node holds image, camera_info and cloud (serialisation, DDS, '
                 'deserialisation, executor, synchroniser)',
    'waiting': 'synchronised -> the worker thread starts the frame',
    'conversion': 'messages -> numpy views, camera model, checks (before the model starts)',
    'inference': 'YOLO segmentation on the pipeline\'s inference thread (`FramePipeline.start`, backend only)',
    'handoff': 'handing the frame to the inference thread and the masks back (thread wake-ups), plus any work '
               'alongside that outlasted the inference',
    'lifting': 'mask lifting once the masks are there (`core/lifting/lift.py`)',
    'geometry': 'per-object centroid, box and record (`core/pipeline.py`, `core/lifting/geometry.py`)',
    'building': 'building the output messages (objects, annotated cloud, markers)',
    'publish_calls': '`publish()` of objects, annotated_points, markers (serialisation, DDS write)',
    'delivery': 'last `publish()` returned -> this process has received all three outputs',
}


def _probe_text(m: dict) -> str:
    before, after = m.get('speed_probe_ms'), m.get('speed_probe_ms_after')
    if before is None:
        return ''
    return (f"; speed probe {before:.1f} ms before{f' and {after:.1f} ms after' if after is not None else ''} "
            'the run (`bench/_machine.py`; lower is faster, it compares machines and hours)')


def markdown(r: dict) -> str:
    """The ``## `` section for docs/BENCHMARKS.md."""
    m, c = r['machine'], r['config']
    devices = ', '.join(sorted({run['device'] for run in r['runs']}))
    lines = [
        '## Node end to end over DDS',
        '',
        f"The real `vizion3d_node` in its own process, `{Path(c['model']).name}` on **{devices}**, fed the real "
        f"TUM frame ({r['frame']}, 640x480, organised XYZRGB cloud of 307,200 points) over Fast DDS on loopback "
        "(reliable QoS) from the benchmark process, which also receives the outputs. "
        f"{m['date']}, commit {m['git_commit']}{' (+ uncommitted changes)' if m['uncommitted_changes'] else ''}; "
        f"{m['cpu']}, {m['cpu_count']} CPUs; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average'] or [])}{_probe_text(m)}. Script: `bench/bench_node.py`"
        f"{' (--quick)' if c['quick'] else ''}.",
        '',
        f"**Latency split**: {c['frames']} frames sent one at a time (after {c['warmup']} warm-up frames), each "
        "only once all outputs of the previous one had arrived, so no frame waits behind another. Median "
        '(p10 - p90) in ms:',
        '',
        '| stage | what | ' + ' | '.join(f"imgsz {run['imgsz']}" for run in r['runs']) + ' |',
        '|---|---|' + '---|' * len(r['runs']),
    ]
    for stage in SPLIT:
        lines.append(f'| {stage} | {STAGE_TEXT[stage]} | '
                     + ' | '.join(_ms(run['latency']['stages_ms'][stage]) for run in r['runs']) + ' |')
    for key, text in (('alongside', 'while the model runs, on the worker thread: TF lookup, cloud -> camera '
                                    'transform, projection and visible surface (`PendingFrame.finish`; overlaps '
                                    'inference, so not part of the sum)'),
                      ('end_to_end', '**node end to end**: synchronised -> last `publish()` returned'),
                      ('overhead', '**node overhead beyond inference**: node end to end - inference'),
                      ('overhead_without_lifting', 'the same minus lifting: the node\'s own work around the '
                                                   'lifting core'),
                      ('client_end_to_end', 'sender\'s stamp -> all outputs received'),
                      ('client_overhead', 'the same minus inference: overhead + transport + delivery')):
        lines.append(f'| {key} | {text} | ' + ' | '.join(_ms(run['latency']['stages_ms'][key])
                                                         for run in r['runs']) + ' |')
    lines += [
        '',
        f"**Target** (issue 5): node overhead beyond model inference <= {TARGET_OVERHEAD_MS:g} ms (median, VGA). "
        'The overhead is the node\'s end to end (from the moment its synchroniser holds the frame to the return of '
        'the last `publish()`) minus inference: waiting, conversion, hand-off, lifting, per-object geometry, '
        'building the messages and publishing them; the cloud work done alongside the model is hidden in it. '
        'Outputs nobody subscribes to are not built (the benchmark subscribes to all three). Transport into '
        'the node and delivery out of it are DDS and the receiving '
        'process, listed apart. '
        + '; '.join(f"{t['name'].split(', ')[-1]}: {t['measured_ms']:.1f} ms ({t['spread']}) -> "
                    f"**{'met' if t['met'] else 'not met'}**" for t in r['targets']) + '.',
        '',
        f"![stage split](bench/{r['plots'][0]})",
        '',
        f"**Throughput**: the frame in {c['variants']} copies shifted 12 px apart, streamed at {c['rate']:g} Hz for "
        f"{c['duration']:g} s. The node keeps only the newest frame, so what it cannot process is dropped as "
        '`superseded`; node CPU is user + system time over the window (100 % = one core).',
        '',
        '| imgsz | sent | outputs/s | drops | node CPU | node RSS median (max) | end to end median (p90) | '
        'overhead median (p90) | load average before / after |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for run in r['runs']:
        th = run['throughput']
        drops = ', '.join(f'{k} {v}' for k, v in th['drops'].items() if v) or 'none'
        lat = th['latency_ms']
        lines.append(
            f"| {run['imgsz']} | {th['sent']} ({th['sent'] / th['duration_s']:.1f} Hz) | {th['outputs_per_s']:.2f} | "
            f"{drops} | {th['node_cpu_percent']:.0f} % | {th['node_rss_mb']['median']:.0f} "
            f"({th['node_rss_mb']['max']:.0f}) MiB | {lat['client_end_to_end']['median']:.0f} "
            f"({lat['client_end_to_end']['p90']:.0f}) ms | {lat['overhead']['median']:.1f} "
            f"({lat['overhead']['p90']:.1f}) ms | {' / '.join(f'{x:.2f}' for x in th['load_average_1min'])} |")
    lines += ['', f"![latency over time](bench/{r['plots'][1]})", '']
    if not any(run['device'].startswith('cuda') for run in r['runs']):
        lines += ['Not run on a GPU here (no GPU on this machine); `--device cuda:0` runs the same benchmark on '
                  'one and records the device.', '']
    return '\n'.join(lines)


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_stages(r: dict, path: Path) -> Path:
    """Stacked horizontal bar of the median stage split, one bar per imgsz."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.7 * len(r['runs'])))
    colors = plt.get_cmap('tab10').colors
    labels = [f"imgsz {run['imgsz']}" for run in r['runs']]
    for y, run in enumerate(r['runs']):
        left = 0.0
        for k, stage in enumerate(SPLIT):
            w = max(run['latency']['stages_ms'][stage]['median'], 0.0)
            ax.barh(y, w, left=left, color=colors[k % len(colors)], label=stage if y == 0 else None)
            left += w
        ax.text(left, y, f' {left:.0f} ms', va='center', fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel('median ms per frame (one frame at a time; medians of the stages, so the sum is not a median)')
    ax.set_xlim(0, ax.get_xlim()[1] * 1.08)
    ax.legend(fontsize=8, loc='center left', bbox_to_anchor=(1.01, 0.5))
    ax.grid(axis='x', alpha=0.3)
    ax.set_title(f"vizion3d_node over DDS: where a VGA frame's time goes ({r['runs'][0]['device']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_latency(r: dict, path: Path) -> Path:
    """End-to-end latency, inference and overhead of every output of the throughput runs, over time."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(r['runs']), 1, figsize=(9, 2.6 * len(r['runs'])), squeeze=False)
    for ax, run in zip(axes[:, 0], r['runs']):
        s = run['throughput']['series']
        for key, label in (('client_end_to_end', 'stamp -> objects received'), ('inference', 'inference'),
                           ('overhead', 'node overhead beyond inference')):
            pts = np.array([(p['t'], p[key]) for p in s if key in p], dtype=float).reshape(-1, 2)
            ax.plot(pts[:, 0], pts[:, 1], '.-', ms=3, lw=0.8, label=label)
        ax.set_ylabel('ms')
        ax.set_title(f"imgsz {run['imgsz']}, {run['throughput']['rate_hz']:g} Hz stream", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel('frame stamp, seconds since the stream started')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    d = Config()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--imgsz', default=','.join(map(str, d.imgsz)), help='inference sizes (default %(default)s)')
    p.add_argument('--frames', type=int, default=d.frames, help='timed frames one at a time (default %(default)s)')
    p.add_argument('--warmup', type=int, default=d.warmup, help='untimed frames first (default %(default)s)')
    p.add_argument('--duration', type=float, default=d.duration, help='throughput run, s (default %(default)s)')
    p.add_argument('--rate', type=float, default=d.rate, help='throughput stream rate, Hz (default %(default)s)')
    p.add_argument('--device', default=d.device, help="inference device, e.g. cpu, cuda:0 (default %(default)s)")
    p.add_argument('--model', default=d.model, help='checkpoint (default ../shared/models/yolov8n-seg-coco.pt)')
    p.add_argument('--frame', default=None, help="RGB-D folder or 'bus' (default: ../shared TUM frame)")
    p.add_argument('--node-param', action='append', default=[], metavar='NAME:=VALUE',
                   help='extra node parameter (repeatable)')
    p.add_argument('--out', default=d.out, help='output folder (default %(default)s)')
    p.add_argument('--logs', default=d.logs, help='folder for the node logs (default %(default)s)')
    p.add_argument('--quick', action='store_true', help='smoke run: imgsz 320, 5 frames, 3 s stream')
    a = p.parse_args(argv)
    cfg = Config(imgsz=[int(x) for x in a.imgsz.split(',')], frames=a.frames, warmup=a.warmup,
                 duration=a.duration, rate=a.rate, device=a.device, model=a.model, frame=a.frame,
                 node_params=a.node_param, out=a.out, logs=a.logs, quick=a.quick)
    if a.quick:
        cfg.imgsz, cfg.frames, cfg.warmup, cfg.duration, cfg.variants = [320], 5, 1, 3.0, 2
    result = run(cfg)
    return 0 if all(run_['node_exit_code'] == 0 for run_ in result['runs']) else 1


if __name__ == '__main__':
    sys.exit(main())
