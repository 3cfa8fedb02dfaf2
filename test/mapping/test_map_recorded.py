"""The same recorded bag gives the same map offline (vizion3d-fuse --bag) and live (player -> the map node).

The bag holds what a robot records under vizion3d_map_node: vizion3d_node's ``/objects``, the cloud they
index and ``/tf``, written with rosbags' writer and the messages' real CDR bytes (rclpy's serialiser).
Offline, ``vizion3d-fuse --bag --map-params config/vizion3d_map.yaml``; live, ``vizion3d_player --bag``
into a map node with the same (default) parameters, then ``~/save_map``. The two map.ply files must hold
the same voxels with the same instance and class, and the two summaries the same objects.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from map_harness import MapClient, MapNodeProcess
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header

from vizion3d_ros.core.io.plyio import read_ply
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.synthetic.multiview import EXACT_MASKS, frame_masks, furnished_room, orbit_poses, render_view
from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray
from vizion3d_ros.ros.conversions import xyzrgb_to_pointcloud2
from vizion3d_ros.ros.mapping.recorded import RecordedMap, header_of
from vizion3d_ros.ros.messages import uint32_array
from vizion3d_ros.srv import SaveMap

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000
VIEWS = 12  # past consolidate_every (10): the merge pass runs in both


def _typestore():
    store = get_typestore(Stores.ROS2_KILTED)
    for name in ('ObjectMask3D', 'ObjectMask3DArray'):
        store.register(get_types_from_msg((ROOT / 'msg' / f'{name}.msg').read_text(), f'vizion3d_ros/msg/{name}'))
    return store


def _tf_bytes(store, stamp: int, pose: np.ndarray) -> bytes:
    t = store.types
    q = Rotation.from_matrix(pose[:3, :3]).as_quat()
    tr = t['geometry_msgs/msg/TransformStamped'](
        header=t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](sec=stamp // S, nanosec=stamp % S),
                                        frame_id='odom'),
        child_frame_id='camera_optical',
        transform=t['geometry_msgs/msg/Transform'](
            translation=t['geometry_msgs/msg/Vector3'](x=pose[0, 3], y=pose[1, 3], z=pose[2, 3]),
            rotation=t['geometry_msgs/msg/Quaternion'](x=q[0], y=q[1], z=q[2], w=q[3])))
    return store.serialize_cdr(t['tf2_msgs/msg/TFMessage'](transforms=[tr]), 'tf2_msgs/msg/TFMessage')


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    rng = np.random.default_rng(29)
    room = furnished_room(rng, num_objects=4)
    store = _typestore()
    path = tmp_path_factory.mktemp('recorded') / 'run'
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        tf = writer.add_connection('/tf', 'tf2_msgs/msg/TFMessage', typestore=store)
        pts = writer.add_connection('/camera/depth_registered/points', 'sensor_msgs/msg/PointCloud2', typestore=store)
        objs = writer.add_connection('/objects', 'vizion3d_ros/msg/ObjectMask3DArray', typestore=store)
        for k, pose in enumerate(orbit_poses(room, num_views=VIEWS)):
            view = render_view(room, pose)
            masks = frame_masks(room, view, rng, EXACT_MASKS)
            stamp = 100 * S + k * S // 5
            header = Header(frame_id='camera_optical')
            header.stamp.sec, header.stamp.nanosec = divmod(stamp, S)
            cam = view.camera
            cloud = xyzrgb_to_pointcloud2(depth_to_points_optical(view.depth, cam), view.color.reshape(-1, 3),
                                          header, width=cam.width, height=cam.height)
            flat, valid = masks.labels.reshape(-1), np.isfinite(view.depth.reshape(-1))
            objects = []
            for value, meta in sorted(masks.meta.items()):
                o = ObjectMask3D(header=header, id=int(value), class_id=int(meta['class_id']), label=meta['label'],
                                 confidence=float(meta['confidence']))
                o.point_indices = uint32_array(np.flatnonzero((flat == value) & valid))
                objects.append(o)
            msg = ObjectMask3DArray(header=header, cloud_width=cam.width, cloud_height=cam.height,
                                    image_width=cam.width, image_height=cam.height, model='truth', objects=objects)
            t = stamp + 5_000_000  # received a little after the stamp, pose first
            writer.write(tf, t, _tf_bytes(store, stamp, pose))
            writer.write(pts, t + 1, serialize_message(cloud))
            writer.write(objs, t + 2, serialize_message(msg))
    return path


def test_the_recorded_bag_is_read_as_placed_frames(bag):
    rec = RecordedMap(bag, 'odom')
    assert len(rec) == VIEWS and rec.unpaired == 0
    assert rec.objects_topic == '/objects' and rec.points_topic == '/camera/depth_registered/points'
    frames = list(rec)
    assert [f.stamp for f in frames] == rec.stamps and all(f.pose is not None for f in frames)
    assert all(f.objects.header.stamp == f.cloud.header.stamp for f in frames)
    assert header_of(serialize_message(frames[0].cloud)) == (frames[0].stamp, 'camera_optical')
    assert RecordedMap(bag, 'map').reasons[0] == "no tf between 'map' and 'camera_optical' in the bag"


def test_fuse_and_the_live_node_build_the_same_map_from_the_same_bag(ros, bag, tmp_path):
    offline = tmp_path / 'offline'
    params = ROOT / 'config' / 'vizion3d_map.yaml'
    run = subprocess.run(['vizion3d-fuse', '--bag', str(bag), '--map-params', str(params), '--out', str(offline)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f'{VIEWS} frames fused' in run.stdout

    node = MapNodeProcess(tmp_path / 'node.log')  # the defaults, which the yaml file holds
    client = MapClient()
    try:
        node.wait_for_log('map ready')
        player = subprocess.Popen(['vizion3d_player', '--bag', str(bag), '--rate', '4'], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (client.maps and client.maps[-1].frames_integrated >= VIEWS):
            client.spin_until(lambda: False, 0.2)
        out = player.communicate(timeout=60)[0]
        assert player.returncode == 0, out
        assert client.maps and client.maps[-1].frames_integrated == VIEWS, node.log()[-3000:]
        live = tmp_path / 'live'
        saved = client.call(SaveMap, '/vizion3d_map_node/save_map', SaveMap.Request(path=str(live)))
        assert saved.success, saved.message
    finally:
        client.node.destroy_node()
        assert node.stop() == 0, node.log()[-3000:]

    a, b = read_ply(offline / 'map.ply'), read_ply(live / 'map.ply')
    assert len(a) == len(b) > 1000

    def voxels(ply):
        xyz = np.stack([ply['x'], ply['y'], ply['z']], axis=1)
        order = np.lexsort(xyz.T)
        return xyz[order], ply['instance_id'][order], ply['class_id'][order]

    (pa, ia, ca), (pb, ib, cb) = voxels(a), voxels(b)
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(ca, cb)
    sa, sb = (json.loads((d / 'summary.json').read_text()) for d in (offline, live))
    assert [(o['id'], o['label'], o['points']) for o in sa['instances']] == \
        [(o['id'], o['label'], o['points']) for o in sb['instances']]
    assert len(sa['instances']) == 4
