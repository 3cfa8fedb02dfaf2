"""What a fused map is written as (vizion3d_ros.core.fusion.export), and labelling other clouds from the map."""
import json

import cv2
import numpy as np
import pytest
import trimesh

from vizion3d_ros.core.fusion.scene import SceneFusion
from vizion3d_ros.core.io.plyio import read_ply
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.render.colors import palette
from vizion3d_ros.core.synthetic.multiview import EXACT_MASKS, frame_masks, furnished_room, orbit_poses, render_view

HEADER = ['ply', 'format binary_little_endian 1.0', 'element vertex {n}', 'property float x', 'property float y',
          'property float z', 'property uchar red', 'property uchar green', 'property uchar blue',
          'property int instance_id', 'property int class_id', 'property float confidence',
          'property ushort observations', 'end_header']


@pytest.fixture(scope='module')
def room_and_fusion():
    room = furnished_room(np.random.default_rng(5))
    fusion = SceneFusion(voxel_size=0.02)
    rng = np.random.default_rng(2)
    for pose in orbit_poses(room, rng=np.random.default_rng(1))[::2]:  # 10 of the 20 views
        v = render_view(room, pose)
        fm = frame_masks(room, v, rng, EXACT_MASKS)
        fusion.add_frame(v.depth, v.camera, v.pose, fm.labels, fm.meta, v.color)
    return room, fusion


@pytest.fixture(scope='module')
def exported(room_and_fusion, tmp_path_factory):
    _, fusion = room_and_fusion
    out = tmp_path_factory.mktemp('export')
    propagation = fusion.propagate()
    return out, fusion.export(out, propagation), propagation


def test_map_ply_has_one_vertex_per_voxel_with_the_summary_ids(room_and_fusion, exported):
    room, fusion = room_and_fusion
    out, tables, propagation = exported
    ply = read_ply(out / 'map.ply')
    header = (out / 'map.ply').read_bytes().split(b'end_header\n')[0].decode().splitlines() + ['end_header']
    assert header == [h.format(n=len(fusion.map)) for h in HEADER]
    assert len(ply) == len(fusion.map) == tables['voxels']
    # the voxel means, nudged inside their voxels (by at most 0.1 % of one) so that reading back finds them
    np.testing.assert_allclose(np.stack([ply['x'], ply['y'], ply['z']], 1), fusion.map.positions, rtol=0, atol=3e-5)
    records = {r['id']: r for r in tables['instances']}
    assert sorted(r['label'] for r in records.values()) == sorted(room.labels)  # one record per object
    assert set(np.unique(ply['instance_id'])) == set(records) | {0}
    for i, r in records.items():
        mine = ply['instance_id'] == i
        assert r['points'] == mine.sum() and (ply['class_id'][mine] == r['class_id']).all()
        assert r['direct_points'] <= r['points'] and r['frames_seen'] >= 2 and r['merged_ids'] == []
        pts = np.stack([ply['x'][mine], ply['y'][mine], ply['z'][mine]], 1)
        np.testing.assert_allclose(r['centroid'], pts.mean(axis=0), atol=1e-3)
        np.testing.assert_allclose(r['box_min'], pts.min(axis=0), atol=1e-3)
        assert 0 < ply['confidence'][mine].min() and ply['confidence'][mine].max() <= 1.0
    none = ply['instance_id'] == 0
    assert (ply['class_id'][none] == -1).all() and (ply['confidence'][none] == 0).all()
    assert (ply['observations'] >= 1).all()
    # the propagated labels are in the file: more voxels than the masks labelled directly
    assert (~none).mean() == pytest.approx(propagation.coverage_after, abs=1e-6)
    assert tables['coverage']['direct'] < tables['coverage']['after_propagation']
    per_class = {c['class_id']: c for c in tables['classes']}
    for r in records.values():
        assert per_class[r['class_id']]['instances'] >= 1
    assert sum(c['points'] for c in tables['classes']) == (~none).sum()
    json.dumps(tables)  # all plain types: what summary.json is made of


