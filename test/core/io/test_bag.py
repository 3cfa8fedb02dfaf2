"""rosbag2 recordings (vizion3d_ros.core.io.bag): topics, association, tf poses, decoding, clear errors.

The bags are written here with rosbags' own writer (sqlite3 and MCAP) from ray-cast views of a synthetic
room. The camera rides on a base that moves at constant velocity and yaw rate in ``odom``; ``map -> odom``
is a constant on ``/tf`` and ``base_link -> camera_color_optical_frame`` is static. With such a motion the
linear / spherical interpolation of tf samples is exact, so the poses are known at any stamp, and the tf
samples (every 70 ms) fall between the images (every 100 ms) so interpolation is exercised.
"""
import numpy as np
import pytest
from bag_messages import NS, TS, cloud_msg, image_msg, info_msg, tf_msg, write_bag
from rosbags.rosbag2 import StoragePlugin
from scipy.spatial.transform import Rotation

from vizion3d_ros.core.io.bag import BagSequence, TransformTree
from vizion3d_ros.core.io.posed import FrameError, PosedFolderError
from vizion3d_ros.core.synthetic.multiview import furnished_room, render_view
from vizion3d_ros.core.synthetic.scenes import SMALL_CAMERA

T0 = 1_700_000_000 * NS
FRAME_DT = NS // 10  # images at 10 Hz
NUM = 4  # frames inside the tf samples
OPTICAL = 'camera_color_optical_frame'
STORAGES = [StoragePlugin.SQLITE3, StoragePlugin.MCAP]


def _rigid(rotation: np.ndarray, translation) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = translation
    return m


# map <- odom: the room's world is Y up, odom is Z up with its floor at z = 0
MAP_ODOM = _rigid(Rotation.from_euler('x', -90, degrees=True).as_matrix(), (0.2, -1.0, -0.1))
# base_link <- optical: 1.2 m up, looking along the base's x (optical z = x, x = -y, y = -z)
BASE_OPTICAL = _rigid(np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]), (0.1, 0.0, 1.2))


def _odom_base(stamp: int) -> np.ndarray:
    s = (stamp - T0) / NS
    return _rigid(Rotation.from_euler('z', 0.2 + 0.5 * s).as_matrix(), (-1.0 + 0.6 * s, -0.3 + 0.2 * s, 0.0))


def _truth(stamp: int) -> np.ndarray:
    """World (map) <- optical camera at ``stamp``."""
    return MAP_ODOM @ _odom_base(stamp) @ BASE_OPTICAL


@pytest.fixture(scope='module')
def views():
    """The views at the image stamps: NUM inside the tf samples, one past them (at T0 + 0.5 s)."""
    room = furnished_room(np.random.default_rng(3))
    return [render_view(room, _truth(T0 + i * FRAME_DT)) for i in range(NUM + 1)]


