"""Posed RGB-D folders (vizion3d_ros.core.io.posed): the real redwood frames, and every way a folder can be wrong."""
import json
import shutil

import cv2
import numpy as np
import open3d as o3d
import pytest
from conftest import REDWOOD

from vizion3d_ros.core.io.posed import FrameError, PosedFolderError, PosedRGBDFolder, read_trajectory_log
from vizion3d_ros.core.io.rgbd import depth_to_points_optical


@pytest.fixture(scope='module')
def redwood():
    if not (REDWOOD / 'trajectory.log').is_file():
        pytest.fail(f'{REDWOOD} is missing: the test data lives in ../shared beside the repository')
    return PosedRGBDFolder(REDWOOD)


def _world_cloud(posed, pose=None) -> o3d.geometry.PointCloud:
    """Every 7th point of the frame's depth, moved into the world by ``pose`` (default: the frame's own)."""
    pose = posed.pose if pose is None else pose
    pts = depth_to_points_optical(posed.frame.depth, posed.frame.camera).astype(np.float64)
    pts = pts[np.isfinite(pts).all(axis=1)][::7]
    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts @ pose[:3, :3].T + pose[:3, 3]))


def test_the_redwood_frames_open_with_their_camera_and_poses(redwood):
    assert len(redwood) == 5
    assert [f.stem for f in redwood.frames] == ['00000', '00001', '00002', '00003', '00004']
    cam = redwood.camera
    assert (cam.width, cam.height, cam.fx, cam.cx) == (640, 480, 525.0, 319.5) and redwood.depth_scale == 1000.0
    first = redwood.frames[0].pose
    # the translation is the last column of the rows as written (not the last row)
    np.testing.assert_allclose(first[:3, 3], [-0.31057997014702826, 0.5730122438481298, 2.1264800183565487])
    posed = redwood[2]
    assert posed.frame.color.shape == (480, 640, 3) and posed.frame.color.dtype == np.uint8
    depth = posed.frame.depth
    assert depth.dtype == np.float32 and 0.3 < np.nanmin(depth) and np.nanmax(depth) < 3.0  # mm -> m
    assert [p.stem for p in redwood] == [f.stem for f in redwood.frames]


def test_the_poses_are_camera_to_world_in_the_optical_convention(redwood):
    """The first and last views, moved by their poses, land on the same surfaces; other readings do not."""
    a, b = redwood[0], redwood[4]

    def misfit(pose_a, pose_b) -> float:
        return float(np.median(np.asarray(_world_cloud(b, pose_b).compute_point_cloud_distance(
            _world_cloud(a, pose_a)))))

    right = misfit(a.pose, b.pose)
    assert right < 0.01, right  # 6.6 mm measured: sensor noise and the sampling
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # as if the camera were in the OpenGL convention
    for wrong in (misfit(np.linalg.inv(a.pose), np.linalg.inv(b.pose)),  # world-to-camera
                  misfit(a.pose @ flip, b.pose @ flip), misfit(np.eye(4), np.eye(4))):  # no motion at all
        assert wrong > 2 * right, (right, wrong)


def _copy(tmp_path):
    dst = tmp_path / 'seq'
    shutil.copytree(REDWOOD, dst)
    return dst


def _expect(folder, *words):
    with pytest.raises(PosedFolderError) as err:
        PosedRGBDFolder(folder)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_a_wrong_camera_json_names_the_file_and_the_field(tmp_path):
    seq = _copy(tmp_path)
    meta = json.loads((seq / 'camera.json').read_text())
    del meta['depth_scale']
    (seq / 'camera.json').write_text(json.dumps(meta))
    _expect(seq, 'camera.json', 'depth_scale')
    meta['depth_scale'] = 0
    (seq / 'camera.json').write_text(json.dumps(meta))
    _expect(seq, 'depth_scale must be a positive number')
    (seq / 'camera.json').write_text('{not json')
    _expect(seq, 'camera.json', 'cannot read')
    meta.update(depth_scale=1000.0, fx=-5.0)
    (seq / 'camera.json').write_text(json.dumps(meta))
    _expect(seq, 'camera.json', 'focal lengths must be positive')


def test_images_that_do_not_pair_up_are_named(tmp_path):
    seq = _copy(tmp_path)
    (seq / 'depth' / '00003.png').unlink()
    _expect(seq, 'no depth for 00003')
    shutil.rmtree(seq / 'depth')
    _expect(seq, 'depth', 'missing')


def test_a_trajectory_with_too_few_poses_or_a_bad_matrix_is_refused(tmp_path):
    seq = _copy(tmp_path)
    log = (seq / 'trajectory.log').read_text().splitlines()
    (seq / 'trajectory.log').write_text('\n'.join(log[:20]) + '\n')  # 4 poses for 5 frames
    _expect(seq, 'trajectory.log', '4 poses for 5 frames')
    (seq / 'trajectory.log').write_text('\n'.join(log[:22]) + '\n')
    _expect(seq, '22 non-empty lines')
    scaled = list(log)
    scaled[6] = ' '.join(str(2 * float(v)) for v in scaled[6].split()[:3]) + ' ' + scaled[6].split()[3]
    (seq / 'trajectory.log').write_text('\n'.join(scaled) + '\n')
    _expect(seq, 'trajectory.log:6', 'frame 1', 'not a rotation')
    bad = list(log)
    bad[7] = 'a b c d'
    (seq / 'trajectory.log').write_text('\n'.join(bad) + '\n')
    _expect(seq, 'trajectory.log:6', 'not a header and a 4x4 matrix')
    renumbered = list(log)
    renumbered[5] = '0 0 1'  # frame 0 twice
    (seq / 'trajectory.log').write_text('\n'.join(renumbered) + '\n')
    _expect(seq, 'frame 0 has a second pose')


def test_an_unreadable_image_fails_only_its_frame(tmp_path):
    seq = _copy(tmp_path)
    (seq / 'depth' / '00002.png').write_bytes(b'not a png')
    folder = PosedRGBDFolder(seq)  # opening does not decode images
    with pytest.raises(FrameError, match='frame 00002'):
        folder[2]
    cv2.imwrite(str(seq / 'depth' / '00001.png'), np.zeros((240, 320), np.uint16))  # wrong size
    with pytest.raises(FrameError, match='sizes differ'):
        folder[1]
    assert folder[3].frame.depth.shape == (480, 640)  # the others still read


def test_trajectory_reader_alone(tmp_path):
    path = tmp_path / 'trajectory.log'
    eye = '\n'.join(' '.join(str(v) for v in row) for row in np.eye(4))
    path.write_text(f'1 1 2\n{eye}\n0 0 1\n{eye}\n')  # out of order: sorted by index
    poses = read_trajectory_log(path)
    assert len(poses) == 2 and all(np.array_equal(p, np.eye(4)) for p in poses)
    path.write_text(f'2 2 3\n{eye}\n')
    with pytest.raises(PosedFolderError, match='from 0 to 0'):
        read_trajectory_log(path)
