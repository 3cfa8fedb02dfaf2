"""Load test of vizion3d-serve-rest and vizion3d-serve-grpc: one request at a time, then N concurrent clients.

Starts each server (``vizion3d-serve-rest`` / ``vizion3d-serve-grpc`` on PATH, its own process, with
``--model``; or uses a running one with ``--url``) and sends it the real TUM RGB-D frame as vizion3D's clients
do: its organised VGA cloud as a binary PLY in OpenGL space (307,200 points, 4.6 MB) with the colour PNG and
the camera's intrinsics (REST: a multipart form; gRPC: the request message). After one warm-up request, for
each count in ``--clients`` (default 1 and 2; 1 client = one request at a time, nothing waits), that many
clients, each with its own connection, send their next request as soon as their last one is answered, for
``--duration`` s: requests/s, latency p50/p95 (from sending the request to the decoded answer: the JSON for
REST, the response message for gRPC), errors by status, the server's CPU, and its RSS every
``--sample-period`` s (does memory stay bounded?). Both transports run the same phases with the same code;
only the client differs.

It writes ``load_servers.json`` and ``load_servers.md`` (a section for docs/BENCHMARKS.md) into ``--out``;
the servers' logs go to ``--logs``/<transport>.log. The exit status is 1 when a request failed.

    source scripts/env.sh
    python bench/load_servers.py --clients 1,2 --duration 30 --out docs/bench   # both transports, ~2.5 min
    python bench/load_servers.py --transport grpc --clients 1,4 --duration 60
    python bench/load_servers.py --quick --out /tmp/load                        # 1 and 2 clients, 4 s each
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, speed_probe  # noqa: E402
from _node_io import cpu_seconds  # noqa: E402
from soak import rss_mb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('VIZION3D_SHARED', ROOT.parent / 'shared'))
NAME = 'load_servers'
ROUTE = '/annotation/object-mask-annotation-3d'
#: The server command of each transport and the label in the report.
EXECUTABLES = {'rest': 'vizion3d-serve-rest', 'grpc': 'vizion3d-serve-grpc'}
LABELS = {'rest': 'REST', 'grpc': 'gRPC'}
TIMEOUT_S = 300.0


@dataclass
class LoadConfig:
    """What one run does (the command-line options)."""

    transports: tuple[str, ...] = ('rest', 'grpc')
    clients: tuple[int, ...] = (1, 2)
    duration: float = 30.0
    workers: int = 2
    model: str = str(SHARED / 'models' / 'yolov8n-seg-coco.pt')
    device: str = 'cpu'
    imgsz: int = 640
    frame: str = str(SHARED / 'data' / 'rgbd' / 'tum_desk')
    url: str | None = None
    sample_period: float = 1.0
    startup_timeout: float = 300.0
    out: str = 'docs/bench'
    logs: str = 'out/load_servers'
    quick: bool = False


@dataclass(frozen=True)
class Frame:
    """What every request sends: the cloud as a PLY, the colour PNG, the intrinsics and imgsz."""

    ply: bytes
    png: bytes
    intrinsics: dict[str, float]
    points: int
    imgsz: int


def load_frame(folder: str, imgsz: int) -> Frame:
    """The RGB-D frame in ``folder`` as a vizion3D client sends it (cloud in OpenGL space, NaN without depth)."""
    from vizion3d_ros.core.camera.frames import optical_to_gl
    from vizion3d_ros.core.io.plyio import ply_bytes
    from vizion3d_ros.core.io.rgbd import depth_to_points_optical, load_rgbd_folder

    frame = load_rgbd_folder(folder)
    gl = optical_to_gl(depth_to_points_optical(frame.depth, frame.camera))
    cam = frame.camera
    return Frame(ply=ply_bytes(gl, frame.color.reshape(-1, 3)), png=(Path(folder) / 'color.png').read_bytes(),
                 intrinsics={'fx': cam.fx, 'fy': cam.fy, 'cx': cam.cx, 'cy': cam.cy}, points=len(gl), imgsz=imgsz)


class RestClient:
    """One HTTP connection (httpx) posting the frame as vizion3D's multipart form."""

    def __init__(self, address: str, frame: Frame) -> None:
        import httpx

        self._http = httpx.Client(base_url=address, timeout=TIMEOUT_S)
        self._files = {'point_cloud_ply': ('cloud.ply', frame.ply, 'application/octet-stream'),
                       'image': ('color.png', frame.png, 'image/png')}
        self._data = {**{k: str(v) for k, v in frame.intrinsics.items()}, 'imgsz': str(frame.imgsz)}

    def ready(self) -> bool:
        return self._http.get('/ready').status_code == 200

    def annotate(self) -> tuple[str, int]:
        resp = self._http.post(ROUTE, files=self._files, data=self._data)
        if resp.status_code != 200:
            return str(resp.status_code), -1
        return 'ok', len(resp.json()['annotations'])

    def close(self) -> None:
        self._http.close()


