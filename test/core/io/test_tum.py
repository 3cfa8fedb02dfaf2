"""TUM RGB-D sequences (vizion3d_ros.core.io.tum): association by stamp, interpolated poses, clear errors.

The sequence is written here from ray-cast views (TUM's file layout, depth scale and default camera), so
that the right pose and depth of every frame are known.
"""
import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from vizion3d_ros.core.io.posed import PosedFolderError
from vizion3d_ros.core.io.tum import TUM_DEFAULT_CAMERA, TumSequence
from vizion3d_ros.core.synthetic.multiview import furnished_room, orbit_poses, render_view


def _gt_line(t: float, translation, rotation) -> str:
    return f'{t:.6f} ' + ' '.join(f'{v:.9f}' for v in [*translation, *rotation.as_quat()])


def _write_tum(folder, num: int = 4, depth_offset: float = 0.005):
    """A TUM folder of ``num`` frames 0.1 s apart; ground truth at 100 Hz along the orbit; returns the views."""
    room = furnished_room(np.random.default_rng(3))
    poses = orbit_poses(room, num_views=40)
    (folder / 'rgb').mkdir(parents=True)
    (folder / 'depth').mkdir()
    rgb_lines, depth_lines = ['# timestamp filename'], ['# timestamp filename']
    gt_lines, views = ['# timestamp tx ty tz qx qy qz qw'], []
    t0 = 1305031102.0
    for i in range(num):
        view = render_view(room, poses[i], TUM_DEFAULT_CAMERA)
        views.append(view)
        t = t0 + 0.1 * i
        cv2.imwrite(str(folder / 'rgb' / f'{t:.6f}.png'), view.color[:, :, ::-1])
        cv2.imwrite(str(folder / 'depth' / f'{t + depth_offset:.6f}.png'),
                    np.nan_to_num(view.depth * 5000.0).astype(np.uint16))
        rgb_lines.append(f'{t:.6f} rgb/{t:.6f}.png')
        depth_lines.append(f'{t + depth_offset:.6f} depth/{t + depth_offset:.6f}.png')
    # ground truth: the frame poses at their stamps, and the poses halfway between them
    for i in range(num):
        gt_lines.append(_gt_line(t0 + 0.1 * i, poses[i][:3, 3], Rotation.from_matrix(poses[i][:3, :3])))
        if i + 1 < num:
            halfway = Slerp([0.0, 1.0], Rotation.from_matrix([poses[i][:3, :3], poses[i + 1][:3, :3]]))([0.5])[0]
            gt_lines.append(_gt_line(t0 + 0.1 * i + 0.05, 0.5 * (poses[i][:3, 3] + poses[i + 1][:3, 3]), halfway))
    (folder / 'rgb.txt').write_text('\n'.join(rgb_lines) + '\n')
    (folder / 'depth.txt').write_text('\n'.join(depth_lines) + '\n')
    (folder / 'groundtruth.txt').write_text('\n'.join(gt_lines) + '\n')
    return views


def test_frames_pair_with_their_depth_and_ground_truth(tmp_path):
    views = _write_tum(tmp_path / 'seq')
    seq = TumSequence(tmp_path / 'seq')
    assert len(seq) == 4 and seq.skipped == [] and seq.camera == TUM_DEFAULT_CAMERA and seq.depth_scale == 5000.0
    for view, posed in zip(views, seq):
        np.testing.assert_allclose(posed.pose, view.pose, atol=1e-6)
        ok = np.isfinite(view.depth) & (view.depth * 5000 < 65535)
        np.testing.assert_allclose(posed.frame.depth[ok], view.depth[ok], atol=2e-4)  # 0.2 mm steps
        assert posed.frame.color.shape == (480, 640, 3)


def test_frames_without_depth_or_pose_are_skipped_with_the_reason(tmp_path):
    _write_tum(tmp_path / 'seq', depth_offset=0.05)  # depth 50 ms off: no pair within 20 ms
    with pytest.raises(PosedFolderError, match='no colour image has both'):
        TumSequence(tmp_path / 'seq')
    seq = TumSequence(tmp_path / 'seq', max_dt=0.06)
    assert len(seq) == 4
    gt = (tmp_path / 'seq' / 'groundtruth.txt').read_text().splitlines()
    (tmp_path / 'seq' / 'groundtruth.txt').write_text('\n'.join(gt[:-2]) + '\n')  # the last frame unposed
    seq = TumSequence(tmp_path / 'seq', max_dt=0.06)
    assert len(seq) == 3 and len(seq.skipped) == 1 and 'ground truth' in seq.skipped[0][1]


def test_a_malformed_list_names_its_file_and_line(tmp_path):
    _write_tum(tmp_path / 'seq', num=2)
    path = tmp_path / 'seq' / 'depth.txt'
    lines = path.read_text().splitlines()
    lines[2] = 'not-a-stamp depth/x.png'
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(PosedFolderError, match=r'depth.txt:3'):
        TumSequence(tmp_path / 'seq')
    path.write_text('\n'.join(lines[:2]) + '\n')
    (tmp_path / 'seq' / 'groundtruth.txt').unlink()
    with pytest.raises(PosedFolderError, match='groundtruth.txt: cannot read'):
        TumSequence(tmp_path / 'seq')
