"""Smoke test of bench/bench_scaling.py: ``--quick`` writes the JSON, the markdown section and the plots.

Checks what the report holds (cases, statistics, fits, the shelf scene's instance counts), never how fast
anything was.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))

from bench_scaling import fit_line, shelf_masks, shelf_scene  # noqa: E402

from vizion3d_ros.core.synthetic.scenes import DEFAULT_CAMERA  # noqa: E402

MODES = {'naive', 'exclusive', 'visible'}


@pytest.mark.parametrize('k', [1, 10, 50])
def test_shelf_scene_shows_its_objects_as_separate_instances(k):
    scene = shelf_scene(k, np.random.default_rng(k))
    exact, wide = shelf_masks(scene, DEFAULT_CAMERA)
    assert len(scene.objects) == k
    assert len(exact) >= 0.9 * k  # a few may hide behind nearer neighbours
    cover = exact.any(axis=0).mean()
    assert 0.05 < cover < 0.6  # objects, not a wall of objects
    assert (wide.sum(axis=(1, 2)) > exact.sum(axis=(1, 2))).all()  # dilated, as real masks are


def test_fit_line_recovers_a_line_and_reports_r2():
    f = fit_line([1, 2, 3, 4], [3.0, 5.0, 7.0, 9.0])
    assert f['a'] == pytest.approx(1.0) and f['b'] == pytest.approx(2.0) and f['r2'] == pytest.approx(1.0)
    noisy = fit_line([1, 2, 3, 4], [1.0, 3.0, 2.0, 4.0])
    assert 0 < noisy['r2'] < 1


def test_quick_run_writes_report(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / 'bench' / 'bench_scaling.py'), '--quick', '--out',
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    r = json.loads((tmp_path / 'scaling.json').read_text())
    assert r['name'] == 'scaling' and r['quick']
    assert {'platform', 'cpu', 'cpu_count', 'python', 'numpy', 'date', 'git_commit'} <= set(r['machine'])
    assert [row['instances'] for row in r['instances']] == sorted(row['instances'] for row in r['instances'])
    assert r['instances'][0]['instances'] == 1 and r['instances'][-1]['instances'] >= 9
    for group in ('instances', 'points', 'image_size'):
        assert r[group], group
        for row in r[group]:
            assert set(row['modes']) == MODES
            for m in row['modes'].values():
                assert m['runs'] >= 1 and 0 < m['p10_ms'] <= m['median_ms'] <= m['p90_ms']
            assert row['visible_over_naive'] > 0
        assert set(r['fits'][group]) == MODES
    assert all(row['points'] == 100_000 for row in r['points'])
    assert [row['points'] for row in r['image_size']] == [320 * 240, 640 * 480]
    md = (tmp_path / 'scaling.md').read_text()
    assert md.startswith('## ') and '| visible / naive |' in md
    for png in r['plots']:
        assert (tmp_path / png).read_bytes()[:4] == b'\x89PNG'
        assert f'bench/{png}' in md
