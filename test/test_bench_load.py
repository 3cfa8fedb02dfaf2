"""Smoke test of bench/load_servers.py: ``--quick`` loads both servers and writes the JSON and the markdown section.

Checks what the report holds (requests answered, no errors, finite latencies), never how fast anything was.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))

from report import render  # noqa: E402

pytestmark = pytest.mark.model

PERCENTILES = ('p10_ms', 'median_ms', 'p90_ms', 'p95_ms', 'max_ms')


def _positive(x, what) -> None:
    assert isinstance(x, (int, float)) and math.isfinite(x) and x > 0, (what, x)


def test_quick_run_loads_both_servers(tmp_path, model_pt, tum_frame):
    run = subprocess.run([sys.executable, str(ROOT / 'bench' / 'load_servers.py'), '--quick', '--out', str(tmp_path),
                          '--logs', str(tmp_path / 'logs'), '--model', str(model_pt)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    r = json.loads((tmp_path / 'load_servers.json').read_text())
    assert r['name'] == 'load_servers' and r['quick']
    assert {'cpu', 'cpu_count', 'load_average', 'date', 'git_commit', 'speed_probe_ms'} <= set(r['machine'])
    assert r['input']['points'] == 640 * 480
    assert set(r['transports']) == {'rest', 'grpc'}
    for name, t in r['transports'].items():
        s = t['server']
        assert s['exit_code'] is not None and s['log_errors'] == [], (name, s)
        _positive(s['rss_mb_ready'], (name, 'rss_mb_ready'))
        assert t['warmup']['status'] == 'ok', name
        assert [p['clients'] for p in t['phases']] == [1, 2], name
        for p in t['phases']:
            what = (name, p['clients'])
            assert p['requests'] > 0 and p['ok'] == p['requests'] == p['runs'] and p['errors'] == {}, what
            for k in PERCENTILES:
                _positive(p[k], (what, k))
            assert p['p10_ms'] <= p['median_ms'] <= p['p95_ms'] <= p['max_ms'], what
            _positive(p['requests_per_s'], what)
            assert math.isfinite(p['server_cpu_cores']) and p['server_cpu_cores'] >= 0, what
            assert p['annotations_per_request'] and min(p['annotations_per_request']) >= 3, what
            _positive(p['rss_mb']['min'], what)
        assert t['series'] and all(math.isfinite(x['rss_mb']) for x in t['series']), name
        assert t['rss_mb']['min'] <= t['rss_mb']['max'], name

    md = (tmp_path / 'load_servers.md').read_text()
    assert md.startswith('## REST and gRPC servers under load') and 'load_servers.py --quick`' in md
    assert md.count('| REST |') == 2 and md.count('| gRPC |') == 2
    page = render({'load_servers': r}, {'load_servers': md}, None)
    assert '## REST and gRPC servers under load' in page and '| load_servers |' in page