class GrpcClient:
    """One gRPC channel of its own (no subchannel shared with the other clients) calling the lifting stub."""

    def __init__(self, address: str, frame: Frame) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from vizion3d_ros.servers.proto import lifting_pb2 as pb
        from vizion3d_ros.servers.proto import lifting_pb2_grpc as pb_grpc

        self._rpc_error = grpc.RpcError
        self._health_pb2 = health_pb2
        options = [('grpc.max_receive_message_length', -1), ('grpc.max_send_message_length', -1),
                   ('grpc.use_local_subchannel_pool', 1)]
        self._channel = grpc.insecure_channel(address, options=options)
        self._stub = pb_grpc.LiftingServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._request = pb.ObjectMaskAnnotation3DRequest(
            point_cloud_ply=frame.ply, image_bytes=frame.png, imgsz=frame.imgsz,
            advanced_config=pb.ObjectMaskAnnotation3DConfig(**frame.intrinsics))

    def ready(self) -> bool:
        h = self._health_pb2
        return self._health.Check(h.HealthCheckRequest(), timeout=5).status == h.HealthCheckResponse.SERVING

    def annotate(self) -> tuple[str, int]:
        try:
            resp = self._stub.RunObjectMaskAnnotation3D(self._request, timeout=TIMEOUT_S)
        except self._rpc_error as exc:
            return exc.code().name, -1
        return 'ok', len(resp.annotations)

    def close(self) -> None:
        self._channel.close()


CLIENTS = {'rest': RestClient, 'grpc': GrpcClient}


def one_request(client) -> tuple[float, str, int]:
    """Latency (ms), status ('ok', an HTTP status, a gRPC code or an exception's name) and annotation count."""
    t0 = time.perf_counter()
    try:
        status, count = client.annotate()
    except Exception as exc:  # noqa: BLE001 - transport errors count as errors
        status, count = type(exc).__name__, -1
    return (time.perf_counter() - t0) * 1e3, status, count


