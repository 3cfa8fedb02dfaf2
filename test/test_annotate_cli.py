"""The installed `vizion3d-annotate` command: outputs on a ray-cast scene, errors, and the real model."""
import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from conftest import TUM

from vizion3d_ros.core.io.plyio import read_ply, write_ply
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.render.colors import palette
from vizion3d_ros.core.synthetic import scenes as syn

CAM = syn.SMALL_CAMERA
EXE = shutil.which('vizion3d-annotate')


def annotate(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    assert EXE, 'vizion3d-annotate is not on PATH: run scripts/setup.sh and source scripts/env.sh'
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def scene_files(tmp_path_factory):
    """A ray-cast camera cloud as PLY (OpenGL space, colours by id) and its exact label PNG."""
    folder = tmp_path_factory.mktemp('scene')
    scene = dict(syn.standard_scenes())['yawed_box']
    points, ids = syn.camera_cloud(scene, CAM)
    _, id_image = syn.render_camera(scene, CAM)
    write_ply(folder / 'cloud.ply', points, palette(6)[ids + 1])
    cv2.imwrite(str(folder / 'labels.png'), np.where(id_image > 0, id_image, 0).astype(np.uint16))
    cv2.imwrite(str(folder / 'image.png'), palette(6)[id_image + 1][:, :, ::-1])
    return folder, points, ids


def test_masks_run_writes_consistent_outputs(scene_files, tmp_path):
    folder, points, ids = scene_files
    out = tmp_path / 'out'
    proc = annotate('--cloud', str(folder / 'cloud.ply'), '--image', str(folder / 'image.png'),
                    '--masks', str(folder / 'labels.png'), '--fx', str(CAM.fx), '--fy', str(CAM.fy),
                    '--cx', str(CAM.cx), '--cy', str(CAM.cy), '--out', str(out))
    assert proc.returncode == 0, proc.stderr
    for name in ('annotated.ply', 'summary.json', 'overlay.png'):
        assert (out / name).is_file(), name
    summary = json.loads((out / 'summary.json').read_text())
    objects = summary['objects']
    assert [o['label'] for o in objects] == ['instance_1', 'instance_2']
    cloud = read_ply(out / 'annotated.ply')
    assert len(cloud) == len(points)  # every input point, in the input order
    np.testing.assert_array_equal(np.stack([cloud['x'], cloud['y'], cloud['z']], axis=1), points)
    assert {'red', 'green', 'blue', 'instance_id', 'class_id'} <= set(cloud.dtype.names)
    for o in objects:
        mine = cloud['instance_id'] == o['id']
        assert mine.sum() == o['point_count'] > 1000
        assert (ids[mine] == int(o['label'].split('_')[1])).mean() > 0.99
        assert (cloud['class_id'][mine] == -1).all()  # label images carry no classes
        part = read_ply(out / o['file'])
        assert o['file'].startswith('objects/') and len(part) == o['point_count']
        assert len(o['obb']['rotation']) == 3 and len(o['obb']['extents']) == 3
        assert len(o['aabb']['min']) == 3 and len(o['centroid']) == 3
    assert (cloud['instance_id'] == 0).sum() == len(points) - sum(o['point_count'] for o in objects)
    assert len(list((out / 'objects').glob('*.ply'))) == len(objects)
    assert 'instance_1' in proc.stdout and 'centroid distance=' in proc.stdout
    assert 'loading cloud' in proc.stderr and 'segmenting' in proc.stderr


def test_masks_without_an_image_use_a_rendered_view(scene_files, tmp_path):
    folder, points, ids = scene_files
    proc = annotate('--cloud', str(folder / 'cloud.ply'), '--masks', str(folder / 'labels.png'),
                    '--out', str(tmp_path / 'out'))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert summary['synthesized_image'] and summary['camera']['width'] == CAM.width
    assert len(summary['objects']) == 2


@pytest.mark.parametrize('case', ['missing_cloud', 'missing_masks', 'colour_masks', 'size_mismatch', 'not_a_cloud'])
def test_bad_inputs_exit_2_with_one_line(scene_files, tmp_path, case):
    folder, _, _ = scene_files
    cloud, masks, image = str(folder / 'cloud.ply'), str(folder / 'labels.png'), str(folder / 'image.png')
    extra: list[str] = []
    if case == 'missing_cloud':
        cloud = str(tmp_path / 'nope.ply')
    elif case == 'missing_masks':
        masks = str(tmp_path / 'nope.png')
    elif case == 'colour_masks':
        masks = image
    elif case == 'size_mismatch':
        small = tmp_path / 'small.png'
        cv2.imwrite(str(small), np.zeros((100, 120, 3), np.uint8))
        extra = ['--image', str(small)]
    else:
        cloud = str(tmp_path / 'junk.ply')
        (tmp_path / 'junk.ply').write_text('not a point cloud\n')
    proc = annotate('--cloud', cloud, '--masks', masks, *extra, '--out', str(tmp_path / 'out'))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith('vizion3d-annotate: error: ')
    assert 'Traceback' not in proc.stderr
    expected = {'missing_cloud': 'does not exist', 'missing_masks': 'does not exist',
                'colour_masks': 'single-channel', 'size_mismatch': 'must match', 'not_a_cloud': 'no points'}[case]
    assert expected in lines[-1]


@pytest.mark.model
def test_real_model_finds_a_chair(tum_frame, model_pt, tmp_path):
    cam = tum_frame.camera
    optical = depth_to_points_optical(tum_frame.depth, cam)
    write_ply(tmp_path / 'tum.ply', optical, tum_frame.color.reshape(-1, 3))
    out = tmp_path / 'out'
    proc = annotate('--cloud', str(tmp_path / 'tum.ply'), '--image', str(TUM / 'color.png'), '--optical',
                    '--model', str(model_pt), '--device', 'cpu', '--fx', str(cam.fx), '--fy', str(cam.fy),
                    '--cx', str(cam.cx), '--cy', str(cam.cy), '--out', str(out))
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if 'conf=' in line]
    assert any(r[0] == 'chair' for r in rows), proc.stdout
    summary = json.loads((out / 'summary.json').read_text())
    chairs = [o for o in summary['objects'] if o['label'] == 'chair']
    assert all(o['class_id'] == 56 and o['point_count'] > 2000 for o in chairs)
    assert all(1.0 < o['centroid'][2] < 4.0 for o in chairs)  # optical frame: +Z forward
    cloud = read_ply(out / 'annotated.ply')
    assert len(cloud) == len(optical)
    assert (cloud['class_id'][cloud['instance_id'] == chairs[0]['id']] == 56).all()
