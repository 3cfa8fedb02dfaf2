"""Smoke test of bench/bench_transport.py: ``--quick`` runs publisher/subscriber processes over DDS and
writes the JSON, the markdown section and the plot.

Checks what the report holds, never how fast anything was or how many best-effort clouds got through; it
does check that reliable clouds get through whoever loads the profile (a process with the profile and one
without discover each other and talk, in both directions).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def test_quick_run_writes_report(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / 'bench' / 'bench_transport.py'), '--quick', '--out',
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    r = json.loads((tmp_path / 'transport.json').read_text())
    assert r['name'] == 'transport'
    machine = {'platform', 'cpu', 'cpu_count', 'load_average', 'python', 'numpy', 'date', 'git_commit',
               'speed_probe_ms'}
    assert machine <= set(r['machine'])
    host = r['host']
    assert {'rmw', 'discovery_range', 'net.core.rmem_max', 'dev_shm_total_mb', 'profile', 'profile_sha256',
            'fastdds_version'} <= set(host)
    assert host['profile'] == 'config/fastdds_large_data.xml' and host['profile_sha256']
    assert 150 <= r['config']['domain'] <= 230
    assert r['sizes']['vga']['bytes'] == 640 * 480 * 16

    cases = r['cases']
    combos = {(c['publisher'], c['subscriber'], c['profile']) for c in cases}
    assert combos == {(p, s, m) for p, s in (('reliable', 'reliable'), ('best_effort', 'best_effort'))
                      for m in ('none', 'publisher', 'subscriber', 'both')}
    for c in cases:
        assert c['error'] is None, c  # both sides matched and reported
        assert c['size'] == 'vga' and c['sent'] == 5 and c['points'] == 307_200
        assert 0 <= c['received'] <= c['sent'] and c['delivery'] == c['received'] / c['sent']
        assert len(c['latencies_ms']) == c['received'] and c['corrupt'] == 0
        assert c['missing'] == sorted(c['missing']) and set(c['missing']) <= set(range(c['sent']))
        assert len(c['missing']) == c['sent'] - c['received']
        lat = c['latency']
        if c['received']:
            assert lat['median_ms'] <= lat['p90_ms'] <= lat['max_ms']
        else:
            assert lat['median_ms'] is None
        pub, sub = c['memory']['publisher'], c['memory']['subscriber']
        assert pub['rss_mb'] > 0 and sub['rss_mb'] > 0
        if c['profile'] == 'both':  # each process maps its own segment of the profile's size
            assert pub['shm_largest_mapping_mb'] >= 64 and sub['shm_largest_mapping_mb'] >= 64
        if c['publisher'] == c['subscriber'] == 'reliable':
            # a process with the profile and one without discover each other and talk, both directions
            assert c['received'] >= 1, c
    assert {'publisher_profile', 'subscriber_profile', 'publisher_default', 'subscriber_default'} <= set(r['memory'])

    md = (tmp_path / 'transport.md').read_text()
    assert md.startswith('## ')
    assert '| vga (4.9 MB) | best_effort -> best_effort | both |' in md
    assert '| publisher profile |' in md
    png = tmp_path / 'transport.png'
    if png.exists():
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and '(bench/transport.png)' in md
