"""Smoke test of bench/bench_conversions.py: ``--quick`` writes the JSON, the markdown section and the plot.

Checks what the report holds, never how fast anything was.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATS = {'median_ms', 'p10_ms', 'p90_ms', 'runs', 'scaled_from'}


def _check_variants(row: dict, names: set[str]) -> None:
    assert names <= set(row['variants']), row['case']
    for name, s in row['variants'].items():
        assert set(s) == STATS and s['runs'] >= 1, (row['case'], name)
        assert 0 < s['p10_ms'] <= s['median_ms'] <= s['p90_ms'], (row['case'], name)
    assert set(row['speedup']) == set(row['variants']) - {'ours'}


def test_quick_run_writes_report(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / 'bench' / 'bench_conversions.py'), '--quick', '--out',
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    r = json.loads((tmp_path / 'conversions.json').read_text())
    assert r['name'] == 'conversions'
    machine = {'platform', 'cpu', 'cpu_count', 'load_average', 'python', 'numpy', 'date', 'git_commit'}
    assert machine <= set(r['machine'])

    read = {row['case']: row for row in r['read'] if 'note' not in row}
    organised = f"{r['frame']}_640x480"
    assert {organised, 'unorganised_10k', 'unorganised_300k', 'xyzrgb32_300k', 'xyzirt22_300k'} <= set(read)
    assert read[organised]['organised'] and read[organised]['points'] == 307_200
    for row in read.values():
        _check_variants(row, {'ours', 'per-field', 'per-point'})
    subset = r['config']['subset']
    assert read['unorganised_300k']['variants']['per-point']['scaled_from'] == subset
    assert read['unorganised_10k']['variants']['ours']['scaled_from'] is None

    write = {row['case']: row for row in r['write']}
    assert {organised, 'unorganised_10k', 'unorganised_300k'} == set(write)
    for row in write.values():
        _check_variants(row, {'ours', 'recolor + ours', 'per-field (previous)', 'per-point'})
        assert 0 < row['painted_points'] < row['points']

    ops = {(p['case'], p['operation']) for p in r['publish']}
    assert (organised, 'serialize_message') in ops and ('unorganised_300k', 'data = array.array') in ops
    assert [x['encoding'] for x in r['image_read']] == ['rgb8', 'bgr8', 'mono8']
    assert [x['encoding'] for x in r['image_write']] == ['rgb8', 'bgr8']
    for row in r['image_read'] + r['image_write']:
        _check_variants(row, {'ours'})

    t = r['target']
    assert t['limit_ms'] == 3.0 and isinstance(t['met'], bool)
    assert set(t['read']['median_ms']) == {organised, 'unorganised_300k', 'xyzrgb32_300k', 'xyzirt22_300k'}
    assert set(t['write']['median_ms']) == {organised, 'unorganised_300k'}

    md = (tmp_path / 'conversions.md').read_text()
    assert md.startswith('## ') and '![' in md and '(bench/conversions_scaling.png)' in md
    assert '| unorganised_300k | 300,000 | xyzrgb16 |' in md
    assert (tmp_path / 'conversions_scaling.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