def _scene(views, depth='16UC1', color='rgb8', tf=True, frames=NUM + 1, depth_offset=3_000_000):
    """(topic, type, receive time, message) of a recording; the last frame lies past the tf samples."""
    msgs = []
    for i, view in enumerate(views[:frames]):
        t = T0 + i * FRAME_DT
        rgb = view.color if color == 'rgb8' else view.color[:, :, ::-1]
        msgs.append(('/camera/color/image_raw', 'sensor_msgs/msg/Image', t + 1_000_000,
                     image_msg(t, OPTICAL, rgb, color)))
        msgs.append(('/camera/color/camera_info', 'sensor_msgs/msg/CameraInfo', t + 1_000_000,
                     info_msg(t, OPTICAL, view.camera)))
        td = t + depth_offset
        if depth == '16UC1':
            mm = np.nan_to_num(np.round(view.depth * 1000.0)).astype(np.uint16)
            msg = image_msg(td, OPTICAL, mm, '16UC1')
            topic, kind = '/camera/depth/image_rect_raw', 'sensor_msgs/msg/Image'
        elif depth == '32FC1':  # big-endian, rows padded
            msg = image_msg(td, OPTICAL, view.depth, '32FC1', pad=12, bigendian=True)
            topic, kind = '/camera/depth/image_rect_raw', 'sensor_msgs/msg/Image'
        else:
            msg = cloud_msg(td, OPTICAL, view.depth, view.camera, pad=8)
            topic, kind = '/camera/depth/points', 'sensor_msgs/msg/PointCloud2'
        msgs.append((topic, kind, td + 2_000_000, msg))
    if tf:
        msgs.append(('/tf_static', 'tf2_msgs/msg/TFMessage', T0 - NS,
                     tf_msg(T0 - NS, [('base_link', OPTICAL, BASE_OPTICAL), ('base_link', 'imu_link', np.eye(4))])))
        for k in range(7):  # odom -> base_link every 70 ms, from -50 ms to 370 ms
            t = T0 - 50_000_000 + k * 70_000_000
            msgs.append(('/tf', 'tf2_msgs/msg/TFMessage', t, tf_msg(t, [('odom', 'base_link', _odom_base(t))])))
        for t in (T0 - NS // 5, T0 + NS // 2, T0 + 6 * NS // 5):  # map -> odom: constant, now and then
            msgs.append(('/tf', 'tf2_msgs/msg/TFMessage', t, tf_msg(t, [('map', 'odom', MAP_ODOM)])))
    return msgs


def _check_frames(seq, views, depth_atol):
    assert [p.stem for p in seq] == [f'{T0 // NS}.{i * FRAME_DT:09d}' for i in range(NUM)]
    for i, posed in enumerate(seq):
        view = views[i]
        np.testing.assert_allclose(posed.pose, _truth(T0 + i * FRAME_DT), atol=1e-9)
        np.testing.assert_allclose(posed.pose, view.pose, atol=1e-9)
        np.testing.assert_array_equal(posed.frame.color, view.color)
        assert posed.frame.camera == SMALL_CAMERA and posed.frame.depth.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(posed.frame.depth), ~(view.depth > 0))
        ok = view.depth > 0
        np.testing.assert_allclose(posed.frame.depth[ok], view.depth[ok], rtol=0, atol=depth_atol)


# -- tests ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('storage', STORAGES, ids=['sqlite3', 'mcap'])
def test_frames_come_back_with_their_images_camera_and_tf_pose(tmp_path, views, storage):
    bag = write_bag(tmp_path / 'bag', _scene(views), storage)
    with BagSequence(bag) as seq:
        assert (seq.image_topic, seq.depth_topic, seq.info_topic) == (
            '/camera/color/image_raw', '/camera/depth/image_rect_raw', '/camera/color/camera_info')
        assert (seq.world_frame, seq.camera_frame, seq.depth_scale) == ('map', OPTICAL, 1000.0)
        assert seq.camera == SMALL_CAMERA and len(seq) == NUM and seq.warnings == []
        _check_frames(seq, views, depth_atol=5e-4 + 1e-6)  # millimetre steps
        # the last image is 130 ms past the last odom -> base_link sample
        assert len(seq.skipped) == 1 and seq.skipped[0][0] == f'{T0 // NS}.{NUM * FRAME_DT:09d}'
        assert 'outside the tf samples of odom -> base_link' in seq.skipped[0][1]


def test_a_single_storage_file_opens_too(tmp_path, views):
    write_bag(tmp_path / 'bag', _scene(views, frames=2), StoragePlugin.SQLITE3)
    (db3,) = (tmp_path / 'bag').glob('*.db3')
    assert len(BagSequence(db3)) == 2


def test_bgr_colour_and_padded_big_endian_float_depth(tmp_path, views):
    seq = BagSequence(write_bag(tmp_path / 'bag', _scene(views, depth='32FC1', color='bgr8')))
    assert seq.depth_scale == 1.0
    _check_frames(seq, views, depth_atol=0.0)


def test_an_organised_cloud_gives_the_depth(tmp_path, views):
    seq = BagSequence(write_bag(tmp_path / 'bag', _scene(views, depth='cloud'), StoragePlugin.SQLITE3))
    assert seq.depth_topic == '/camera/depth/points'
    _check_frames(seq, views, depth_atol=0.0)


