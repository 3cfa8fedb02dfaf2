"""DDS transport of large clouds: delivery and latency with and without config/fastdds_large_data.xml.

A publisher and a subscriber, each in its own process, exchange real ``sensor_msgs/PointCloud2`` messages
(x y z rgb, 16 bytes a point) over Fast DDS on this host, in the project's discovery setting
(``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` unless the environment says otherwise). Every case starts two
fresh processes and measures:

- **delivery**: distinct clouds received intact (``len(data)`` as sent) / clouds sent;
- **latency**: receive time in the subscriber's callback (the message deserialised by rclpy) minus the
  header stamp the publisher wrote just before ``publish()``, on the same host clock: serialisation,
  DDS, deserialisation and the executor; median and p90 over the clouds received;
- **memory**: each process's RSS and the shared memory it maps (``RssShmem``, ``/dev/shm/fastdds_*``
  mappings), and the growth of ``/dev/shm`` while both run.

Cases: publisher reliability {reliable, best_effort} x subscriber {reliable, best_effort} (best_effort ->
reliable cannot match and is left out) x cloud {VGA organised 640x480 = 4.9 MB, 2M points = 32 MB} x
profile {none, publisher only, both}: ``FASTDDS_DEFAULT_PROFILES_FILE`` set to the profile in the
publisher's, or both processes' environment, and removed otherwise. Both sides use KEEP_LAST depth 5,
volatile (a camera driver's settings); the publisher sends at a camera-like rate once both sides have
matched (``get_subscription_count`` / ``get_publisher_count``, with a timeout), and the case ends when
every cloud arrived or nothing arrived for ``--quiet`` seconds (longer than Fast DDS's 3 s heartbeat, so
a reliable repair is waited for). The run uses its own random ``ROS_DOMAIN_ID`` (150-230) and one topic
per case, so nothing else on the machine is seen or disturbed.

Writes ``transport.json``, ``transport.md`` and ``transport.png`` (matplotlib, if importable) into ``--out``.

    source scripts/env.sh
    python bench/bench_transport.py                          # ~3 min on 2 cores
    python bench/bench_transport.py --quick --out /tmp/t     # smoke run, ~30 s
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import select
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

NAME = 'transport'
PROFILE = ROOT / 'config' / 'fastdds_large_data.xml'
PROFILE_ENV = 'FASTDDS_DEFAULT_PROFILES_FILE'
#: Environment that would change the transport behind the bench's back; removed from every worker.
FOREIGN_ENV = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_BUILTIN_TRANSPORTS', 'RMW_FASTRTPS_USE_QOS_FROM_XML')
RELIABILITIES = ('reliable', 'best_effort')
#: (publisher, subscriber) pairs that match; a reliable subscription refuses a best-effort publisher.
PAIRS = (('reliable', 'reliable'), ('reliable', 'best_effort'), ('best_effort', 'best_effort'))
#: Who loads the profile. 'subscriber' shows that the receiving side alone does not help.
PROFILE_MODES = ('none', 'publisher', 'subscriber', 'both')


@dataclass(frozen=True)
class Size:
    """A cloud: ``width`` x ``height`` points of 16 bytes, sent ``messages`` times at ``rate_hz``."""

    name: str
    width: int
    height: int
    rate_hz: float
    messages: int
    about: str

    @property
    def points(self) -> int:
        return self.width * self.height

    @property
    def nbytes(self) -> int:
        return 16 * self.points


SIZES = {
    'small': Size('small', 100, 1, 30.0, 30, '100 points (1.6 kB): discovery and small messages'),
    'vga': Size('vga', 640, 480, 15.0, 30, 'VGA organised XYZRGB (an RGB-D camera)'),
    '2m': Size('2m', 2_000_000, 1, 3.0, 20, '2M-point unorganised XYZRGB (a dense LiDAR or stereo cloud)'),
    # not in the default run (133 MB a cloud; ~1 GB of RAM per process pair): what the profile is sized for
    '4k': Size('4k', 3840, 2160, 1.0, 10, '4K organised XYZRGB (a 4K depth camera)'),
}


@dataclass
class Config:
    """What one run measures (the command-line options)."""

    sizes: tuple[str, ...] = ('small', 'vga', '2m')
    pairs: tuple[tuple[str, str], ...] = PAIRS
    profiles: tuple[str, ...] = PROFILE_MODES
    messages: dict[str, int] = field(default_factory=dict)  # per size, overrides Size.messages
    depth: int = 5
    quiet_s: float = 4.0
    match_timeout_s: float = 30.0
    profile: str = str(PROFILE)
    domain: int | None = None
    out: str = 'docs/bench'


QUICK = dict(sizes=('vga',), pairs=(('reliable', 'reliable'), ('best_effort', 'best_effort')), messages={'vga': 5},
             quiet_s=1.5)


# ----------------------------------------------------------------------------- worker side

def _emit(event: str, **data) -> None:
    print(json.dumps({'event': event, **data}), flush=True)


def _stdin_line(timeout: float) -> str | None:
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        return None
    line = sys.stdin.readline()
    return line.strip() if line else 'eof'


def _qos(reliability: str, depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    rel = ReliabilityPolicy.RELIABLE if reliability == 'reliable' else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=rel,
                      durability=DurabilityPolicy.VOLATILE)


def memory_now() -> dict:
    """The calling process's RSS, resident shared memory, and its ``/dev/shm/fastdds_*`` mappings (MiB)."""
    status = {}
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            key, _, value = line.partition(':')
            if key in ('VmRSS', 'RssAnon', 'RssFile', 'RssShmem'):
                status[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    mapped: dict[str, int] = {}
    try:
        for line in Path('/proc/self/maps').read_text().splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith('/dev/shm/fastdds_'):
                lo, hi = (int(x, 16) for x in parts[0].split('-'))
                mapped[parts[5]] = mapped.get(parts[5], 0) + hi - lo
    except OSError:
        pass
    return {'rss_mb': status.get('VmRSS'), 'rss_anon_mb': status.get('RssAnon'),
            'rss_shmem_mb': status.get('RssShmem'), 'shm_files_mapped': len(mapped),
            'shm_mapped_mb': sum(mapped.values()) / 2**20,
            'shm_largest_mapping_mb': max(mapped.values(), default=0) / 2**20}


def make_cloud(size: Size, seed: int = 0):
    """A real PointCloud2 (x y z rgb) of ``size``: random points 0.3-5 m in front of the camera."""
    from vizion3d_ros.ros.conversions import xyzrgb_to_pointcloud2

    rng = np.random.default_rng(seed)
    xyz = rng.uniform([-2, -1.5, 0.3], [2, 1.5, 5.0], (size.points, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (size.points, 3), dtype=np.uint8)
    msg = xyzrgb_to_pointcloud2(xyz, rgb, width=size.width, height=size.height)
    msg.header.frame_id = 'camera_color_optical_frame'
    return msg


def worker_pub(args: dict) -> int:
    import rclpy
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import PointCloud2

    size = Size(**args['size'])
    rclpy.init()
    node = rclpy.create_node('bench_transport_pub')
    pub = node.create_publisher(PointCloud2, args['topic'], _qos(args['reliability'], args['depth']))
    msg = make_cloud(size)
    _emit('ready', pid=os.getpid())
    deadline = time.monotonic() + args['match_timeout_s']
    while pub.get_subscription_count() < 1:
        if time.monotonic() > deadline:
            _emit('error', reason=f"no subscription matched within {args['match_timeout_s']} s")
            return 3
        time.sleep(0.01)
    _emit('matched')
    if _stdin_line(args['match_timeout_s'] * 2) != 'go':
        _emit('error', reason='no go from the bench')
        return 3
    period = 1.0 / size.rate_hz
    start = time.monotonic()
    publish_ms = []
    for i in range(args['messages']):
        wait = start + i * period - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        now = time.time_ns()
        msg.header.stamp = Time(sec=now // 1_000_000_000, nanosec=now % 1_000_000_000)
        msg.header.frame_id = f'{i}'
        t = time.perf_counter()
        pub.publish(msg)
        publish_ms.append((time.perf_counter() - t) * 1e3)
    _emit('sent', count=args['messages'], seconds=time.monotonic() - start, publish_ms=publish_ms,
          memory=memory_now())
    # stay up (a reliable writer repairs lost fragments from its history) until the bench is done
    while _stdin_line(1.0) not in ('stop', 'eof'):
        pass
    _emit('done', memory=memory_now())
    node.destroy_node()
    rclpy.shutdown()
    return 0


def worker_sub(args: dict) -> int:
    import rclpy
    from sensor_msgs.msg import PointCloud2

    size = Size(**args['size'])
    rclpy.init()
    node = rclpy.create_node('bench_transport_sub')
    records: list[tuple[int, float, bool]] = []

    def on_cloud(msg):
        t = time.time_ns()
        sent = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        records.append((int(msg.header.frame_id), (t - sent) / 1e6, len(msg.data) == size.nbytes))
        _emit('recv', n=len(records))

    sub = node.create_subscription(PointCloud2, args['topic'], on_cloud, _qos(args['reliability'], args['depth']))
    _emit('ready', pid=os.getpid())
    matched = False
    deadline = time.monotonic() + args['match_timeout_s']
    peak, seen = memory_now(), 0
    while True:
        rclpy.spin_once(node, timeout_sec=0.02)
        if not matched:
            if sub.get_publisher_count() >= 1:  # matched (QoS compatible), not only seen in the graph
                matched = True
                _emit('matched')
            elif time.monotonic() > deadline:
                _emit('error', reason=f"no publisher matched within {args['match_timeout_s']} s")
                return 3
        if len(records) != seen:  # sample after each cloud: the most memory is in use while they arrive
            seen = len(records)
            now = memory_now()
            if (now.get('rss_mb') or 0) > (peak.get('rss_mb') or 0):
                peak = now
        cmd = _stdin_line(0)
        if cmd in ('stop', 'eof'):
            break
    _emit('done', records=records, memory=memory_now(), peak_memory=peak)
    node.destroy_node()
    rclpy.shutdown()
    return 0


# ----------------------------------------------------------------------------- bench side

class Worker:
    """One worker process: JSON events on its stdout, commands on its stdin."""

    def __init__(self, role: str, args: dict, env: dict, log_path: Path):
        self.role = role
        self.log = open(log_path, 'w')  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), '--worker', role,
                                      json.dumps(args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env, cwd=ROOT, text=True, bufsize=1)
        self.events: list[dict] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.events.append(event)
                self.cond.notify_all()
        with self.cond:
            self.events.append({'event': 'exit'})
            self.cond.notify_all()

    def wait_for(self, name: str, timeout: float) -> dict | None:
        """The first event ``name`` (None on timeout); raises on an ``error`` or exit event first."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events:
                    if e['event'] == name:
                        return e
                    if e['event'] in ('error', 'exit'):
                        raise RuntimeError(f"{self.role}: {e.get('reason', 'exited')} (rc {self.proc.poll()})")
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def count(self, name: str) -> int:
        with self.cond:
            return sum(e['event'] == name for e in self.events)

    def send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line + '\n')
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def close(self, timeout: float = 10.0) -> int | None:
        self.send('stop')
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def dev_shm_used_mb() -> float | None:
    try:
        st = os.statvfs('/dev/shm')
    except OSError:
        return None
    return (st.f_blocks - st.f_bfree) * st.f_frsize / 2**20


def dev_shm_total_mb() -> float | None:
    try:
        st = os.statvfs('/dev/shm')
    except OSError:
        return None
    return st.f_blocks * st.f_frsize / 2**20


def worker_env(base: dict, with_profile: bool, profile: str, domain: int) -> dict:
    env = {k: v for k, v in base.items() if k != PROFILE_ENV and k not in FOREIGN_ENV}
    env['ROS_DOMAIN_ID'] = str(domain)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    env['PYTHONUNBUFFERED'] = '1'
    if with_profile:
        env[PROFILE_ENV] = profile
    return env


def _stats(values: list[float]) -> dict:
    if not values:
        return {'median_ms': None, 'p90_ms': None, 'max_ms': None}
    p50, p90 = np.percentile(values, [50, 90])
    return {'median_ms': float(p50), 'p90_ms': float(p90), 'max_ms': float(max(values))}


def run_case(cfg: Config, size: Size, pub_rel: str, sub_rel: str, mode: str, domain: int, index: int,
             logs: Path, log=print) -> dict:
    messages = cfg.messages.get(size.name, size.messages)
    name = f'{size.name}_{pub_rel}_to_{sub_rel}_{mode}'
    topic = f'/bench_transport/c{index}_{size.name}'
    common = {'topic': topic, 'depth': cfg.depth, 'size': asdict(size), 'messages': messages,
              'match_timeout_s': cfg.match_timeout_s}
    row = {'case': name, 'size': size.name, 'points': size.points, 'bytes': size.nbytes, 'rate_hz': size.rate_hz,
           'publisher': pub_rel, 'subscriber': sub_rel, 'profile': mode, 'sent': 0, 'received': 0,
           'delivery': 0.0, 'error': None}
    shm_before = dev_shm_used_mb()
    sub = Worker('sub', {**common, 'reliability': sub_rel},
                 worker_env(os.environ, mode in ('subscriber', 'both'), cfg.profile, domain),
                 logs / f'{name}.sub.log')
    pub = None
    try:
        sub.wait_for('ready', cfg.match_timeout_s)
        pub = Worker('pub', {**common, 'reliability': pub_rel},
                     worker_env(os.environ, mode in ('publisher', 'both'), cfg.profile, domain),
                     logs / f'{name}.pub.log')
        t0 = time.monotonic()
        for w in (pub, sub):
            if w.wait_for('matched', cfg.match_timeout_s) is None:
                raise RuntimeError(f'{w.role}: not matched within {cfg.match_timeout_s} s')
        row['match_s'] = time.monotonic() - t0
        pub.send('go')
        sent = pub.wait_for('sent', messages / size.rate_hz + 120)
        if sent is None:
            raise RuntimeError('publisher did not finish sending')
        row['sent'] = sent['count']
        row['send_s'] = sent['seconds']
        row['publish_call'] = _stats(sent['publish_ms'])
        # drain: until every cloud arrived or none arrived for quiet_s
        last, last_change = sub.count('recv'), time.monotonic()
        while last < messages and time.monotonic() - last_change < cfg.quiet_s:
            time.sleep(0.05)
            n = sub.count('recv')
            if n != last:
                last, last_change = n, time.monotonic()
        shm_during = dev_shm_used_mb()
        sub.send('stop')
        done = sub.wait_for('done', 30)
        if done is None:
            raise RuntimeError('subscriber did not report')
        pub.send('stop')
        pub_done = pub.wait_for('done', 30)
        records = done['records']
        intact = {seq for seq, _, ok in records if ok}
        row['received'] = len(intact)
        row['delivery'] = len(intact) / row['sent'] if row['sent'] else 0.0
        row['missing'] = sorted(set(range(row['sent'])) - intact)
        row['corrupt'] = sum(not ok for _, _, ok in records)
        row['duplicates'] = len(records) - len({seq for seq, _, _ in records})
        row['latency'] = _stats([lat for _, lat, ok in records if ok])
        row['latencies_ms'] = [round(lat, 3) for _, lat, ok in records if ok]
        row['memory'] = {'publisher': (pub_done or sent).get('memory'), 'subscriber': done.get('peak_memory'),
                         'dev_shm_growth_mb': (None if shm_before is None or shm_during is None
                                               else shm_during - shm_before)}
    except RuntimeError as e:
        row['error'] = str(e)
    finally:
        for w in (pub, sub):
            if w is not None:
                w.close()
    lat = row.get('latency') or {}
    log(f"{name:42s} {row['received']:>3}/{row['sent']:<3} "
        + (f"median {lat['median_ms']:.1f} ms p90 {lat['p90_ms']:.1f} ms" if lat.get('median_ms') is not None
           else '') + (f"  ERROR {row['error']}" if row['error'] else ''))
    return row


def host_info(cfg: Config) -> dict:
    def sysctl(name: str):
        try:
            return int(Path('/proc/sys/' + name.replace('.', '/')).read_text())
        except (OSError, ValueError):
            return None

    profile = Path(cfg.profile)
    return {'rmw': os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp'),
            'discovery_range': os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST'),
            'ros_distro': os.environ.get('ROS_DISTRO'),
            'net.core.rmem_max': sysctl('net.core.rmem_max'), 'net.core.wmem_max': sysctl('net.core.wmem_max'),
            'dev_shm_total_mb': dev_shm_total_mb(),
            'profile': str(profile.relative_to(ROOT)) if profile.is_relative_to(ROOT) else str(profile),
            'profile_sha256': hashlib.sha256(profile.read_bytes()).hexdigest()[:16] if profile.exists() else None,
            'fastdds_version': _fastdds_version()}


def _fastdds_version() -> str | None:
    prefix = Path(os.environ.get('VIRTUAL_ENV', sys.prefix)) / 'lib'
    for p in sorted(prefix.glob('libfastdds.so.*.*.*')) + sorted(prefix.glob('libfastrtps.so.*.*.*')):
        return p.name.split('.so.', 1)[1]
    return None


def run(cfg: Config, log=print) -> dict:
    from _machine import machine_info

    domain = cfg.domain if cfg.domain is not None else random.Random(os.getpid() ^ time.time_ns()).randint(150, 230)
    logs = ROOT / 'out' / 'bench_transport'
    logs.mkdir(parents=True, exist_ok=True)
    result = {'name': NAME, 'machine': machine_info(), 'config': {**asdict(cfg), 'domain': domain},
              'host': host_info(cfg), 'sizes': {k: asdict(SIZES[k]) | {'bytes': SIZES[k].nbytes}
                                                for k in cfg.sizes},
              'cases': []}
    log(f"domain {domain}, discovery {result['host']['discovery_range']}, profile {result['host']['profile']}, "
        f"/dev/shm {result['host']['dev_shm_total_mb']:.0f} MiB")
    index = 0
    for size_name in cfg.sizes:
        for pub_rel, sub_rel in cfg.pairs:
            for mode in cfg.profiles:
                result['cases'].append(run_case(cfg, SIZES[size_name], pub_rel, sub_rel, mode, domain, index,
                                                logs, log))
                index += 1
    result['memory'] = memory_summary(result['cases'])
    return result


def memory_summary(cases: list[dict]) -> dict:
    """Largest RSS / resident shared memory / mapped segments per role and profile setting (MiB)."""
    out: dict[str, dict] = {}
    for row in cases:
        mem = row.get('memory') or {}
        for role in ('publisher', 'subscriber'):
            m = mem.get(role) or {}
            has = row['profile'] in ('both', role)
            key = f"{role}_{'profile' if has else 'default'}"
            s = out.setdefault(key, {'rss_mb': 0.0, 'rss_shmem_mb': 0.0, 'shm_mapped_mb': 0.0,
                                     'shm_largest_mapping_mb': 0.0})
            for k in s:
                if m.get(k) is not None:
                    s[k] = max(s[k], float(m[k]))
        growth = mem.get('dev_shm_growth_mb')
        if growth is not None:
            out.setdefault('dev_shm_growth_mb_max', {})
            key = f"{row['size']}_{row['profile']}"
            out['dev_shm_growth_mb_max'][key] = max(out['dev_shm_growth_mb_max'].get(key, 0.0), growth)
    return out


# ----------------------------------------------------------------------------- report

def _fmt(v, spec: str = '.1f') -> str:
    return '-' if v is None else format(v, spec)


def _bytes(n: int) -> str:
    return f'{n / 1e6:.1f} MB' if n >= 100_000 else f'{n / 1e3:.1f} kB'


PROFILE_LABEL = {'none': 'none (defaults)', 'publisher': 'publisher only', 'subscriber': 'subscriber only',
                 'both': 'both'}


def table(cases: list[dict]) -> list[str]:
    lines = ['| cloud | publisher -> subscriber | profile | delivered | latency median ms | p90 ms |',
             '|---|---|---|---:|---:|---:|']
    for r in cases:
        lat = r.get('latency') or {}
        got = f"{r['received']}/{r['sent']}" if not r['error'] else f"error: {r['error']}"
        lines.append(f"| {r['size']} ({_bytes(r['bytes'])}) | {r['publisher']} -> {r['subscriber']} | "
                     f"{PROFILE_LABEL[r['profile']]} | {got} | {_fmt(lat.get('median_ms'))} | "
                     f"{_fmt(lat.get('p90_ms'))} |")
    return lines


def markdown(r: dict) -> str:
    m, h, c = r['machine'], r['host'], r['config']
    sizes = '; '.join(f"`{k}` {s['width']}x{s['height']} = {_bytes(s['bytes'])} at {s['rate_hz']:g} Hz, "
                      f"{c['messages'].get(k, s['messages'])} sent" for k, s in r['sizes'].items())
    lines = [
        '## DDS transport of large clouds (Fast DDS profile)', '',
        f"`bench/bench_transport.py` on {m['cpu']} ({m['cpu_count']} cores, load average "
        f"{', '.join(f'{x:.1f}' for x in m['load_average'] or [])} at start), {h['rmw']} (Fast DDS "
        f"{h['fastdds_version']}), `ROS_AUTOMATIC_DISCOVERY_RANGE={h['discovery_range']}`, "
        f"`net.core.rmem_max` {_fmt(h['net.core.rmem_max'], 'd')} B, /dev/shm {h['dev_shm_total_mb']:.0f} MiB, "
        f"commit {m['git_commit']}{' + uncommitted changes' if m['uncommitted_changes'] else ''}, {m['date']}.", '',
        'Publisher and subscriber in two processes on one host, real `sensor_msgs/PointCloud2` (x y z rgb), '
        f"KEEP_LAST {c['depth']}, volatile. Profile: `{h['profile']}` in `FASTDDS_DEFAULT_PROFILES_FILE` of "
        'nobody, of the publisher only, of the subscriber only, or of both. Delivered = distinct clouds '
        'received intact / sent; latency = receive time in the subscriber callback (deserialised) minus the '
        'stamp written just before `publish()` (same clock), over the clouds received. Clouds: ' + sizes
        + '. best_effort -> reliable cannot match and is not run.', '',
        *table(r['cases']), '']
    mem = r.get('memory') or {}
    rows = [(k, v) for k, v in mem.items() if k != 'dev_shm_growth_mb_max']
    if rows:
        lines += ['Memory per process (largest over the cases, MiB): RSS, resident shared memory (`RssShmem`: '
                  'the pages of Fast DDS segments this process touched) and the `/dev/shm/fastdds_*` address space '
                  'it maps (its own segment and those of the peers it sends to or receives from; address space, '
                  'not memory, until touched). Fast DDS zeroes a participant\'s own segment when it starts, so a '
                  'process with the profile has all of it resident from the start, whatever it sends.', '',
                  '| process | RSS | RssShmem | fastdds segments mapped | largest mapping |',
                  '|---|---:|---:|---:|---:|']
        for k, v in rows:
            lines.append(f"| {k.replace('_', ' ')} | {v['rss_mb']:.0f} | {v['rss_shmem_mb']:.1f} | "
                         f"{v['shm_mapped_mb']:.0f} | {v['shm_largest_mapping_mb']:.0f} |")
        growth = mem.get('dev_shm_growth_mb_max') or {}
        if growth:
            lines += ['', 'Growth of `/dev/shm` while a case ran (MiB, largest): '
                      + ', '.join(f'{k} {v:.1f}' for k, v in sorted(growth.items())) + '.']
        lines.append('')
    return '\n'.join(lines)


def plot(r: dict, path: Path) -> Path | None:
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cases = [c for c in r['cases'] if not c['error']]
    if not cases:
        return None
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    x = np.arange(len(cases))
    colours = {'none': '#999999', 'publisher': '#4c72b0', 'subscriber': '#dd8452', 'both': '#55a868'}
    ax1.bar(x, [100 * c['delivery'] for c in cases], color=[colours[c['profile']] for c in cases])
    ax1.set_ylabel('delivered %')
    ax1.set_ylim(0, 125)
    ax1.set_yticks([0, 20, 40, 60, 80, 100])
    for i, c in enumerate(cases):
        if c.get('latencies_ms'):
            ax2.scatter(np.full(len(c['latencies_ms']), i), c['latencies_ms'], s=6, color=colours[c['profile']])
    ax2.set_yscale('log')
    ax2.set_ylabel('latency ms (each cloud)')
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cases):
        groups.setdefault((c['size'], c['publisher'], c['subscriber']), []).append(i)
    short = {'reliable': 'rel', 'best_effort': 'BE'}
    ax2.set_xticks([float(np.mean(v)) for v in groups.values()],
                   [f'{k[0]}\n{short[k[1]]}->{short[k[2]]}' for k in groups], fontsize=8)
    for v in list(groups.values())[1:]:
        for ax in (ax1, ax2):
            ax.axvline(v[0] - 0.5, color='#dddddd', lw=0.8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=col) for col in colours.values()]
    ax1.legend(handles, [f'profile: {PROFILE_LABEL[k]}' for k in colours], fontsize=8, loc='upper center', ncol=4)
    ax1.set_title('Clouds over Fast DDS between two processes on one host (publisher -> subscriber reliability)',
                  fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    plot(result, out / f'{NAME}.png')
    (out / f'{NAME}.json').write_text(json.dumps(result, indent=1))
    md = markdown(result)
    if (out / f'{NAME}.png').exists():
        md += f'\n![delivery and latency per case](bench/{NAME}.png)\n'
    (out / f'{NAME}.md').write_text(md)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--worker']:
        return {'pub': worker_pub, 'sub': worker_sub}[argv[1]](json.loads(argv[2]))
    d = Config()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--sizes', default=','.join(d.sizes), help=f"clouds, of {', '.join(SIZES)} (default %(default)s)")
    p.add_argument('--profiles', default=','.join(d.profiles),
                   help='who loads the profile: none, publisher, both (default %(default)s)')
    p.add_argument('--pairs', default=','.join(f'{a}:{b}' for a, b in d.pairs),
                   help='publisher:subscriber reliabilities (default %(default)s)')
    p.add_argument('--messages', type=int, default=None, help='clouds sent per case (default: 30 VGA, 20 2M)')
    p.add_argument('--quiet', type=float, default=d.quiet_s,
                   help='a case ends once nothing arrived for this many s (default %(default)s)')
    p.add_argument('--profile', default=d.profile, help='the Fast DDS profile (default %(default)s)')
    p.add_argument('--domain', type=int, default=None, help='ROS_DOMAIN_ID (default: random in 150-230)')
    p.add_argument('--out', default=d.out, help='output folder (default %(default)s)')
    p.add_argument('--quick', action='store_true', help='smoke run: VGA, 5 clouds, reliable and best effort, '
                   'every profile setting, ~30 s')
    a = p.parse_args(argv)
    cfg = Config(sizes=tuple(s for s in a.sizes.split(',') if s), profiles=tuple(s for s in a.profiles.split(',') if s),
                 pairs=tuple(tuple(x.split(':')) for x in a.pairs.split(',') if x), quiet_s=a.quiet,
                 profile=str(Path(a.profile).resolve()), domain=a.domain, out=a.out)
    if a.quick:
        cfg = Config(**{**asdict(cfg), **QUICK})
    if a.messages is not None:
        cfg.messages = {k: a.messages for k in cfg.sizes}
    unknown = ({*cfg.sizes} - set(SIZES)) | ({*cfg.profiles} - set(PROFILE_MODES)) \
        | {f'{x}:{y}' for x, y in cfg.pairs if (x, y) not in PAIRS}
    if unknown:
        p.error(f'unknown or incompatible: {sorted(unknown)}')
    result = run(cfg)
    write_outputs(result, Path(cfg.out))
    print(f'wrote {cfg.out}/{NAME}.json, .md' + (', .png' if (Path(cfg.out) / f'{NAME}.png').exists() else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
