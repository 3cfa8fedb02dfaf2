"""The map node's parts without DDS: pairing, poses from a topic, parameters, markers, the integrator."""
from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from map_harness import orbit_frames
from nav_msgs.msg import Odometry
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header

from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.msg import MapObject3D, ObjectMask3D, ObjectMask3DArray
from vizion3d_ros.ros.conversions import xyzrgb_to_pointcloud2
from vizion3d_ros.ros.drops import FrameRejectedError
from vizion3d_ros.ros.mapping.integrator import MapIntegrator
from vizion3d_ros.ros.mapping.pairing import StampPairer
from vizion3d_ros.ros.mapping.params import MAP_PARAMS, MapSettings
from vizion3d_ros.ros.mapping.poses import BadPoseError, FramePoser, rigid_matrix
from vizion3d_ros.ros.markers import ObjectMarkers
from vizion3d_ros.ros.messages import uint32_array

S = 1_000_000_000


def test_pairer_matches_by_exact_stamp_in_either_order_and_bounds_the_waiting():
    p = StampPairer(queue_size=2)
    assert p.add_objects(1, 'o1') is None
    assert p.add_cloud(1, 'c1') == (1, 'o1', 'c1')
    assert p.add_cloud(2, 'c2') is None and p.add_objects(2, 'o2') == (2, 'o2', 'c2')
    for k in range(3, 7):
        assert p.add_cloud(k, f'c{k}') is None
    assert p.waiting() == (0, 2) and p.pushed_out == 2  # c3, c4 pushed out
    assert p.add_objects(3, 'o3') is None and p.add_objects(6, 'o6') == (6, 'o6', 'c6')
    p.clear()
    assert p.waiting() == (0, 0)


def _pose_msg(cls, stamp_ns, xyz, quat, frame='odom'):
    msg = cls()
    msg.header = Header(frame_id=frame)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, S)
    pose = msg.pose.pose if cls is Odometry else msg.pose
    pose.position.x, pose.position.y, pose.position.z = xyz
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = quat
    return msg