class ServerProcess:
    """One transport's server command on a free port of 127.0.0.1, or nothing when an address is given."""

    def __init__(self, transport: str, cfg: LoadConfig, log_path: Path) -> None:
        self.proc = None
        self.cmd = None
        self.log_path = log_path
        if cfg.url:
            self.address = cfg.url.rstrip('/')
            return
        exe = shutil.which(EXECUTABLES[transport])
        if exe is None:
            raise SystemExit(f'{EXECUTABLES[transport]} is not on PATH: source scripts/env.sh (after make setup)')
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        self.address = f'http://127.0.0.1:{port}' if transport == 'rest' else f'127.0.0.1:{port}'
        self.cmd = [exe, '--object_mask_annotation_3d', '--annotation_model', cfg.model, '--device', cfg.device,
                    '--host', '127.0.0.1', '--port', str(port), '--workers', str(cfg.workers)]
        with open(log_path, 'wb') as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> float:
        """Seconds until ``ready()`` (exceptions count as not ready); fails when the server exits or is late."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f'the server exited with {self.proc.returncode}:\n{self.log()[-3000:]}')
            try:
                if ready():
                    return time.monotonic() - t0
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.3)
        raise RuntimeError(f'the server was not ready after {timeout} s:\n{self.log()[-3000:]}')

    def log(self) -> str:
        return self.log_path.read_text(errors='replace') if self.log_path.is_file() else ''

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def stats(latencies_ms: list[float]) -> dict:
    """Percentiles of a list of latencies (ms)."""
    if not latencies_ms:
        return {'runs': 0}
    a = np.asarray(latencies_ms, dtype=np.float64)
    q = np.percentile(a, [10, 50, 90, 95])
    return {'runs': int(len(a)), 'p10_ms': round(float(q[0]), 1), 'median_ms': round(float(q[1]), 1),
            'p90_ms': round(float(q[2]), 1), 'p95_ms': round(float(q[3]), 1), 'mean_ms': round(float(a.mean()), 1),
            'max_ms': round(float(a.max()), 1)}


def rss_summary(samples: list[dict]) -> dict:
    """First, lowest, highest and last RSS (MiB) of the samples, and the range over their second half."""
    rss = [s['rss_mb'] for s in samples if s.get('rss_mb') is not None]
    half = rss[len(rss) // 2:]
    return {'first': rss[0] if rss else None, 'min': min(rss) if rss else None, 'max': max(rss) if rss else None,
            'last': rss[-1] if rss else None, 'range_second_half': round(max(half) - min(half), 1) if half else None}


def run_phase(transport: str, server: ServerProcess, frame: Frame, clients: int, cfg: LoadConfig,
              series: list[dict], t_start: float) -> dict:
    """``clients`` clients back to back for ``cfg.duration`` s; RSS samples are appended to ``series``."""
    conns = [CLIENTS[transport](server.address, frame) for _ in range(clients)]
    done, stop, lock = [], threading.Event(), threading.Lock()

    def loop(conn) -> None:
        while not stop.is_set():
            r = one_request(conn)
            with lock:
                done.append(r)

    threads = [threading.Thread(target=loop, args=(c,), daemon=True) for c in conns]
    samples: list[dict] = []
    start = time.monotonic()
    cpu0 = cpu_seconds(server.pid) if server.pid else float('nan')
    for t in threads:
        t.start()
    while time.monotonic() - start < cfg.duration:
        time.sleep(max(0.01, min(cfg.sample_period, cfg.duration - (time.monotonic() - start))))
        with lock:
            n = len(done)
        samples.append({'t': round(time.monotonic() - t_start, 2), 'clients': clients, 'requests_done': n,
                        'rss_mb': round(rss_mb(server.pid), 1) if server.pid else None})
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    cpu = (cpu_seconds(server.pid) - cpu0) if server.pid else float('nan')
    for c in conns:
        c.close()
    series.extend(samples)
    ok = [r for r in done if r[1] == 'ok']
    errors: dict[str, int] = {}
    for r in done:
        if r[1] != 'ok':
            errors[r[1]] = errors.get(r[1], 0) + 1
    return {'clients': clients, **stats([r[0] for r in ok]), 'seconds': round(elapsed, 1), 'requests': len(done),
            'ok': len(ok), 'errors': errors, 'requests_per_s': round(len(ok) / elapsed, 2),
            'server_cpu_cores': round(cpu / elapsed, 2) if server.pid else None,
            'annotations_per_request': sorted({r[2] for r in ok}), 'rss_mb': rss_summary(samples)}


def run_transport(transport: str, cfg: LoadConfig, frame: Frame, logs: Path, log=print) -> dict:
    """Start the transport's server, warm it up, run every phase, stop it."""
    server = ServerProcess(transport, cfg, logs / f'{transport}.log')
    series: list[dict] = []
    phases = []
    try:
        probe = CLIENTS[transport](server.address, frame)
        try:
            startup_s = server.wait_ready(probe.ready, cfg.startup_timeout)
            rss_ready = rss_mb(server.pid) if server.pid else None
            log(f'{NAME}: {LABELS[transport]} server {server.address} ready after {startup_s:.1f} s (RSS '
                f'{rss_ready or float("nan"):.0f} MiB); clients {list(cfg.clients)}, {cfg.duration:g} s each')
            warmup = one_request(probe)  # first-request costs are not the server's steady state
        finally:
            probe.close()
        t_start = time.monotonic()
        for n in cfg.clients:
            phases.append(run_phase(transport, server, frame, n, cfg, series, t_start))
            p = phases[-1]
            log(f"{NAME}: {LABELS[transport]} {n} client(s): {p['requests_per_s']} requests/s, p50 "
                f"{p.get('median_ms')} ms, p95 {p.get('p95_ms')} ms, errors {p['errors'] or 0}")
    finally:
        exit_code = server.stop()
    return {'server': {'address': server.address, 'command': server.cmd, 'exit_code': exit_code,
                       'startup_s': round(startup_s, 1), 'rss_mb_ready': None if rss_ready is None
                       else round(rss_ready, 1), 'log': str(server.log_path),
                       'log_errors': [ln for ln in server.log().splitlines()
                                      if 'ERROR' in ln or 'Traceback' in ln][:40]},
            'warmup': {'ms': round(warmup[0], 1), 'status': warmup[1]},
            'phases': phases, 'rss_mb': rss_summary(series), 'series': series}


