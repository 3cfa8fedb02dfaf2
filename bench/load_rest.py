"""Load test of vizion3d-serve-rest: N concurrent clients for T seconds against one request at a time.

Starts the real server (``vizion3d-serve-rest`` on PATH, its own process, ``--object_mask_annotation_3d``
with ``--model``; or uses a running one with ``--url``) and posts the real TUM RGB-D frame: its organised
VGA cloud as a binary PLY in OpenGL space (307,200 points, 4.6 MB) with the colour PNG and the camera's
intrinsics, as vizion3D clients do. Two phases:

- ``serial``: ``--serial`` requests one after the other (one client): latency when nothing waits;
- ``load``: ``--clients`` clients, each posting its next request as soon as its last one is answered, for
  ``--duration`` s: requests/s, latency p50/p95 (time from sending to the whole JSON answer), errors by
  status, and the server's RSS and CPU every ``--sample-period`` s (does memory stay bounded?).

It writes ``load_rest.json`` and ``load_rest.md`` (a section for docs/BENCHMARKS.md) into ``--out``; the
server's log goes to ``--logs``/server.log.

    source scripts/env.sh
    python bench/load_rest.py --clients 4 --duration 60 --out docs/bench
    python bench/load_rest.py --quick --out /tmp/load   # ~20 s
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, speed_probe  # noqa: E402
from _node_io import cpu_seconds  # noqa: E402
from soak import rss_mb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('VIZION3D_SHARED', ROOT.parent / 'shared'))
NAME = 'load_rest'
ROUTE = '/annotation/object-mask-annotation-3d'


@dataclass
class LoadConfig:
    """What one run does (the command-line options)."""

    clients: int = 4
    duration: float = 60.0
    serial: int = 10
    workers: int = 2
    model: str = str(SHARED / 'models' / 'yolov8n-seg-coco.pt')
    device: str = 'cpu'
    imgsz: int = 640
    frame: str = str(SHARED / 'data' / 'rgbd' / 'tum_desk')
    url: str | None = None
    sample_period: float = 1.0
    startup_timeout: float = 300.0
    out: str = 'docs/bench'
    logs: str = 'out/load_rest'
    quick: bool = False


def frame_request(folder: str) -> tuple[dict, dict, int]:
    """The multipart files and form fields of the TUM frame, and its point count."""
    from vizion3d_ros.core.camera.frames import optical_to_gl
    from vizion3d_ros.core.io.plyio import ply_bytes
    from vizion3d_ros.core.io.rgbd import depth_to_points_optical, load_rgbd_folder

    frame = load_rgbd_folder(folder)
    gl = optical_to_gl(depth_to_points_optical(frame.depth, frame.camera))
    png = (Path(folder) / 'color.png').read_bytes()
    files = {'point_cloud_ply': ('cloud.ply', ply_bytes(gl, frame.color.reshape(-1, 3)), 'application/octet-stream'),
             'image': ('color.png', png, 'image/png')}
    cam = frame.camera
    return files, {'fx': str(cam.fx), 'fy': str(cam.fy), 'cx': str(cam.cx), 'cy': str(cam.cy)}, len(gl)


class ServerProcess:
    """``vizion3d-serve-rest`` on a free port, or nothing when a URL is given."""

    def __init__(self, cfg: LoadConfig, log_path: Path) -> None:
        self.proc = None
        self.log_path = log_path
        if cfg.url:
            self.url = cfg.url.rstrip('/')
            return
        exe = shutil.which('vizion3d-serve-rest')
        if exe is None:
            raise SystemExit('vizion3d-serve-rest is not on PATH: source scripts/env.sh (after make setup)')
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        self.url = f'http://127.0.0.1:{port}'
        self.cmd = [exe, '--object_mask_annotation_3d', '--annotation_model', cfg.model, '--device', cfg.device,
                    '--host', '127.0.0.1', '--port', str(port), '--workers', str(cfg.workers)]
        with open(log_path, 'wb') as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def wait_ready(self, client, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f'the server exited with {self.proc.returncode}:\n{self.log()[-3000:]}')
            try:
                if client.get('/ready').status_code == 200:
                    return
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


def one_request(client, files: dict, data: dict) -> tuple[float, int, int]:
    """Latency (ms), status, and annotation count (-1 unless 200) of one POST."""
    t0 = time.perf_counter()
    try:
        resp = client.post(ROUTE, files=files, data=data)
        status = resp.status_code
        count = len(resp.json()['annotations']) if status == 200 else -1
    except Exception:  # noqa: BLE001 - transport errors count as errors (status 0)
        status, count = 0, -1
    return (time.perf_counter() - t0) * 1e3, status, count


def run_load(cfg: LoadConfig, log=print) -> dict:
    """Run both phases; returns the results (also written to ``cfg.out``)."""
    import httpx

    out, logs = Path(cfg.out), Path(cfg.logs)
    out.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    files, data, points = frame_request(cfg.frame)
    data = {**data, 'imgsz': str(cfg.imgsz)}
    machine = machine_info()
    server = ServerProcess(cfg, logs / 'server.log')
    samples: list[dict] = []
    try:
        with httpx.Client(base_url=server.url, timeout=300.0) as probe:
            server.wait_ready(probe, cfg.startup_timeout)
            rss_ready = rss_mb(server.pid) if server.pid else float('nan')
            log(f'{NAME}: server {server.url} ready (RSS {rss_ready:.0f} MiB); {cfg.serial} serial requests, then '
                f'{cfg.clients} clients for {cfg.duration:g} s')
            one_request(probe, files, data)  # warm-up (first-request costs are not the server's steady state)
            serial = [one_request(probe, files, data) for _ in range(cfg.serial)]
        load, stop = [], threading.Event()
        lock = threading.Lock()

        def client_loop() -> None:
            with httpx.Client(base_url=server.url, timeout=300.0) as c:
                while not stop.is_set():
                    r = one_request(c, files, data)
                    with lock:
                        load.append((time.monotonic(), *r))

        threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(cfg.clients)]
        start = time.monotonic()
        cpu0 = cpu_seconds(server.pid) if server.pid else float('nan')
        for t in threads:
            t.start()
        while time.monotonic() - start < cfg.duration:
            time.sleep(cfg.sample_period)
            with lock:
                done = len(load)
            samples.append({'t': round(time.monotonic() - start, 2), 'rss_mb': round(rss_mb(server.pid), 1)
                            if server.pid else None, 'requests_done': done})
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        cpu = (cpu_seconds(server.pid) - cpu0) if server.pid else float('nan')
    finally:
        exit_code = server.stop()
    result = summarize(cfg, serial, load, samples, elapsed, cpu, points, machine)
    result['server'] = {'url': server.url, 'command': getattr(server, 'cmd', None), 'exit_code': exit_code,
                        'rss_mb_ready': round(rss_ready, 1), 'log': str(server.log_path),
                        'log_errors': [ln for ln in server.log().splitlines()
                                       if 'ERROR' in ln or 'Traceback' in ln][:40]}
    result['machine']['speed_probe_ms_after'] = round(speed_probe(), 2)
    (out / f'{NAME}.json').write_text(json.dumps(result, indent=1) + '\n')
    (out / f'{NAME}.md').write_text(markdown(result))
    log(markdown(result))
    log(f"wrote {out / f'{NAME}.json'}, {out / f'{NAME}.md'}")
    return result


def summarize(cfg: LoadConfig, serial: list, load: list, samples: list[dict], elapsed: float, cpu_s: float,
              points: int, machine: dict) -> dict:
    """The numbers of both phases."""
    ok = [r for r in load if r[2] == 200]
    errors: dict[str, int] = {}
    for r in load:
        if r[2] != 200:
            errors[str(r[2])] = errors.get(str(r[2]), 0) + 1
    rss = [s['rss_mb'] for s in samples if s.get('rss_mb') is not None]
    half = rss[len(rss) // 2:] if rss else []
    return {
        'name': NAME, 'quick': cfg.quick, 'config': asdict(cfg), 'machine': machine,
        'input': {'frame': Path(cfg.frame).name, 'points': points, 'image': '640x480 PNG', 'imgsz': cfg.imgsz},
        'serial': {**stats([r[0] for r in serial if r[1] == 200]), 'errors': sum(r[1] != 200 for r in serial),
                   'requests_per_s': round(1e3 / float(np.mean([r[0] for r in serial])), 2) if serial else None},
        'load': {**stats([r[1] for r in ok]), 'clients': cfg.clients, 'workers': cfg.workers,
                 'seconds': round(elapsed, 1), 'requests': len(load), 'ok': len(ok), 'errors': errors,
                 'requests_per_s': round(len(ok) / elapsed, 2) if elapsed > 0 else None,
                 'server_cpu_cores': round(cpu_s / elapsed, 2) if elapsed > 0 else None,
                 'annotations_per_request': sorted({r[3] for r in ok})},
        'rss_mb': {'min': min(rss) if rss else None, 'max': max(rss) if rss else None,
                   'first': rss[0] if rss else None, 'last': rss[-1] if rss else None,
                   'range_second_half': round(max(half) - min(half), 1) if half else None},
        'series': samples,
    }


def markdown(r: dict) -> str:
    """The section of docs/BENCHMARKS.md."""
    s, ld, m = r['serial'], r['load'], r['rss_mb']
    errors = ', '.join(f'{k}: {v}' for k, v in ld['errors'].items()) or '0'
    return '\n'.join([
        '## REST server under load (`bench/load_rest.py`)', '',
        f"`vizion3d-serve-rest` with `{Path(r['config']['model']).name}` on `{r['config']['device']}` "
        f"(`--workers {ld['workers']}`), each request the {r['input']['frame']} frame: a "
        f"{r['input']['points']:,}-point binary PLY in OpenGL space plus the {r['input']['image']} and its "
        f"intrinsics, imgsz {r['input']['imgsz']}. Latency is from sending the request to the whole JSON answer."
        + (' Quick run.' if r['quick'] else ''), '',
        '| Phase | Clients | Requests | Requests/s | p50 ms | p95 ms | Errors |',
        '|---|---|---|---|---|---|---|',
        f"| one at a time | 1 | {s.get('runs', 0)} | {s.get('requests_per_s')} | {s.get('median_ms')} | "
        f"{s.get('p95_ms')} | {s.get('errors')} |",
        f"| concurrent, {ld['seconds']:g} s | {ld['clients']} | {ld['requests']} | {ld['requests_per_s']} | "
        f"{ld.get('median_ms')} | {ld.get('p95_ms')} | {errors} |", '',
        f"Server RSS during the load: {m['first']} MiB at the start, {m['min']}-{m['max']} MiB, {m['last']} MiB "
        f"at the end (range over the second half: {m['range_second_half']} MiB); server CPU "
        f"{ld['server_cpu_cores']} cores on a {r['machine']['cpu_count']}-CPU machine. "
        f"Machine: {r['machine']['cpu']}, speed probe {r['machine']['speed_probe_ms']} ms.", ''])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit status 1 when a request failed."""
    d = LoadConfig()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--clients', type=int, default=d.clients, help='concurrent clients (default %(default)s)')
    p.add_argument('--duration', type=float, default=d.duration, help='seconds of load (default %(default)s)')
    p.add_argument('--serial', type=int, default=d.serial, help='requests one at a time first (default %(default)s)')
    p.add_argument('--workers', type=int, default=d.workers, help="the server's --workers (default %(default)s)")
    p.add_argument('--model', default=d.model, help='checkpoint (default: the shared YOLOv8n-seg COCO)')
    p.add_argument('--device', default=d.device, help='server device (default %(default)s)')
    p.add_argument('--imgsz', type=int, default=d.imgsz, help='imgsz field of the requests (default %(default)s)')
    p.add_argument('--frame', default=d.frame, help='RGB-D folder (default: the shared TUM frame)')
    p.add_argument('--url', default=None, help='use the server running at this URL instead of starting one')
    p.add_argument('--sample-period', type=float, default=d.sample_period, help='seconds between RSS samples')
    p.add_argument('--out', default=d.out, help='output folder (default %(default)s)')
    p.add_argument('--logs', default=d.logs, help="folder of the server's log (default %(default)s)")
    p.add_argument('--quick', action='store_true', help='2 clients for 10 s after 3 serial requests')
    a = p.parse_args(argv)
    cfg = LoadConfig(clients=2 if a.quick else a.clients, duration=10.0 if a.quick else a.duration,
                     serial=3 if a.quick else a.serial, workers=a.workers, model=a.model, device=a.device,
                     imgsz=a.imgsz, frame=a.frame, url=a.url, sample_period=a.sample_period, out=a.out,
                     logs=a.logs, quick=a.quick)
    r = run_load(cfg)
    failed = r['serial']['errors'] + sum(r['load']['errors'].values())
    print(f"{r['load']['requests_per_s']} requests/s with {cfg.clients} clients; errors: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