def test_poses_from_a_topic_are_interpolated_composed_and_checked():
    extrinsic = np.eye(4)
    extrinsic[:3, 3] = [0, 0, 1]  # the cloud's frame is 1 m above the body along its z
    poser = FramePoser('odom', 'topic', cloud_to_pose=extrinsic)
    assert poser.resolve('cam', 5 * S).status == 'wait'  # nothing yet
    yaw90 = Rotation.from_euler('z', 90, degrees=True).as_quat()
    assert poser.add_pose_message(_pose_msg(PoseStamped, 0, (0, 0, 0), (0, 0, 0, 1))) is None
    assert poser.add_pose_message(_pose_msg(Odometry, S // 2, (2, 0, 0), yaw90)) is None
    mid = poser.resolve('cam', S // 4)
    assert mid.status == 'ok'
    assert np.allclose(mid.pose[:3, 3], [1, 0, 1])
    assert np.isclose(Rotation.from_matrix(mid.pose[:3, :3]).as_euler('zyx', degrees=True)[0], 45)
    assert poser.resolve('cam', S).status == 'wait'  # newer than the newest pose: it may still come
    assert 'frame' in poser.add_pose_message(_pose_msg(PoseStamped, S, (0, 0, 0), (0, 0, 0, 1), frame='map'))
    assert 'norm' in poser.add_pose_message(_pose_msg(PoseStamped, S, (0, 0, 0), (0, 0, 0, 2)))
    assert poser.add_pose_message(_pose_msg(PoseStamped, S, (float('nan'), 0, 0), (0, 0, 0, 1)))
    assert poser.add_pose_message(_pose_msg(PoseStamped, 2 * S, (0, 0, 0), (0, 0, 0, 1))) is None
    gap = poser.resolve('cam', 3 * S // 2)  # between 0.5 s and 2 s: a 1.5 s dropout (pose_max_gap 0.5)
    assert gap.status == 'drop' and gap.reason == 'no_pose'


def test_rigid_matrix_refuses_nan_and_non_rotations():
    pose = PoseStamped().pose
    pose.position.x, pose.orientation.w = 1.0, 1.0
    assert np.allclose(rigid_matrix(pose.position, pose.orientation)[:3, 3], [1, 0, 0])
    pose.orientation.w = 2.0
    with pytest.raises(BadPoseError, match='norm'):
        rigid_matrix(pose.position, pose.orientation)
    pose.orientation.w, pose.position.y = 1.0, float('inf')
    with pytest.raises(BadPoseError, match='non-finite'):
        rigid_matrix(pose.position, pose.orientation)


def test_map_parameters_are_validated_with_reasons():
    ok = MapSettings()
    assert MAP_PARAMS.validate(ok) is ok
    assert 'voxel_size' in MAP_PARAMS.check_value('voxel_size', 0.0)
    assert 'pose_source' in MAP_PARAMS.check_value('pose_source', 'gps')
    assert 'cloud_to_pose' in MAP_PARAMS.check_value('cloud_to_pose', '1 2 3')
    assert MAP_PARAMS.check_value('cloud_to_pose', [0.0, 0, 0, 0, 0, 0, 1]) is None
    assert 'world_frame' in MAP_PARAMS.check_value('world_frame', ' ')
    assert 'must be a int' in MAP_PARAMS.check_value('max_voxels', 1.5)
    desc = MAP_PARAMS.descriptor('map_radius')
    assert desc.floating_point_range[0].to_value == 100_000.0 and 'apply to the next frame' in desc.description


def test_map_markers_use_the_stable_ids():
    markers = ObjectMarkers(namespace='vizion3d_map', lifetime_s=0.0, stable_ids=True)

    def obj(i, size):
        o = MapObject3D(id=i, class_id=56, label='chair', point_count=10)
        o.bbox_3d_center.orientation.w = 1.0
        o.bbox_3d_size.x = o.bbox_3d_size.y = o.bbox_3d_size.z = size
        return o

    from vizion3d_ros.msg import MapObject3DArray
    out = markers.update(MapObject3DArray(header=Header(frame_id='odom'), objects=[obj(7, 0.5), obj(12, 0.4)]))
    assert sorted((m.ns, m.id) for m in out.markers) == [('vizion3d_map/boxes', 7), ('vizion3d_map/boxes', 12),
                                                          ('vizion3d_map/labels', 7), ('vizion3d_map/labels', 12)]
    assert {m.text for m in out.markers if m.text} == {'chair #7', 'chair #12'}
    out = markers.update(MapObject3DArray(header=Header(frame_id='odom'), objects=[obj(12, 0.4)]))
    assert sorted((m.ns, m.id) for m in out.markers if m.action == m.DELETE) == [('vizion3d_map/boxes', 7),
                                                                                ('vizion3d_map/labels', 7)]


@pytest.fixture(scope='module')
def room_frames():
    return orbit_frames(5, num_objects=3, num_views=4)[1]


def _messages(view, masks, stamp, person_of=None):
    header = Header(frame_id='camera_optical')
    header.stamp.sec, header.stamp.nanosec = divmod(stamp, S)
    cam = view.camera
    xyz = depth_to_points_optical(view.depth, cam)
    cloud = xyzrgb_to_pointcloud2(xyz, view.color.reshape(-1, 3), header, width=cam.width, height=cam.height)
    flat = masks.labels.reshape(-1)
    objs = []
    for value, meta in sorted(masks.meta.items()):
        label, cls = ('person', 0) if value == person_of else (meta['label'], meta['class_id'])
        o = ObjectMask3D(header=header, id=int(value), class_id=int(cls), label=label, confidence=0.9)
        o.point_indices = uint32_array(np.flatnonzero((flat == value) & np.isfinite(view.depth.reshape(-1))))
        objs.append(o)
    return ObjectMask3DArray(header=header, cloud_width=cam.width, cloud_height=cam.height, objects=objs), cloud


def test_integrator_keeps_dynamic_classes_out_of_the_map_and_tracks_them(room_frames):
    m = MapIntegrator(MapSettings())
    actor = max(room_frames[0][1].truth.values())  # one object plays a person in every frame

    def person(masks):
        return next(v for v, t in masks.truth.items() if t == actor)

    assert all(actor in masks.truth.values() for _, masks in room_frames)
    for k, (view, masks) in enumerate(room_frames):
        objects, cloud = _messages(view, masks, (k + 1) * S // 10, person_of=person(masks))
        msg = m.integrate((k + 1) * S // 10, objects, cloud, view.pose)
    dynamic = [o for o in msg.objects if o.state == MapObject3D.STATE_DYNAMIC]
    static = [o for o in msg.objects if o.state != MapObject3D.STATE_DYNAMIC]
    assert len(dynamic) == 1 and dynamic[0].label == 'person' and dynamic[0].frames_seen == len(room_frames)
    assert dynamic[0].id not in {o.id for o in static} and static
    assert all(o.label != 'person' for o in static)
    # none of the person's points are in the map: the map is the same as one built without the person at all
    bare = MapIntegrator(MapSettings(dynamic_classes=''))
    for k, (view, masks) in enumerate(room_frames):
        objects, cloud = _messages(view, masks, (k + 1) * S // 10)
        keep = [o for o in objects.objects if o.id != person(masks)]
        gone = np.concatenate([np.frombuffer(o.point_indices, np.uint32) for o in objects.objects
                               if o.id == person(masks)])
        xyz = depth_to_points_optical(view.depth, view.camera).reshape(-1, 3).copy()
        xyz[gone] = np.nan
        cloud = xyzrgb_to_pointcloud2(xyz, view.color.reshape(-1, 3), cloud.header, width=view.camera.width,
                                      height=view.camera.height)
        objects.objects = keep
        bare.integrate((k + 1) * S // 10, objects, cloud, view.pose)
    assert len(bare.fusion.map) == len(m.fusion.map)


def test_a_bad_frame_leaves_the_map_as_it_was(room_frames):
    m = MapIntegrator(MapSettings())
    view, masks = room_frames[0]
    objects, cloud = _messages(view, masks, S)
    before = m.integrate(S, objects, cloud, view.pose)
    bad, _ = _messages(*room_frames[1], 2 * S)
    bad.objects[0].point_indices = uint32_array(np.array([0, view.camera.width * view.camera.height]))
    with pytest.raises(FrameRejectedError) as exc:
        m.integrate(2 * S, bad, cloud, room_frames[1][0].pose)
    assert exc.value.reason == 'bad_objects'
    bad.cloud_width = 3
    with pytest.raises(FrameRejectedError, match='describe a 3x'):
        m.integrate(2 * S, bad, cloud, room_frames[1][0].pose)
    assert m.fusion.frames == 1 and len(m.fusion.map) == before.map_voxels


def test_map_radius_keeps_only_the_voxels_near_the_camera(room_frames):
    far = MapIntegrator(MapSettings())
    near = MapIntegrator(MapSettings(map_radius=2.0))
    for k in range(5):  # the radius pass runs every 5 frames: on the fifth
        view, masks = room_frames[k % len(room_frames)]
        objects, cloud = _messages(view, masks, (k + 1) * S // 10)
        far.integrate((k + 1) * S // 10, objects, cloud, view.pose)
        near.integrate((k + 1) * S // 10, objects, cloud, view.pose)
    camera = room_frames[4 % len(room_frames)][0].pose[:3, 3]
    d_near = np.linalg.norm(near.fusion.map.positions - camera, axis=1)
    d_far = np.linalg.norm(far.fusion.map.positions - camera, axis=1)
    assert d_near.max() <= 2.0 and d_far.max() > 2.0
    assert len(near.fusion.map) == int((d_far <= 2.0).sum())  # what was near is kept as it was


def test_warm_up_compiles_the_map_kernels_before_any_frame():
    from vizion3d_ros.core.fusion.extents import _extents
    from vizion3d_ros.core.fusion.voxel_map import _pieces
    from vizion3d_ros.ros.mapping.integrator import warm_up

    warm_up()
    assert _extents.dispatcher is not None and _pieces.dispatcher is not None
    assert all(len(k.dispatcher.signatures) == 1 for k in (_extents, _pieces))  # no second compile on a frame


def test_integration_stride_follows_the_point_spacing_and_thins_the_frame(room_frames):
    from vizion3d_ros.ros.mapping.integrator import integration_stride

    v, u = np.mgrid[0:48, 0:64]
    for spacing, voxel, expected in ((0.004, 0.02, 2), (0.0049, 0.02, 2), (0.006, 0.02, 1), (0.001, 0.02, 4)):
        xyz = np.stack([u * spacing, v * spacing, np.ones_like(u, float)], axis=-1).reshape(-1, 3)
        assert integration_stride(xyz, 64, 48, voxel, 0) == expected, spacing
    xyz = np.zeros((64 * 48, 3))
    assert integration_stride(xyz, 64 * 48, 1, 0.02, 3) == 1  # unorganised: every point
    assert integration_stride(xyz, 64, 48, 0.02, 3) == 3
    view, masks = room_frames[0]
    objects, cloud = _messages(view, masks, S)
    every = MapIntegrator(MapSettings())
    thin = MapIntegrator(MapSettings(integration_stride=2))
    full, half = every.integrate(S, objects, cloud, view.pose), thin.integrate(S, objects, cloud, view.pose)
    assert every.last_stride == 1 and thin.last_stride == 2
    assert 0.3 * full.map_voxels < half.map_voxels < full.map_voxels
    assert [o.label for o in half.objects] == [o.label for o in full.objects]
