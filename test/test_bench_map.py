"""Smoke test of bench/bench_map.py: ``--quick`` writes the JSON and the markdown section, and report.py reads them.

Checks what the report holds, never how fast anything was.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))

from report import render, targets  # noqa: E402

PERCENTILES = ('median_ms', 'p10_ms', 'p90_ms', 'p95_ms', 'mean_ms', 'max_ms')


def _positive(x, what) -> None:
    assert isinstance(x, (int, float)) and math.isfinite(x) and x > 0, (what, x)


def _check_stats(s: dict, what) -> None:
    assert set(PERCENTILES) | {'runs'} <= set(s), what
    assert s['runs'] >= 1, what
    for k in PERCENTILES:
        _positive(s[k], (what, k))
    assert s['p10_ms'] <= s['median_ms'] <= s['p90_ms'] <= s['p95_ms'] <= s['max_ms'], what


def test_quick_run_writes_report(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / 'bench' / 'bench_map.py'), '--quick', '--out', str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    r = json.loads((tmp_path / 'map.json').read_text())
    assert r['name'] == 'map' and r['quick']
    assert {'platform', 'cpu', 'cpu_count', 'load_average', 'python', 'numpy', 'date', 'git_commit',
            'speed_probe_ms'} <= set(r['machine'])
    assert r['settings']['voxel_size'] == 0.02  # MapSettings' default

    i = r['integration']
    assert i['frame_size'] == [640, 480] and i['frames'] >= 1 and 1 <= max(i['masks_per_frame']) <= 10
    assert 0 < i['frame_points'] <= 640 * 480
    assert 0 < i['map_voxels'][0] <= i['map_voxels'][1] and i['objects'] >= i['confirmed'] >= 1
    _check_stats(i['ms'], 'integrate')
    assert i['ms']['runs'] == i['frames']
    assert {'cloud conversion (pointcloud2_to_arrays)', 'labels (point_labels)',
            'SceneFusion.add_lifted (association + integration)', 'message building (map_objects_message)'} \
        <= set(i['split_ms'])
    for k, v in i['split_ms'].items():
        assert v['runs'] == i['frames'], k
        if not k.startswith('other'):
            assert 0 <= v['share'] <= 1 and math.isfinite(v['median_ms']), k
    _positive(i['split_ms']['SceneFusion.add_lifted (association + integration)']['median_ms'], 'add_lifted')
    assert i['by_consolidation'] and set(i['by_consolidation']) <= {'with', 'without'}
    assert sum(v['frames'] for v in i['by_consolidation'].values()) == i['frames']
    assert i['profile'] and all({'function', 'own_ms', 'cumulative_ms'} <= set(p) for p in i['profile'])

    filled, big = r['fill']
    assert filled['voxel_m'] == 0.02 and big['voxel_m'] == r['config']['big_voxel']
    assert 0 < filled['voxels'] < big['voxels']
    for f in r['fill']:
        _check_stats(f['fill_ms'], 'fill')

    assert len(r['map_cloud']) == 2
    for c in r['map_cloud']:
        assert c['points'] == c['voxels'] > 0 and c['point_bytes'] == 28
        assert c['fields'] == ['x', 'y', 'z', 'rgb', 'instance_id', 'class_id', 'confidence']
        assert c['message_bytes'] >= c['points'] * c['point_bytes']
        _positive(c['message_mb'], 'message_mb')
        for k in ('MapIntegrator.cloud()', 'serialize_message', 'deserialize_message'):
            _check_stats(c['ms'][k], k)
            _positive(c['ns_per_point'][k], k)
        _check_stats(c['build_plus_serialize_ms'], 'publish')
    assert r['map_objects_message']['objects'] >= 1 and r['map_objects_message']['bytes'] > 0

    assert len(r['memory']) == 2
    for m in r['memory']:
        assert m['bytes_per_voxel'] == 72 and m['rows_allocated'] >= m['voxels'] > 0
        assert m['memory_bytes'] >= m['voxels'] * m['bytes_per_voxel']
        _positive(m['memory_bytes_per_voxel'], 'memory_bytes_per_voxel')
        assert math.isfinite(m['rss_growth_bytes_per_voxel'])

    t = r['targets']
    assert [x['stat'] for x in t] == ['p50', 'p95'] and [x['limit_ms'] for x in t] == [30.0, 60.0]
    assert all(isinstance(x['met'], bool) and x['measured_ms'] > 0 for x in t)

    md = (tmp_path / 'map.md').read_text()
    assert md.startswith('## Live map') and '### Integration of one frame' in md
    assert '### Publishing the map (map_points)' in md and '### Memory' in md and 'quick run' in md

    # report.py lists both targets and puts the section in the page
    rows = [x for x in targets({'map': r}, None) if x['source'].startswith('bench_map.py')]
    assert len(rows) == 2
    page = render({'map': r}, {'map': md}, None)
    assert '## Live map' in page and '| map |' in page