def test_topics_are_chosen_when_one_fits_and_refused_when_several_do(tmp_path, views):
    msgs = _scene(views, frames=2)
    t = T0 + 1_000_000
    cam2 = SMALL_CAMERA.__class__(fx=300.0, fy=300.0, cx=159.5, cy=119.5, width=320, height=240)
    msgs += [('/camera/infra1/image_rect_raw', 'sensor_msgs/msg/Image', t,  # mono8: colour only if nothing else
              image_msg(t, 'camera_infra1_optical_frame', views[0].color[:, :, 0], 'mono8')),
             ('/camera/depth/camera_info', 'sensor_msgs/msg/CameraInfo', t, info_msg(t, OPTICAL, cam2, distortion=0.1))]
    seq = BagSequence(write_bag(tmp_path / 'one', msgs))
    assert seq.image_topic == '/camera/color/image_raw' and seq.info_topic == '/camera/color/camera_info'
    assert seq.camera == SMALL_CAMERA

    two = msgs + [('/camera2/color/image_raw', 'sensor_msgs/msg/Image', t,
                   image_msg(t, OPTICAL, views[0].color, 'bgr8')),
                  ('/camera/aligned_depth/image_raw', 'sensor_msgs/msg/Image', t,
                   image_msg(t, OPTICAL, np.zeros((240, 320), np.uint16), '16UC1'))]
    bag = write_bag(tmp_path / 'two', two)
    with pytest.raises(PosedFolderError, match=r'colour image topic: /camera/color/image_raw, /camera2/color/image_raw'
                                               r'; pass image_topic='):
        BagSequence(bag)
    with pytest.raises(PosedFolderError, match=r'/camera/aligned_depth/image_raw, /camera/depth/image_rect_raw; '
                                               r'pass depth_topic='):
        BagSequence(bag, image_topic='/camera/color/image_raw')
    seq = BagSequence(bag, image_topic='/camera/color/image_raw', depth_topic='/camera/depth/image_rect_raw',
                      info_topic='/camera/depth/camera_info')
    assert len(seq) == 2 and seq.camera == cam2
    assert seq.warnings == ['/camera/depth/camera_info has distortion coefficients; they are not applied (the images '
                            'are taken as rectified)']
    with pytest.raises(PosedFolderError, match=r'depth_topic /camera/color/image_raw: rgb8, not a depth image'):
        BagSequence(bag, image_topic='/camera2/color/image_raw', depth_topic='/camera/color/image_raw')
    with pytest.raises(PosedFolderError, match=r'image_topic /tf carries tf2_msgs/msg/TFMessage'):
        BagSequence(bag, image_topic='/tf')
    with pytest.raises(PosedFolderError, match=r'info_topic /nope: no such topic'):
        BagSequence(bag, info_topic='/nope')


def test_colour_images_without_depth_nearby_are_skipped(tmp_path, views):
    third_depth = T0 + 2 * FRAME_DT + 5_000_000  # its receive time
    msgs = [m for m in _scene(views) if not (m[0].startswith('/camera/depth') and m[2] == third_depth)]
    seq = BagSequence(write_bag(tmp_path / 'bag', msgs))
    assert [p.stem[-9:] for p in seq] == ['000000000', '100000000', '300000000']
    assert seq.skipped[0] == (f'{T0 // NS}.200000000', 'no message on /camera/depth/image_rect_raw within 20 ms')
    assert len(seq.skipped) == 2  # and the one past the tf samples
    late = write_bag(tmp_path / 'late', _scene(views, depth_offset=30_000_000))
    with pytest.raises(PosedFolderError, match=r'no colour image .* both depth and a pose \(5 skipped; .*within 20 ms'):
        BagSequence(late)
    assert len(BagSequence(late, max_dt=0.04)) == NUM


def test_poses_in_another_world_or_camera_frame(tmp_path, views):
    bag = write_bag(tmp_path / 'bag', _scene(views, frames=2))
    seq = BagSequence(bag, world_frame='odom')
    np.testing.assert_allclose(seq[1].pose, _odom_base(T0 + FRAME_DT) @ BASE_OPTICAL, atol=1e-9)
    seq = BagSequence(bag, world_frame='imu_link')  # a frame beside the camera, not above it
    np.testing.assert_allclose(seq[1].pose, BASE_OPTICAL, atol=1e-9)
    seq = BagSequence(bag, camera_frame='base_link')
    np.testing.assert_allclose(seq.frames[1].pose, MAP_ODOM @ _odom_base(T0 + FRAME_DT), atol=1e-9)
    assert any("'base_link' is not named as an optical frame" in w for w in seq.warnings)
    with pytest.raises(PosedFolderError, match=r"world_frame 'earth' is not a tf frame \(frames: base_link"):
        BagSequence(bag, world_frame='earth')


