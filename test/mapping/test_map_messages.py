"""The map node's message helpers, without DDS: per-point labels, the map cloud's layout, the params file."""
from __future__ import annotations

import numpy as np
import pytest

from vizion3d_ros.core.fusion.scene import SceneFusion
from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray
from vizion3d_ros.ros.mapping.messages import MAP_POINT_DTYPE, ObjectsMismatchError, map_cloud, point_labels
from vizion3d_ros.ros.messages import uint32_array


def _objects(*groups):
    objs = []
    for k, idx in enumerate(groups, start=1):
        o = ObjectMask3D(id=k, class_id=56, label='chair', confidence=0.8)
        o.point_indices = uint32_array(np.asarray(idx))
        objs.append(o)
    return ObjectMask3DArray(objects=objs)


def test_point_labels_scatter_ids_and_refuse_indices_past_the_cloud():
    labels, meta = point_labels(_objects([0, 2], [3]), 5)
    assert labels.tolist() == [1, 0, 1, 2, 0] and meta[2]['class_id'] == 56
    with pytest.raises(ObjectsMismatchError, match='indexes point 5 of a cloud of 5'):
        point_labels(_objects([0, 5]), 5)
    with pytest.raises(ObjectsMismatchError, match='appears twice'):
        point_labels(ObjectMask3DArray(objects=_objects([0]).objects * 2), 5)


def test_map_cloud_has_one_point_per_voxel_with_its_fields():
    from std_msgs.msg import Header
    f = SceneFusion(voxel_size=0.1, min_points=1)
    pts = np.random.default_rng(0).uniform(0, 1, (500, 3)).astype(np.float32)
    labels = (pts[:, 0] > 0.5).astype(np.int64)
    for _ in range(2):
        f.add_lifted(pts, np.eye(4), labels, {1: {'class_id': 3, 'label': 'x', 'confidence': 0.9}})
    msg = map_cloud(f, Header(frame_id='odom'))
    assert msg.width == len(f.map) and msg.point_step == MAP_POINT_DTYPE.itemsize
    arr = np.frombuffer(msg.data, MAP_POINT_DTYPE)
    assert set(np.unique(arr['instance_id']).tolist()) <= {0, 1} and (arr['instance_id'] == 1).any()
    assert (arr['class_id'][arr['instance_id'] == 1] == 3).all()
    empty = map_cloud(SceneFusion(), Header())
    assert empty.width == 0 and len(empty.data) == 0


def test_the_map_params_file_holds_every_parameter_at_its_default_with_a_comment():
    from dataclasses import asdict
    from pathlib import Path

    import yaml

    from vizion3d_ros.ros.mapping.params import MapSettings

    defaults = asdict(MapSettings())
    path = Path(__file__).resolve().parents[2] / 'config' / 'vizion3d_map.yaml'
    params = yaml.safe_load(path.read_text())['vizion3d_map_node']['ros__parameters']
    assert params == defaults  # the file documents the defaults; a launch with it changes nothing
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        key = line.strip().split(':')[0]
        if line.startswith('    ') and key in defaults:
            assert lines[i - 1].lstrip().startswith('#'), f'{path.name}:{i + 1}: {key} has no comment above'
