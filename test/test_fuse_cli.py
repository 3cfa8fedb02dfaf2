"""The installed `vizion3d-fuse` command: a posed folder with mask files, bad frames, semantic masks, the real model."""
import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from bag_messages import NS, image_msg, info_msg, tf_msg, write_bag
from conftest import REDWOOD
from rosbags.rosbag2 import StoragePlugin

from vizion3d_ros.core.io.masks import write_instance_masks
from vizion3d_ros.core.io.plyio import read_ply, write_ply
from vizion3d_ros.core.io.posed import write_posed_folder
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.io.tum import write_tum_sequence
from vizion3d_ros.core.synthetic.multiview import (
    MaskErrors,
    frame_masks,
    furnished_room,
    orbit_poses,
    render_view,
)

EXE = shutil.which('vizion3d-fuse')
VIEWS = 10


def fuse(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    assert EXE, 'vizion3d-fuse is not on PATH: run scripts/setup.sh and source scripts/env.sh'
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    """A ray-cast room as a posed RGB-D folder (10 of 20 orbit views) with per-frame instance mask files."""
    folder = tmp_path_factory.mktemp('room')
    room = furnished_room(np.random.default_rng(5))
    views = [render_view(room, p) for p in orbit_poses(room, rng=np.random.default_rng(1))[::2]]
    stems = write_posed_folder(folder / 'frames', views[0].camera, [(v.color, v.depth, v.pose) for v in views])
    tum_stems = write_tum_sequence(folder / 'tum', views[0].camera, [(v.color, v.depth, v.pose) for v in views])
    rng = np.random.default_rng(4)
    semantic = np.r_[200, room.class_ids + 1]  # the room's surfaces are class 200, objects their COCO id + 1
    for stem, v in zip(stems, views):
        fm = frame_masks(room, v, rng, MaskErrors(grow=1))  # per-frame random numbering, masks a bit too big
        write_instance_masks(folder / 'masks', stem, fm.labels, fm.meta)
        write_instance_masks(folder / 'tum_masks', tum_stems[stems.index(stem)], fm.labels, fm.meta)
        if stem in ('00000', '00005'):  # two painted photos
            classes = np.where(v.ids >= 0, semantic[np.maximum(v.ids, 0)], 0).astype(np.uint8)
            (folder / 'painted').mkdir(exist_ok=True)
            cv2.imwrite(str(folder / 'painted' / f'{stem}.png'), classes)
    names = {str(c + 1): n for c, n in zip(room.class_ids, room.labels)} | {'200': 'room'}
    (folder / 'painted' / 'classes.json').write_text(json.dumps(names))
    _write_bag(folder, views, np.random.default_rng(4), room)
    return folder, room


def _write_bag(folder, views, rng, room) -> None:
    """The same views as a rosbag2 (MCAP) a camera driver would record, poses on /tf; masks named by stamp."""
    t0, optical = 1_700_000_000 * NS, 'camera_color_optical_frame'
    msgs = []
    for i, v in enumerate(views):
        t = t0 + i * NS // 5
        mm = np.nan_to_num(np.round(v.depth * 1000.0)).astype(np.uint16)
        msgs += [('/camera/color/image_raw', 'sensor_msgs/msg/Image', t, image_msg(t, optical, v.color, 'rgb8')),
                 ('/camera/color/camera_info', 'sensor_msgs/msg/CameraInfo', t, info_msg(t, optical, v.camera)),
                 ('/camera/depth/image_rect_raw', 'sensor_msgs/msg/Image', t + 1000,
                  image_msg(t, optical, mm, '16UC1')),
                 ('/tf', 'tf2_msgs/msg/TFMessage', t, tf_msg(t, [('map', optical, v.pose)]))]
        fm = frame_masks(room, v, rng, MaskErrors(grow=1))
        write_instance_masks(folder / 'bag_masks', f'{t // NS}.{t % NS:09d}', fm.labels, fm.meta)
    write_bag(folder / 'bag', msgs, StoragePlugin.MCAP)


def _copy(recording, tmp_path):
    folder, room = recording
    shutil.copytree(folder, tmp_path / 'rec')
    return tmp_path / 'rec', room


def test_masks_fuse_into_one_instance_per_object_with_consistent_files(recording, tmp_path):
    folder, room = recording
    out = tmp_path / 'out'
    run = fuse('--frames', folder / 'frames', '--masks', folder / 'masks', '--out', out)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames']['used'] == VIEWS and summary['frames']['skipped'] == 0
    assert summary['voxel_size'] == 0.01 and summary['mode'] == 'instance'
    objects = summary['instances']
    assert sorted(o['label'] for o in objects) == sorted(room.labels)  # one instance per object, none spurious
    for o in objects:
        assert o['class_id'] == room.class_ids[room.labels.index(o['label'])]
        assert o['frames_seen'] >= 2 and 0 <= o['first_frame'] <= o['last_frame'] < VIEWS
    ply = read_ply(out / 'map.ply')
    assert len(ply) == summary['voxels']
    assert set(np.unique(ply['instance_id'])) == {o['id'] for o in objects} | {0}
    assert sorted(p.name for p in (out / 'objects').iterdir()) == sorted(
        f"{o['id']}_{o['label'].replace(' ', '_')}.ply" for o in objects)
    assert (out / 'map.glb').stat().st_size > 1000 and cv2.imread(str(out / 'top_view.png')) is not None
    t = summary['timings']
    assert t['integrate_ms_median'] > 0 and t['integrate_ms_p90'] >= t['integrate_ms_median']
    assert summary['peak_memory_mb'] > 0 and summary['coverage']['after_propagation'] is None
    assert f'{len(objects)} objects:' in run.stdout and all(o['label'] in run.stdout for o in objects)


def test_a_tum_sequence_fuses_the_same_way(recording, tmp_path):
    folder, room = recording
    out = tmp_path / 'out'
    run = fuse('--tum', folder / 'tum', '--masks', folder / 'tum_masks', '--every', '2', '--out', out)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames']['used'] == VIEWS // 2 and summary['frames']['without_masks'] == 0
    # the same masks as the posed folder's frames: every object again, one instance each
    found = sorted(o['label'] for o in summary['instances'])
    assert set(found) <= set(room.labels) and len(found) == len(set(found)) >= room.scene.num_objects - 1


def test_a_bag_with_tf_poses_fuses_the_same_way(recording, tmp_path):
    folder, room = recording
    out = tmp_path / 'out'
    run = fuse('--bag', folder / 'bag', '--masks', folder / 'bag_masks', '--out', out)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames']['used'] == VIEWS and summary['frames']['without_masks'] == 0
    assert sorted(o['label'] for o in summary['instances']) == sorted(room.labels)
    wrong = fuse('--bag', folder / 'bag', '--masks', folder / 'bag_masks', '--world-frame', 'odom', '--out', out)
    assert wrong.returncode == 2 and 'odom' in wrong.stderr.splitlines()[-1]


def test_an_external_cloud_is_labelled_from_the_map(recording, tmp_path):
    """A scan of the room from a pose no frame had (as a LiDAR would give), in the world frame, NaNs kept."""
    folder, room = recording
    v = render_view(room, orbit_poses(room, rng=np.random.default_rng(1))[3])
    pts = depth_to_points_optical(v.depth, v.camera).astype(np.float64) @ v.pose[:3, :3].T + v.pose[:3, 3]
    write_ply(tmp_path / 'scan.ply', pts, v.color.reshape(-1, 3))
    out = tmp_path / 'out'
    run = fuse('--frames', folder / 'frames', '--masks', folder / 'masks', '--label-cloud', tmp_path / 'scan.ply',
               '--out', out)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / 'summary.json').read_text())
    labelled = read_ply(out / 'labelled_cloud.ply')
    assert len(labelled) == len(pts) and summary['labelled_cloud']['points'] == len(pts)
    ids = v.ids.reshape(-1)
    assert (labelled['instance_id'][ids <= 0] == 0).mean() > 0.98
    by_label = {o['label']: o for o in summary['instances']}
    for obj in np.unique(ids[ids > 0]):
        mine = ids == obj
        if mine.sum() < 50:
            continue
        o = by_label[room.labels[obj - 1]]
        assert (labelled['instance_id'][mine] == o['id']).mean() > 0.9, room.labels[obj - 1]
        assert (labelled['class_id'][mine] == o['class_id']).mean() > 0.9
    assert summary['labelled_cloud']['labelled'] == (labelled['class_id'] >= 0).sum()


