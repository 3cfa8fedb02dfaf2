"""Smoke test of bench/bench_node.py --quick: the real node over DDS, the files and the JSON's structure.

Timings are not asserted (bench/ measures speed); what is checked is that the split is complete and
consistent: the sender-side end to end of every frame is transport + the node's end to end + delivery.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))


@pytest.fixture(scope='module')
def quick(tmp_path_factory, model_pt) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp('bench_node')
    cmd = [sys.executable, str(ROOT / 'bench' / 'bench_node.py'), '--quick', '--model', str(model_pt),
           '--out', str(out / 'docs'), '--logs', str(out / 'logs')]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f'bench_node failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}'
    return out / 'docs', json.loads((out / 'docs' / 'node.json').read_text())


def test_writes_json_markdown_and_plots(quick):
    folder, r = quick
    md = (folder / 'node.md').read_text()
    assert md.startswith('## ')
    assert sorted(r['plots']) == ['node_latency.png', 'node_stages.png']
    for name in r['plots']:
        assert (folder / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert f'](bench/{name})' in md
    for key in ('platform', 'cpu', 'cpu_count', 'load_average', 'python', 'numpy', 'date', 'git_commit'):
        assert key in r['machine'], key
    # the machine's speed before and after: tells a slow machine from slow code
    assert r['machine']['speed_probe_ms'] > 0 and r['machine']['speed_probe_ms_after'] > 0
    assert f"speed probe {r['machine']['speed_probe_ms']:.1f} ms before" in md


def test_latency_split_is_complete_and_adds_up(quick):
    from bench_node import SPLIT
    _, r = quick
    (run,) = r['runs']
    assert run['imgsz'] == 320 and run['device'] == 'cpu' and run['node_exit_code'] == 0
    lat = run['latency']
    assert lat['frames'] == r['config']['frames'] == len(lat['per_frame'])
    assert lat['objects_median'] > 0, 'the real checkpoint finds objects on the TUM frame'
    for stage in (*SPLIT, 'end_to_end', 'overhead', 'client_end_to_end'):
        s = lat['stages_ms'][stage]
        assert s['n'] == lat['frames'] and s['p10'] <= s['median'] <= s['p90'], (stage, s)
    for f in lat['per_frame']:
        node = f['waiting'] + f['conversion'] + f['inference'] + f['lifting'] + f['geometry'] + f['publishing']
        assert node + f['handoff'] == pytest.approx(f['end_to_end']), f
        assert f['alongside'] > 0 and f['handoff'] > -0.5, f
        assert f['transport'] + f['end_to_end'] + f['delivery'] == pytest.approx(f['client_end_to_end'], abs=2.0), f
        assert f['overhead'] == pytest.approx(f['end_to_end'] - f['inference'])
        assert f['transport'] > 0 and f['inference'] > 0 and f['publish_calls'] <= f['publishing']
    # the cloud work runs beside the model: it ends before the masks do, and only thread wake-ups remain
    # (on a typical frame: on a shared machine a single frame may wait milliseconds for a busy core)
    st = lat['stages_ms']
    assert st['alongside']['median'] < st['inference']['median'], (st['alongside'], st['inference'])
    assert st['handoff']['median'] < max(5.0, 0.1 * st['inference']['median']), st['handoff']
    (target,) = r['targets']  # the form bench/report.py lists
    assert target['limit_ms'] == 20 and isinstance(target['met'], bool)
    assert target['measured_ms'] == lat['stages_ms']['overhead']['median']


def test_throughput_run_counts_outputs_drops_cpu_and_memory(quick):
    _, r = quick
    th = r['runs'][0]['throughput']
    assert th['sent'] > 0 and 0 < th['outputs'] <= th['sent']
    assert th['outputs'] == len(th['series'])
    # every frame sent was processed or dropped for a reason (superseded: the node keeps the newest only)
    assert th['processed'] + th['drops'].get('superseded', 0) <= th['sent']
    assert set(th['drops']) <= {'superseded', 'unmatched'}, th['drops']
    assert th['node_cpu_percent'] > 0 and th['node_rss_mb']['median'] > 100