def run_load(cfg: LoadConfig, log=print) -> dict:
    """Every transport in turn; returns the results (also written to ``cfg.out``)."""
    out, logs = Path(cfg.out), Path(cfg.logs)
    out.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    frame = load_frame(cfg.frame, cfg.imgsz)
    result = {'name': NAME, 'quick': cfg.quick, 'config': asdict(cfg), 'machine': machine_info(),
              'input': {'frame': Path(cfg.frame).name, 'points': frame.points, 'ply_mb': round(len(frame.ply) / 1e6, 2),
                        'image': '640x480 PNG', 'imgsz': cfg.imgsz},
              'transports': {t: run_transport(t, cfg, frame, logs, log) for t in cfg.transports}}
    result['machine']['speed_probe_ms_after'] = round(speed_probe(), 2)
    (out / f'{NAME}.json').write_text(json.dumps(result, indent=1) + '\n')
    (out / f'{NAME}.md').write_text(markdown(result))
    log(markdown(result))
    log(f"wrote {out / f'{NAME}.json'}, {out / f'{NAME}.md'}")
    return result


def _range(m: dict) -> str:
    return f"{m['min']:.0f}-{m['max']:.0f}" if m.get('min') is not None else 'n/a'


def markdown(r: dict) -> str:
    """The section of docs/BENCHMARKS.md."""
    cfg, inp = r['config'], r['input']
    rows, rss = [], []
    for t, tr in r['transports'].items():
        for p in tr['phases']:
            errors = ', '.join(f'{k}: {v}' for k, v in p['errors'].items()) or '0'
            rows.append(f"| {LABELS[t]} | {p['clients']} | {p['seconds']:g} | {p['requests']} | "
                        f"{p['requests_per_s']} | {p.get('median_ms')} | {p.get('p95_ms')} | {errors} | "
                        f"{p['server_cpu_cores']} | {_range(p['rss_mb'])} |")
        m, s = tr['rss_mb'], tr['server']
        if s['rss_mb_ready'] is None:
            rss.append(f'{LABELS[t]} not measured (a server already running at --url)')
            continue
        rss.append(f"{LABELS[t]} {s['rss_mb_ready']} MiB once ready ({s['startup_s']:g} s after the start), "
                   f"{_range(m)} MiB under load, {m['last']} MiB at the end (range over the second half: "
                   f"{m['range_second_half']} MiB)")
    servers = ' and '.join(f'`{EXECUTABLES[t]}`' for t in r['transports'])
    how = '--quick' if r['quick'] else f"--clients {','.join(map(str, cfg['clients']))} --duration {cfg['duration']:g}"
    if len(r['transports']) == 1:
        how += f" --transport {next(iter(r['transports']))}"
    return '\n'.join([
        '## REST and gRPC servers under load (`bench/load_servers.py`)', '',
        f"{servers} with `{Path(cfg['model']).name}` on `{cfg['device']}` (`--workers {cfg['workers']}`), each "
        f"request the {inp['frame']} frame: a {inp['points']:,}-point binary PLY in OpenGL space "
        f"({inp['ply_mb']} MB) plus the {inp['image']} and its intrinsics, imgsz {inp['imgsz']}. Each client sends "
        'its next request as soon as its last one is answered, over its own connection; 1 client is one request '
        'at a time. The clients are threads of the benchmark on the same machine. Latency is from sending the '
        'request to the decoded answer (the JSON for REST, the response message for gRPC). '
        f'Measured with `python bench/load_servers.py {how}` (not part of `make bench`).', '',
        '| Transport | Clients | Seconds | Requests | Requests/s | p50 ms | p95 ms | Errors | Server CPU (cores) '
        '| Server RSS MiB |', '|---|---:|---:|---:|---:|---:|---:|---|---:|---|', *rows, '',
        'Server RSS: ' + '; '.join(rss) + f". Machine: {r['machine']['cpu']}, {r['machine']['cpu_count']} CPUs, "
        f"speed probe {r['machine']['speed_probe_ms']} ms.", ''])


