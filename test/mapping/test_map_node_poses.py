"""vizion3d_map_node with poses from a topic (no TF), bad poses, and a start with invalid parameters.

``pose_source:=topic`` is not the default (TF is, where tf2_ros is installed): these are the robots that
publish a PoseStamped or an Odometry instead of TF. The client publishes each frame's camera pose on
``pose`` at the frame's stamp.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from map_harness import WORLD, MapClient, MapNodeProcess, nearest, orbit_frames
from std_msgs.msg import Header

from vizion3d_ros.msg import MapObject3D

from node_harness import Lifecycle

pytestmark = pytest.mark.integration


@pytest.fixture(scope='module')
def scene():
    return orbit_frames(23, num_objects=3, num_views=6)


@pytest.fixture(scope='module')
def node(tmp_path_factory):
    proc = MapNodeProcess(tmp_path_factory.mktemp('map_node_poses') / 'node.log', pose_source='topic')
    proc.wait_for_log('map ready')
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


@pytest.fixture(scope='module')
def client(ros, node):
    c = MapClient()
    ok = c.spin_until(lambda: c.objects_pub.get_subscription_count() > 0 and c.pose_pub.get_subscription_count() > 0
                      and c.node.count_publishers('map_objects') > 0, 30.0)
    assert ok, 'the map node did not subscribe to objects and pose'
    time.sleep(1.5)  # input_reliability auto: let the node switch to reliable before large messages
    c.spin_until(lambda: False, 0.5)
    yield c
    c.node.destroy_node()


def test_poses_from_the_topic_place_the_frames_and_ids_stay(client, node, scene):
    room, frames = scene
    assert 'poses from the pose/odom topic' in node.log()
    ids_of: dict[int, int] = {}
    for view, masks in frames:
        msg = client.map_at(client.send(view, masks, with_tf=False, with_pose=True))
        for truth in masks.truth.values():
            if truth:
                cls = int(room.class_ids[truth - 1])
                obj = nearest(msg, np.asarray(room.scene.objects[truth - 1].center), cls)
                assert obj is not None, f'no map object of class {cls} near true object {truth}'
                assert ids_of.setdefault(truth, obj.id) == obj.id, f'true object {truth} changed id'
    assert len(set(ids_of.values())) == len(ids_of) == len(room.scene.objects)
    assert msg.frames_integrated == len(frames)
    assert {o.id for o in msg.objects if o.state == MapObject3D.STATE_CONFIRMED} == set(ids_of.values())


def test_frames_without_a_pose_and_bad_poses_are_dropped_and_counted(client, node, scene):
    room, frames = scene
    view, masks = frames[0]
    base = client.map_at(client.send(view, masks, with_tf=False, with_pose=True))
    # a frame newer than every pose: it waits tf_timeout for one, then goes (no_pose)
    before = client.drop_count('no_pose')
    client.send(view, masks, with_tf=False, with_pose=False)
    assert client.spin_until(lambda: client.drop_count('no_pose') > before, 10.0), 'no no_pose drop'
    node.wait_for_log(r'frame dropped \(no_pose')
    # poses that are not poses: NaN, a quaternion of norm 2, another frame than world_frame
    bad = client.drop_count('bad_pose')
    for x, w, frame in ((float('nan'), 1.0, WORLD), (0.0, 2.0, WORLD), (0.0, 1.0, 'map')):
        msg = PoseStamped(header=Header(frame_id=frame, stamp=Header().stamp))
        msg.header.stamp.sec = client._t + 1
        msg.pose.position.x, msg.pose.orientation.w = x, w
        client.pose_pub.publish(msg)
    assert client.spin_until(lambda: client.drop_count('bad_pose') >= bad + 3, 10.0), client.drop_count('bad_pose')
    assert node.proc.poll() is None
    # the map is intact and a frame with its pose is integrated on top of it
    msg = client.map_at(client.send(view, masks, with_tf=False, with_pose=True))
    assert msg.frames_integrated == base.frames_integrated + 1
    assert {o.id for o in base.objects} <= {o.id for o in msg.objects}
    assert 'Traceback' not in node.log()


def test_invalid_parameters_fail_the_start_with_a_reason_and_a_fix_retries_it(ros, tmp_path):
    # in a namespace of its own: the module's node (same name) is still running
    proc = MapNodeProcess(tmp_path / 'node.log', namespace='/bad_start', pose_source='gps', voxel_size='0.05')
    try:
        proc.wait_for_log('configure failed: invalid parameters')
        assert 'pose_source must be one of' in proc.log()
        client = MapClient()
        life = Lifecycle(client, 'bad_start/vizion3d_map_node')
        assert life.state() == 'unconfigured'
        assert client.spin_until(lambda: any('pose_source' in d.message for d in client.diags
                                             if d.name.startswith('/bad_start/')), 10.0)
        assert [d for d in client.diags if d.name.startswith('/bad_start/')][-1].level == DiagnosticStatus.ERROR
        results = life.set(pose_source='topic')
        assert all(r.successful for r in results), results
        life.wait_for_state('active', timeout=20.0)
        assert life.get('voxel_size') == {'voxel_size': 0.05}
        client.node.destroy_node()
    finally:
        assert proc.stop() == 0, proc.log()[-3000:]
