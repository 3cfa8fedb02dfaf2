"""The node with the real tf2_ros and vision_msgs, over DDS: clouds in other frames through TF, and
``detections_3d`` field by field.

The transforms come from other processes as on a robot: a ``tf2_ros.StaticTransformBroadcaster`` in a
child process (a LiDAR mounted on the camera rig) and a ``TransformBroadcaster`` in the test process (a
frame that moves), both received by the node's own ``tf2_ros.TransformListener``. Needs tf2_ros and
vision_msgs (built from ../shared/ros_src by ``make setup``; see ros_tools.py).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vizion3d_ros.core.camera.transforms import parse_extrinsic
from vizion3d_ros.ros.conversions import pointcloud2_to_arrays, xyzrgb_to_pointcloud2

from node_harness import RELIABLE, Client, running_node, stamp_ns, values
from ros_tools import require_ros_tools

pytestmark = pytest.mark.integration

CAMERA = 'camera_color_optical_frame'
# the LiDAR: x forward, y left, z up (REP 103), at (0.5, -0.25, 0.125) in the camera optical frame
LIDAR_POSE = (0.5, -0.25, 0.125, 0.5, -0.5, 0.5, 0.5)  # x y z qx qy qz qw, camera <- lidar
CAMERA_FROM_LIDAR = parse_extrinsic(' '.join(map(str, LIDAR_POSE)))

BROADCASTER = textwrap.dedent('''
    import os, sys, rclpy
    from geometry_msgs.msg import TransformStamped
    from tf2_ros import StaticTransformBroadcaster
    rclpy.init()
    node = rclpy.create_node('lidar_mount_broadcaster')
    parent, child, *pose = sys.argv[1:-1]
    t = TransformStamped()
    t.header.frame_id, t.child_frame_id = parent, child
    t.header.stamp = node.get_clock().now().to_msg()
    v = t.transform.translation
    q = t.transform.rotation
    v.x, v.y, v.z, q.x, q.y, q.z, q.w = map(float, pose)
    broadcaster = StaticTransformBroadcaster(node)
    broadcaster.sendTransform(t)
    # latched (transient local): once the node's listener has matched, it holds the transform
    while broadcaster.pub_tf.get_subscription_count() < int(sys.argv[-1]):
        rclpy.spin_once(node, timeout_sec=0.05)
    print('broadcasting', flush=True)
    parent = os.getppid()
    try:
        while os.getppid() == parent:  # ends with the test process, however that ends
            rclpy.spin_once(node, timeout_sec=0.5)
    except KeyboardInterrupt:
        pass
''')


@pytest.fixture(scope='module', autouse=True)
def _tools():
    require_ros_tools('tf2_ros', 'vision_msgs')


@pytest.fixture(scope='module')
def node(tmp_path_factory, model_pt):
    yield from running_node(tmp_path_factory.mktemp('node'), load_timeout=180, model=str(model_pt))


@pytest.fixture(scope='module')
def broadcaster(node):
    # ARGV: parent, child, x y z qx qy qz qw, how many subscribers to wait for (the node's listener)
    proc = subprocess.Popen([sys.executable, '-c', BROADCASTER, CAMERA, 'lidar', *map(str, LIDAR_POSE), '1'],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout.readline().strip() == 'broadcasting', proc.stdout.read()
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope='module')
def client(ros, node):
    c = Client('vizion3d_tf_test_client')
    c.wait_matched()
    yield c
    c.close()


def _in_frame(cloud, xyz: np.ndarray, frame_from_camera: np.ndarray):
    """The same cloud with its points expressed in another frame (``frame <- camera``)."""
    moved = (xyz.astype(np.float64) @ frame_from_camera[:3, :3].T + frame_from_camera[:3, 3]).astype(np.float32)
    return moved, xyzrgb_to_pointcloud2(moved, np.asarray(pointcloud2_to_arrays(cloud).rgb), width=640, height=480)


def _headers(client: Client, cloud_frame: str):
    camera = client.next_header()
    other = client.next_header(frame_id=cloud_frame)
    other.stamp = camera.stamp
    return camera, other


def _same_objects(a, b, xyz_b: np.ndarray) -> None:
    """``b`` (a cloud in another frame) found the objects of ``a`` (the camera-frame cloud), point for point."""
    assert [o.label for o in b.objects] == [o.label for o in a.objects] and a.objects
    for oa, ob in zip(a.objects, b.objects, strict=True):
        np.testing.assert_array_equal(oa.point_indices, ob.point_indices)
        idx = np.asarray(ob.point_indices, dtype=np.int64)
        np.testing.assert_allclose([ob.centroid.x, ob.centroid.y, ob.centroid.z],
                                   xyz_b[idx].astype(np.float64).mean(axis=0), atol=1e-4)


def test_a_lidar_cloud_is_moved_through_a_static_transform_from_another_process(client, broadcaster, tum_msgs):
    image, info, cloud, xyz = tum_msgs
    in_camera, _ = client.result(client.send(image, info, cloud))
    xyz_lidar, lidar_cloud = _in_frame(cloud, xyz, np.linalg.inv(CAMERA_FROM_LIDAR))
    in_lidar, annotated = client.result(client.send(image, info, lidar_cloud, *_headers(client, 'lidar')))
    assert in_lidar.header.frame_id == 'lidar' and annotated.header.frame_id == 'lidar'
    _same_objects(in_camera, in_lidar, xyz_lidar)


def test_tf_is_looked_up_at_the_cloud_stamp(client, tum_msgs):
    """A moving frame: its transform at the cloud's stamp is right, the newer one 1 m off. Only a lookup at
    the stamp (not the latest transform) gives the camera-frame answer."""
    from geometry_msgs.msg import TransformStamped
    from tf2_ros import TransformBroadcaster

    image, info, cloud, xyz = tum_msgs
    in_camera, _ = client.result(client.send(image, info, cloud))
    tf = TransformBroadcaster(client.node)
    assert client.spin_until(lambda: tf.pub_tf.get_subscription_count() > 0, 30), 'the node does not listen to /tf'
    camera_header, cloud_header = _headers(client, 'base_moving')
    for dt, shift in ((0, 0.0), (1, 1.0)):  # the right pose at the stamp, a wrong one a second later
        t = TransformStamped()
        t.header.frame_id, t.child_frame_id = CAMERA, 'base_moving'
        t.header.stamp.sec, t.header.stamp.nanosec = cloud_header.stamp.sec + dt, cloud_header.stamp.nanosec
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = \
            LIDAR_POSE[0] + shift, LIDAR_POSE[1], LIDAR_POSE[2]
        q = t.transform.rotation
        q.x, q.y, q.z, q.w = LIDAR_POSE[3:]
        tf.sendTransform(t)
    client.spin_until(lambda: False, 0.5)  # let the node's listener take both in
    xyz_moving, moving_cloud = _in_frame(cloud, xyz, np.linalg.inv(CAMERA_FROM_LIDAR))
    in_moving, _ = client.result(client.send(image, info, moving_cloud, camera_header, cloud_header))
    assert in_moving.header.frame_id == 'base_moving'
    _same_objects(in_camera, in_moving, xyz_moving)


def test_a_frame_without_transform_is_dropped_as_tf_unavailable_and_the_next_is_served(client, node, tum_msgs):
    image, info, cloud, _ = tum_msgs
    client.send(image, info, cloud, *_headers(client, 'radar'))
    node.wait_for_log(r"frame dropped \(tf_unavailable\b.*no TF from 'radar'")
    client.wait_status(lambda st: int(values(st).get('dropped/tf_unavailable', 0)) >= 1)
    objects, _ = client.result(client.send(image, info, cloud))
    assert objects.objects


def test_detections_3d_carry_every_object_field_by_field(client, tum_msgs):
    from vision_msgs.msg import Detection3DArray

    received: dict[int, Detection3DArray] = {}
    client.node.create_subscription(Detection3DArray, 'detections_3d',
                                    lambda m: received.setdefault(stamp_ns(m.header), m), RELIABLE)
    assert client.spin_until(lambda: client.node.count_publishers('detections_3d') > 0, 30)
    image, info, cloud, _ = tum_msgs
    header = client.send(image, info, cloud)
    objects, _ = client.result(header)
    assert client.spin_until(lambda: stamp_ns(header) in received, 30), 'no detections_3d for the frame'
    dets = received[stamp_ns(header)]
    assert dets.header == objects.header and len(dets.detections) == len(objects.objects) > 0
    for det, obj in zip(dets.detections, objects.objects, strict=True):
        assert det.header == objects.header and det.id == str(obj.id)
        assert det.bbox.center == obj.bbox_3d_center and det.bbox.size == obj.bbox_3d_size
        (hyp,) = det.results
        assert hyp.hypothesis.class_id == obj.label
        assert hyp.hypothesis.score == pytest.approx(obj.confidence)
        c = hyp.pose.pose.position
        assert (c.x, c.y, c.z) == (obj.centroid.x, obj.centroid.y, obj.centroid.z)
        assert hyp.pose.pose.orientation.w == 1.0 and not any(hyp.pose.covariance)  # unknown: identity, zeros
