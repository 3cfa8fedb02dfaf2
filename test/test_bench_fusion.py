"""Smoke test of bench/bench_fusion.py: ``--quick`` writes the JSON and the markdown section, and report.py reads them.

Checks what the report holds, never how fast anything was.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from vizion3d_ros.core.fusion.voxel_map import VoxelMap

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))

from report import render, targets  # noqa: E402

STATS = {'median_ms', 'p10_ms', 'p90_ms', 'runs'}
WAYS = {'add_frame', 'VoxelMap.integrate', 'naive append', 'naive re-voxelise'}


def _check_stats(s: dict, what) -> None:
    assert STATS <= set(s), what
    assert s['runs'] >= 1, what
    assert 0 < s['p10_ms'] <= s['median_ms'] <= s['p90_ms'], what


def test_quick_run_writes_report(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / 'bench' / 'bench_fusion.py'), '--quick', '--out',
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    r = json.loads((tmp_path / 'fusion.json').read_text())
    assert r['name'] == 'fusion' and r['quick']
    machine = {'platform', 'cpu', 'cpu_count', 'load_average', 'python', 'numpy', 'date', 'git_commit'}
    assert machine <= set(r['machine'])

    i = r['integration']
    assert i['frame_size'] == [640, 480] and i['frames'] >= 1 and max(i['masks_per_frame']) <= 10
    assert 0 < i['frame_points'] <= 640 * 480
    assert 0 < i['map_voxels_before'] <= i['map_voxels_after'] and i['confirmed_instances'] >= 1
    assert set(i['variants']) == WAYS
    for name, s in i['variants'].items():
        _check_stats(s, name)
    assert set(i['speedup']) == WAYS - {'add_frame'}
    stages = set(i['split_ms'])
    assert {'lifting (masks -> points, visible mode)', 'map rows of the points (lookup / insert)',
            'best labels of those rows', 'votes and means (integrate / accumulate)', 'association'} <= stages
    assert all(0 <= v['share'] <= 1 for k, v in i['split_ms'].items() if not k.startswith('other'))
    assert i['profile'] and all({'function', 'own_ms', 'cumulative_ms'} <= set(p) for p in i['profile'])

    sizes = r['config']['prop_sizes']
    assert [(p['points'], p['labels']) for p in r['propagation']] == [(n, k) for n in sizes
                                                                        for k in ('views', 'patches')]
    for p in r['propagation']:
        _check_stats(p['variants']['propagate'], p['points'])
        tut = p['variants']['tutorial (cKDTree ball + Counter)']
        _check_stats(tut, p['points'])
        assert 0 < tut['extrapolated_from_queries'] <= p['unlabelled']
        assert 0.2 < p['coverage_before'] <= p['coverage_after'] <= 1
        assert p['labelled_before'] == round(p['coverage_before'] * p['points'])
        assert 0 <= p['accuracy_new'] <= 1 or math.isnan(p['accuracy_new'])
        assert 0 <= p['tutorial_sample']['agreement_with_ours'] <= 1
        split = p['split_ms']
        assert 'total' in split and len(split) >= 2  # the KD-tree's stages where propagate uses one, and the rest
        for stage, s in split.items():
            assert s['runs'] >= 1 and s['p10_ms'] <= s['median_ms'] <= s['p90_ms'], stage
    assert 0.005 < r['scene']['surface_spacing_m'] < 0.03

    mem = r['memory']
    per_voxel = VoxelMap(0.01).bytes_per_voxel
    assert mem['bytes_per_voxel'] == per_voxel and mem['memory_bytes'] >= mem['map_voxels'] * per_voxel
    assert mem['rows_allocated'] >= mem['map_voxels']
    assert [x['stage'] for x in mem['rss']][0] == 'start' and len(mem['rss']) == 3 + len(r['propagation'])
    peaks = [x['peak_rss_mb'] for x in mem['rss']]
    assert peaks == sorted(peaks) and peaks[0] > 0

    t = r['target']
    assert t['integration']['limit_ms'] == 30.0 and isinstance(t['integration']['met'], bool)
    assert t['propagation'] == []  # the quick sizes are not the targets' 800k and 4M

    md = (tmp_path / 'fusion.md').read_text()
    assert md.startswith('## ') and '### Integration of one frame' in md and '### Label propagation' in md
    assert '### Memory' in md and 'extrapolated' in md

    # report.py puts the fusion target rows first in the page and the section after the others
    rows = [x for x in targets({'fusion': r}, None) if x['source'].startswith('bench_fusion.py')]
    assert len(rows) == 1 and rows[0]['limit_ms'] == 30.0 and 'quick run' in rows[0]['spread']
    page = render({'fusion': r}, {'fusion': md}, None)
    assert '## Multi-view fusion' in page and '| fusion |' in page


def test_report_lists_the_propagation_targets():
    t = {'integration': {'limit_ms': 30.0, 'median_ms': 41.0, 'p10_ms': 40.0, 'p90_ms': 45.0, 'runs': 25,
                         'map_voxels': 1_020_000, 'masks': [10], 'integrate_alone_ms': 14.0,
                         'slowest_stage': 'best labels of those rows', 'slowest_stage_ms': 20.0, 'met': False},
         'propagation': [{'points': n, 'limit_ms': lim, 'median_ms': ms, 'p10_ms': ms, 'p90_ms': ms, 'runs': 5,
                          'labels': 'patches', 'by_labels': {'views': ms - 1, 'patches': ms}, 'coverage_before': 0.4,
                          'tutorial_ms': 60_000.0, 'met': ms <= lim}
                         for n, lim, ms in ((800_000, 1000.0, 700.0), (4_000_000, 5000.0, 5100.0))]}
    rows = targets({'fusion': {'machine': {}, 'target': t}}, None)
    assert [x['met'] for x in rows] == [False, True, False]
    assert [x['limit_ms'] for x in rows] == [30.0, 1000.0, 5000.0]
    assert '1.02M-voxel map' in rows[0]['name'] and '0.8M surface points' in rows[1]['name']
    assert 'extrapolated' in rows[2]['spread']