def _ints(text: str) -> tuple[int, ...]:
    values = tuple(int(x) for x in text.split(',') if x.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f'expected client counts >= 1 separated by commas, got {text!r}')
    return values


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit status 1 when a request failed."""
    d = LoadConfig()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--transport', choices=('rest', 'grpc', 'both'), default='both',
                   help='which server (default %(default)s)')
    p.add_argument('--clients', type=_ints, default=d.clients,
                   help='client counts, one phase each (default 1,2; 1 = one request at a time)')
    p.add_argument('--duration', type=float, default=d.duration, help='seconds per phase (default %(default)s)')
    p.add_argument('--workers', type=int, default=d.workers, help="the servers' --workers (default %(default)s)")
    p.add_argument('--model', default=d.model, help='checkpoint (default: the shared YOLOv8n-seg COCO)')
    p.add_argument('--device', default=d.device, help='server device (default %(default)s)')
    p.add_argument('--imgsz', type=int, default=d.imgsz, help='imgsz of the requests (default %(default)s)')
    p.add_argument('--frame', default=d.frame, help='RGB-D folder (default: the shared TUM frame)')
    p.add_argument('--url', default=None, help='use the server running there (http://host:port for REST, '
                   'host:port for gRPC) instead of starting one; needs --transport rest or grpc')
    p.add_argument('--sample-period', type=float, default=d.sample_period, help='seconds between RSS samples')
    p.add_argument('--out', default=d.out, help='output folder (default %(default)s)')
    p.add_argument('--logs', default=d.logs, help="folder of the servers' logs (default %(default)s)")
    p.add_argument('--quick', action='store_true', help='1 and 2 clients for 4 s each')
    a = p.parse_args(argv)
    if a.url and a.transport == 'both':
        p.error('--url needs --transport rest or --transport grpc')
    cfg = LoadConfig(transports=('rest', 'grpc') if a.transport == 'both' else (a.transport,),
                     clients=(1, 2) if a.quick else a.clients, duration=4.0 if a.quick else a.duration,
                     workers=a.workers, model=a.model, device=a.device, imgsz=a.imgsz, frame=a.frame, url=a.url,
                     sample_period=0.5 if a.quick else a.sample_period, out=a.out, logs=a.logs, quick=a.quick)
    r = run_load(cfg)
    failed = sum(sum(sum(p['errors'].values()) for p in t['phases']) + (t['warmup']['status'] != 'ok')
                 for t in r['transports'].values())
    for t, tr in r['transports'].items():
        print(f"{LABELS[t]}: " + ', '.join(f"{p['clients']} client(s) {p['requests_per_s']} requests/s"
                                         for p in tr['phases']), file=sys.stderr)
    print(f'errors: {failed}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
