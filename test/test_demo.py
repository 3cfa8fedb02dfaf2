"""`make demo`'s program end to end: node + player processes, outputs on disk."""
import json
import subprocess

import numpy as np
import pytest

from vizion3d_ros.core.io.plyio import read_ply

pytestmark = [pytest.mark.integration, pytest.mark.model]


def test_demo_prints_the_table_and_writes_every_output(tmp_path, model_pt):
    out = tmp_path / 'demo'
    run = subprocess.run(['vizion3d_demo', '--model', str(model_pt), '--out', str(out), '--timeout', '180'],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'objects in tum_desk' in run.stdout
    chair_lines = [ln for ln in run.stdout.splitlines() if ln.strip().startswith('chair')]
    assert len(chair_lines) >= 2 and all('3D points=' in ln and 'distance=' in ln for ln in chair_lines)

    summary = json.loads((out / 'summary.json').read_text())
    assert summary['cloud_points'] == 640 * 480 and summary['model'] == 'yolov8n-seg-coco.pt'
    chairs = [o for o in summary['objects'] if o['label'] == 'chair']
    assert len(chairs) >= 2 and all(1.0 < o['distance_m'] < 4.0 for o in chairs)

    cloud = read_ply(out / 'annotated.ply')
    ids, counts = np.unique(cloud['instance_id'], return_counts=True)
    per_object = dict(zip(ids.tolist(), counts.tolist()))
    for o in summary['objects']:
        assert per_object[o['id']] == o['point_count']
        obj_ply = read_ply(next((out / 'objects').glob(f"{o['id']:02d}_*.ply")))
        assert len(obj_ply) == o['point_count']
    assert set(np.unique(cloud['class_id'][cloud['instance_id'] == 0])) == {-1}
    assert (out / 'overlay.png').stat().st_size > 10_000