def test_bad_frames_and_mask_files_are_skipped_and_counted(recording, tmp_path):
    rec, room = _copy(recording, tmp_path)
    (rec / 'frames' / 'depth' / '00003.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    (rec / 'masks' / '00006.json').write_text('{"1": {"label": "chair"')
    (rec / 'masks' / '00008.png').unlink()  # no masks: geometry only
    out = tmp_path / 'out'
    run = fuse('--frames', rec / 'frames', '--masks', rec / 'masks', '--out', out)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / 'summary.json').read_text())
    frames = summary['frames']
    assert frames['used'] == VIEWS - 2 and frames['skipped'] == 2 and frames['without_masks'] == 1
    why = {s['frame']: s['reason'] for s in frames['skipped_frames']}
    assert set(why) == {'00003', '00006'} and '00003.png' in why['00003'] and '00006.json' in why['00006']
    assert 'skipping frame 00003' in run.stderr and 'skipping frame 00006' in run.stderr
    assert sorted(o['label'] for o in summary['instances']) == sorted(room.labels)


@pytest.mark.parametrize('args, words', [
    (['--frames', 'nowhere'], ['nowhere', 'not a folder']),
    (['--frames', '{frames}', '--mask-kind', 'semantic'], ['--mask-kind semantic needs --masks']),
    (['--frames', '{frames}', '--masks', '{masks}', '--every', '0'], ['--every must be >= 1']),
    (['--frames', '{frames}', '--masks', 'nowhere'], ['mask folder nowhere does not exist']),
    (['--frames', '{frames}', '--masks', '{masks}', '--model', 'm.pt'], ['exclude each other']),
    (['--frames', '{frames}', '--model', '{frames}/missing.pt'], ['missing.pt', 'does not exist']),
])
def test_unusable_inputs_exit_2_with_one_clear_line(recording, tmp_path, args, words):
    folder, _ = recording
    run = fuse(*[a.format(frames=folder / 'frames', masks=folder / 'masks') for a in args], '--out', tmp_path / 'o')
    assert run.returncode == 2, (run.stdout, run.stderr)
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith('vizion3d-fuse: error: ') and 'Traceback' not in run.stderr
    for w in words:
        assert w in last, last


def test_two_painted_photos_and_propagation_label_most_of_the_room(recording, tmp_path):
    folder, room = recording
    out = tmp_path / 'out'
    run = fuse('--frames', folder / 'frames', '--masks', folder / 'painted', '--mask-kind', 'semantic',
               '--propagate', '--voxel', '0.02', '--out', out)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['mode'] == 'semantic' and summary['frames']['without_masks'] == VIEWS - 2
    cov = summary['coverage']
    assert 0.1 < cov['direct'] < cov['after_propagation'] and cov['after_propagation'] > 0.6
    ply = read_ply(out / 'map.ply')
    assert (ply['instance_id'] == 0).all()
    named = {c['label'] for c in summary['classes']}
    assert 'room' in named and named <= set(room.labels) | {'room'}
    assert (ply['class_id'] >= 0).mean() == pytest.approx(cov['after_propagation'], abs=1e-3)


@pytest.mark.model
def test_the_real_model_on_the_redwood_frames_keeps_one_id_per_object(tmp_path, model_pt):
    """YOLO on each of the 5 rendered living-room frames: the chair it finds in 4 of them is one instance."""
    out = tmp_path / 'out'
    run = fuse('--frames', REDWOOD, '--model', model_pt, '--device', 'cpu', '--out', out)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames']['used'] == 5 and summary['source']['segmentation'].startswith('ultralytics:')
    chairs = [o for o in summary['instances'] if o['label'] == 'chair']
    assert chairs, summary['instances']
    assert max(o['frames_seen'] for o in chairs) >= 3  # one id over the frames that detect it
