"""vizion3d_player replaying a posed sequence over real DDS: each frame's images and cloud, its pose on /tf."""
from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vizion3d_ros.core.io.posed import write_posed_folder
from vizion3d_ros.core.synthetic.multiview import furnished_room, orbit_poses, render_view

pytestmark = pytest.mark.integration
FRAMES = 4


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    room = furnished_room(np.random.default_rng(5))
    views = [render_view(room, p) for p in orbit_poses(room, num_views=8, rng=np.random.default_rng(1))[:FRAMES]]
    out = tmp_path_factory.mktemp('seq')
    write_posed_folder(out, views[0].camera, [(v.color, v.depth, v.pose) for v in views])
    return out, views


def _play(node, clouds: list, *args: str) -> tuple[int, str]:
    """Run vizion3d_player with ``args`` while ``node`` spins, until it has exited and FRAMES clouds came."""
    import rclpy

    player = subprocess.Popen(['vizion3d_player', *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(clouds) < FRAMES or player.poll() is None):
            rclpy.spin_once(node, timeout_sec=0.1)
        out = player.communicate(timeout=20)[0]
    finally:
        player.kill()
        node.destroy_node()
    return player.returncode, out


def test_a_posed_folder_is_replayed_with_its_poses_on_tf(ros, folder):
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from tf2_msgs.msg import TFMessage

    from vizion3d_ros.ros.conversions import pointcloud2_to_arrays

    path, views = folder
    node = Node('vizion3d_player_test')
    got = {'cloud': [], 'image': [], 'info': [], 'tf': []}
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(PointCloud2, 'camera/depth_registered/points', got['cloud'].append, qos)
    node.create_subscription(Image, 'camera/color/image_raw', got['image'].append, qos)
    node.create_subscription(CameraInfo, 'camera/color/camera_info', got['info'].append, qos)
    node.create_subscription(TFMessage, '/tf', got['tf'].append, QoSProfile(depth=100,
                                                                             reliability=ReliabilityPolicy.RELIABLE))

    # the player waits for a subscriber to its cloud before the first frame: nothing is lost to discovery
    code, out = _play(node, got['cloud'], '--frames', str(path), '--rate', '4', '--world-frame', 'map')
    assert code == 0, out
    assert len(got['cloud']) == len(got['image']) == len(got['info']) == len(got['tf']) == FRAMES, out
    for view, cloud, image, tf in zip(views, got['cloud'], got['image'], got['tf']):
        (t,) = tf.transforms
        assert t.header.frame_id == 'map' and t.child_frame_id == cloud.header.frame_id == image.header.frame_id
        assert t.header.stamp == cloud.header.stamp == image.header.stamp  # the pose at the frame's stamp
        q = [t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w]
        np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), view.pose[:3, :3], atol=1e-6)
        tr = t.transform.translation
        np.testing.assert_allclose([tr.x, tr.y, tr.z], view.pose[:3, 3], atol=1e-6)
        xyz = pointcloud2_to_arrays(cloud).xyz
        assert (cloud.width, cloud.height) == (view.camera.width, view.camera.height)
        ok = np.isfinite(view.depth.reshape(-1))
        assert np.isfinite(xyz[ok]).all() and np.isnan(xyz[~ok]).all()


def test_poses_go_to_the_pose_topic_on_request(ros, folder):
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    path, views = folder
    node = Node('vizion3d_player_pose_test')
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    clouds, poses = [], []
    node.create_subscription(PointCloud2, 'camera/depth_registered/points', clouds.append, qos)
    node.create_subscription(PoseStamped, 'pose', poses.append, qos)
    code, out = _play(node, clouds, '--frames', str(path), '--rate', '4', '--poses', 'topic')
    assert code == 0, out
    assert len(poses) == len(clouds) == FRAMES, out
    for view, cloud, pose in zip(views, clouds, poses):
        assert pose.header.frame_id == 'odom' and pose.header.stamp == cloud.header.stamp
        p, q = pose.pose.position, pose.pose.orientation
        np.testing.assert_allclose([p.x, p.y, p.z], view.pose[:3, 3], atol=1e-6)
        np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), view.pose[:3, :3], atol=1e-6)