def test_a_camera_frame_outside_the_tf_tree_is_skipped(tmp_path, views):
    msgs = _scene(views, frames=3)
    msgs[0][3].header.frame_id = 'elsewhere_optical_frame'  # the first colour image
    seq = BagSequence(write_bag(tmp_path / 'bag', msgs))
    assert len(seq) == 2 and seq.skipped[0][0].endswith('.000000000')
    assert "camera frame 'elsewhere_optical_frame' is not a tf frame" in seq.skipped[0][1]


def test_a_bag_without_tf_needs_static_camera(tmp_path, views):
    bag = write_bag(tmp_path / 'bag', _scene(views, tf=False, frames=2))
    with pytest.raises(PosedFolderError, match='no /tf or /tf_static message.*static_camera=True'):
        BagSequence(bag)
    seq = BagSequence(bag, static_camera=True)
    assert len(seq) == 2 and all(np.array_equal(f.pose, np.eye(4)) for f in seq.frames)


def test_a_bad_image_fails_that_frame_only(tmp_path, views):
    msgs = _scene(views)
    colour = [k for k, m in enumerate(msgs) if m[0] == '/camera/color/image_raw']
    msgs[colour[1]][3].encoding = 'yuv422'
    msgs[colour[2]][3].data = msgs[colour[2]][3].data[:1000]  # truncated pixels, intact message
    truncated_cdr = bytes(TS.serialize_cdr(msgs[colour[3]][3], 'sensor_msgs/msg/Image'))[:40]
    seq = BagSequence(write_bag(tmp_path / 'bag', msgs, raw={colour[3]: truncated_cdr}))
    assert len(seq) == 3
    assert seq.skipped[0][0].startswith('/camera/color/image_raw message received at')
    assert 'cannot be decoded' in seq.skipped[0][1]
    with pytest.raises(FrameError, match=r"frame \d+\.100000000: /camera/color/image_raw: encoding 'yuv422'"):
        seq[1]
    with pytest.raises(FrameError, match=r'1000 bytes of data for a 320x240 rgb8 image'):
        seq[2]
    np.testing.assert_array_equal(seq[0].frame.color, views[0].color)
    seq.close()
    np.testing.assert_array_equal(seq[0].frame.color, views[0].color)  # opens the bag again


def test_size_mismatch_between_camera_and_images_is_a_frame_error(tmp_path, views):
    small = SMALL_CAMERA.__class__(fx=262.5, fy=262.5, cx=79.5, cy=59.5, width=160, height=120)
    seq = BagSequence(write_bag(tmp_path / 'bag', _scene(views, frames=1)), camera=small)
    with pytest.raises(FrameError, match='colour 320x240, depth 320x240 and camera 160x120 sizes differ'):
        seq[0]


def test_not_a_bag(tmp_path):
    with pytest.raises(PosedFolderError, match='no such rosbag2'):
        BagSequence(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(PosedFolderError, match='not a readable rosbag2'):
        BagSequence(tmp_path / 'empty')


def test_transform_tree_interpolates_and_refuses_two_parents():
    tree = TransformTree([('a', 'b', 0, (0, 0, 0), (0, 0, 0, 1), False),
                          ('a', 'b', NS, (2, 0, 0), tuple(Rotation.from_euler('z', 1.0).as_quat()), False),
                          ('b', 'c', 5, (0, 1, 0), (0, 0, 0, 1), True)], tolerance=0.01)
    poses, problems, root = tree.to_root('c', np.array([NS // 4, NS + NS // 200, NS + NS // 50]))
    assert root == 'a' and problems[:2] == [None, None] and 'a -> b' in problems[2]
    np.testing.assert_allclose(poses[0, :3, :3], Rotation.from_euler('z', 0.25).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(poses[0, :3, 3], [0.5 - np.sin(0.25), np.cos(0.25), 0], atol=1e-12)
    np.testing.assert_allclose(poses[1], poses[2])  # held at the last sample
    with pytest.raises(ValueError, match="frame 'b' has two parents"):
        TransformTree([('a', 'b', 0, (0, 0, 0), (0, 0, 0, 1), True), ('x', 'b', 0, (0, 0, 0), (0, 0, 0, 1), True)])
