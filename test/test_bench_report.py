"""bench/report.py: docs/BENCHMARKS.md states the targets from the measured JSONs, met or not."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))

from report import render, targets  # noqa: E402

MACHINE = {'date': '2026-11-21T00:00:00+00:00', 'git_commit': 'abc1234', 'cpu': 'Test CPU', 'cpu_count': 2,
           'load_average': [0.5, 0.4, 0.3]}


def _lifting(visible_ms: float) -> dict:
    modes = {m: {'median_ms': t, 'p10_ms': t * 0.9, 'p90_ms': t * 1.1, 'runs': 30, 'lifted_points': 1,
                 'digest': 'x'} for m, t in (('naive', 4.0), ('exclusive', 3.0), ('visible', visible_ms))}
    case = {'name': 'depth_vga_clean', 'description': 'a: VGA', 'points': 307_200, 'instances': 10,
            'auto_splat_radius': 0, 'modes': modes, 'visible_over_naive': visible_ms / 4.0}
    return {'machine': MACHINE, 'cases': [case]}


def test_lifting_target_comes_from_the_measured_median():
    met = targets({}, _lifting(9.2))
    assert len(met) == 1 and met[0]['measured_ms'] == 9.2 and met[0]['met']
    missed = targets({}, _lifting(10.4))
    assert not missed[0]['met']


def test_scripts_targets_are_listed_and_missing_sections_say_so():
    node = {'machine': MACHINE, 'targets': [{'name': 'node overhead', 'limit_ms': 20.0, 'measured_ms': 25.0,
                                             'met': False}]}
    page = render({'node': node}, {'node': '## Node\n\nbody\n'}, _lifting(9.0))
    assert '| node overhead | <= 20 ms | 25.0 ms |' in page and '**no**' in page
    assert '## Node' in page and 'body' in page
    assert 'bench/bench_conversions.py` has not been run here' in page  # never a stale or invented number
    assert '| depth_vga_clean | 307,200 | 10 | 0 | visible | 9.0 |' in page
    assert '| node | 2026-11-21' in page


def test_conversion_targets_take_the_slowest_layout():
    conv = {'machine': MACHINE, 'target': {'limit_ms': 3.0, 'read': {'median_ms': {'a_300k': 0.7, 'b_300k': 1.3}},
                                           'write': {'median_ms': {'a_300k': 3.4}}}}
    rows = targets({'conversions': conv}, None)
    read, write = rows
    assert read['measured_ms'] == 1.3 and read['met'] and 'b_300k' in read['spread']
    assert write['measured_ms'] == 3.4 and not write['met']


def test_machines_table_shows_each_runs_speed_probe():
    page = render({}, {}, {**_lifting(9.2), 'machine': {**MACHINE, 'speed_probe_ms': 9.04}})
    row = next(line for line in page.splitlines() if line.startswith('| lifting modes |'))
    assert row.endswith('| 9.0 ms |')
    page = render({}, {}, _lifting(9.2))  # results from before the probe existed
    row = next(line for line in page.splitlines() if line.startswith('| lifting modes |'))
    assert row.endswith('| n/a |')