def test_object_files_glb_and_top_view(room_and_fusion, exported):
    _, fusion = room_and_fusion
    out, tables, _ = exported
    for r in tables['instances']:
        obj = read_ply(out / 'objects' / f"{r['id']}_{r['label'].replace(' ', '_')}.ply")
        assert len(obj) == r['points']
    assert len(list((out / 'objects').glob('*.ply'))) == len(tables['instances'])
    scene = trimesh.load(out / 'map.glb')
    cloud, cams = scene.geometry['map'], scene.geometry['cameras']
    assert isinstance(cloud, trimesh.PointCloud) and len(cloud.vertices) == len(fusion.map)
    assert isinstance(cams, trimesh.path.Path3D)
    # every frame's centre is a vertex of the frustum lines
    centres = fusion.camera_positions
    assert np.abs(cams.vertices[None] - centres[:, None]).max(axis=2).min(axis=1).max() < 1e-4
    ply = read_ply(out / 'map.ply')
    first = tables['instances'][0]['id']
    np.testing.assert_array_equal(cloud.colors[ply['instance_id'] == first, :3], palette(first + 1)[first][None].repeat(
        (ply['instance_id'] == first).sum(), 0))
    top = cv2.imread(str(out / 'top_view.png'))[:, :, ::-1]
    assert top.shape[0] > 100 and top.shape[1] > 100
    seen = {tuple(c) for c in top.reshape(-1, 3)}
    assert all(tuple(palette(r['id'] + 1)[r['id']]) in seen for r in tables['instances'])


def test_a_second_export_into_the_same_folder_leaves_no_stale_objects(room_and_fusion, tmp_path):
    _, fusion = room_and_fusion
    (tmp_path / 'objects').mkdir()
    (tmp_path / 'objects' / '99_old.ply').write_text('stale')
    tables = fusion.export(tmp_path)
    assert sorted(p.name for p in (tmp_path / 'objects').glob('*.ply')) == sorted(
        f"{r['id']}_{r['label'].replace(' ', '_')}.ply" for r in tables['instances'])
    assert tables['coverage']['after_propagation'] is None


def test_an_external_cloud_takes_the_map_labels(room_and_fusion):
    """A view the map was not built from (another pose), as a LiDAR scan would be: its points get the label of
    the nearest map voxel; each object's points get its one instance, the room's points none."""
    room, fusion = room_and_fusion
    pose = orbit_poses(room, rng=np.random.default_rng(1))[1]  # between the fused views
    v = render_view(room, pose)
    pts = depth_to_points_optical(v.depth, v.camera).astype(np.float64) @ pose[:3, :3].T + pose[:3, 3]
    got = fusion.label_points(pts)
    ids = v.ids.reshape(-1)
    assert got[~np.isfinite(pts).all(axis=1)].max(initial=0) == 0
    assert (got[ids == 0] == 0).mean() > 0.99
    by_label = {i.label: i.id for i in fusion.confirmed()}
    for obj in np.unique(ids[ids > 0]):
        mine = got[ids == obj]
        if len(mine) < 50:
            continue
        inst = by_label[room.labels[obj - 1]]
        assert (mine == inst).mean() > 0.9, (room.labels[obj - 1], np.unique(mine, return_counts=True))
    far = fusion.label_points(pts + np.array([0.0, 10.0, 0.0]))
    assert (far == 0).all()


def test_a_saved_map_loads_back_and_fusion_goes_on(room_and_fusion, tmp_path):
    room, fusion = room_and_fusion
    tables = fusion.export(tmp_path)
    saved = json.loads((tmp_path / 'summary.json').read_text())
    assert saved['instances'] == tables['instances'] and saved['frames_fused'] == fusion.frames
    back = SceneFusion.load(tmp_path)
    assert back.map.voxel_size == fusion.map.voxel_size and len(back.map) == len(fusion.map)
    np.testing.assert_array_equal(np.sort(back.map.keys), np.sort(fusion.map.keys))
    order_a, order_b = np.argsort(fusion.map.keys), np.argsort(back.map.keys)
    np.testing.assert_array_equal(back.voxel_instances()[order_b], fusion.voxel_instances()[order_a])
    np.testing.assert_allclose(back.map.positions[order_b], fusion.map.positions[order_a], rtol=0, atol=3e-5)
    np.testing.assert_array_equal(back.map.counts[order_b], np.minimum(fusion.map.counts[order_a], 65535))
    assert {i.id: (i.class_id, i.label, i.frames) for i in back.confirmed()} == \
        {i.id: (i.class_id, i.label, i.frames) for i in fusion.confirmed()}
    # a frame fused into the loaded map finds its objects there: no new confirmed ids
    v = render_view(room, orbit_poses(room, rng=np.random.default_rng(1))[1])
    fm = frame_masks(room, v, np.random.default_rng(9), EXACT_MASKS)
    report = back.add_frame(v.depth, v.camera, v.pose, fm.labels, fm.meta, v.color)
    assert set(report.assigned.values()) <= {i.id for i in back.confirmed()} and not report.created
    with pytest.raises(ValueError, match='not a saved map'):
        SceneFusion.load(tmp_path / 'objects')
