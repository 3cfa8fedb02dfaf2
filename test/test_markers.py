"""RViz markers of ObjectMask3DArray: oriented box wireframes, labels, bounded ids and deletions."""
import dataclasses
import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from vizion3d_ros.core.render.colors import distinct_color
from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray
from vizion3d_ros.ros import messages
from vizion3d_ros.ros.markers import ObjectMarkers, box_edge_points


def axis_angle(axis, angle):
    """(quaternion xyzw, rotation matrix by Rodrigues' formula): two independent descriptions."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    q = (*(k * math.sin(angle / 2)), math.cos(angle / 2))
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx
    return q, rot


def make_obj(class_id=41, label='cup', conf=0.87, center=(1.0, 2.0, 3.0), size=(0.2, 0.4, 0.6),
             quat=(0.0, 0.0, 0.0, 1.0), centroid=None, n_points=10):
    centroid = center if centroid is None else centroid
    return ObjectMask3D(
        class_id=class_id, label=label, confidence=conf,
        point_indices=np.arange(n_points, dtype=np.uint32),
        centroid=Point(x=float(centroid[0]), y=float(centroid[1]), z=float(centroid[2])),
        bbox_3d_center=Pose(position=Point(x=float(center[0]), y=float(center[1]), z=float(center[2])),
                            orientation=Quaternion(x=float(quat[0]), y=float(quat[1]), z=float(quat[2]),
                                                   w=float(quat[3]))),
        bbox_3d_size=Vector3(x=float(size[0]), y=float(size[1]), z=float(size[2])))


def make_array(objects, frame='base_link', sec=12, nanosec=345):
    return ObjectMask3DArray(header=Header(frame_id=frame, stamp=Time(sec=sec, nanosec=nanosec)), objects=objects)


def by_ns(markers, ns, action=Marker.ADD):
    return {m.id: m for m in markers.markers if m.ns == ns and m.action == action}


def xyz(points):
    return np.array([[p.x, p.y, p.z] for p in points])


def test_rotated_box_wireframe_has_the_box_geometry():
    q, rot = axis_angle((1.0, 2.0, -0.5), 0.7)
    center, size = np.array([0.5, -1.0, 2.0]), np.array([0.3, 0.5, 1.1])
    arr = ObjectMarkers().update(make_array([make_obj(center=center, size=size, quat=q)]))
    box = by_ns(arr, 'vizion3d/boxes')[0]
    assert box.type == Marker.LINE_LIST and box.scale.x > 0
    pts = xyz(box.points)
    assert pts.shape == (24, 3)
    # In the box's own axes every vertex sits at +-size/2 on each axis.
    local = (pts - center) @ rot
    np.testing.assert_allclose(np.abs(local), np.broadcast_to(size / 2, local.shape), atol=1e-9)
    corners = np.unique(np.round(pts, 9), axis=0)
    assert len(corners) == 8
    np.testing.assert_allclose(np.linalg.norm(corners - center, axis=1), np.linalg.norm(size / 2), atol=1e-9)
    # 12 edges, four along each box axis, each as long as the size on that axis.
    edges = pts[1::2] - pts[0::2]
    lengths = np.linalg.norm(edges, axis=1)
    np.testing.assert_allclose(np.sort(lengths), np.sort(np.repeat(size, 4)), atol=1e-9)
    along = np.abs((edges / lengths[:, None]) @ rot)  # |cos| to each box axis
    np.testing.assert_allclose(along.max(axis=1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(np.bincount(along.argmax(axis=1), minlength=3), [4, 4, 4])


def test_header_ids_lifetime_text_and_namespaces():
    objs = [make_obj(label='cup', conf=0.876), make_obj(class_id=0, label='person', conf=0.5, center=(0, 0, 1))]
    arr = ObjectMarkers(namespace='cam1', lifetime_s=0.25, text_height=0.1).update(make_array(objs))
    assert {(m.ns, m.id) for m in arr.markers} == {('cam1/boxes', 0), ('cam1/boxes', 1),
                                                   ('cam1/labels', 0), ('cam1/labels', 1)}
    for m in arr.markers:
        assert m.header.frame_id == 'base_link' and (m.header.stamp.sec, m.header.stamp.nanosec) == (12, 345)
        assert (m.lifetime.sec, m.lifetime.nanosec) == (0, 250_000_000)
        assert m.action == Marker.ADD
    labels = by_ns(arr, 'cam1/labels')
    assert labels[0].type == Marker.TEXT_VIEW_FACING
    assert [labels[0].text, labels[1].text] == ['cup 0.88', 'person 0.50']
    assert labels[0].scale.z == pytest.approx(0.1)


@pytest.mark.parametrize('frame, up', [('base_link', np.array([0, 0, 1.0])),
                                       ('camera_color_optical_frame', np.array([0, -1.0, 0]))])
def test_label_sits_just_above_the_box(frame, up):
    center, size = np.array([1.0, 2.0, 3.0]), np.array([0.2, 0.4, 0.6])
    arr = ObjectMarkers(text_height=0.08).update(make_array([make_obj(center=center, size=size)], frame=frame))
    p = by_ns(arr, 'vizion3d/labels')[0].pose.position
    offset = np.array([p.x, p.y, p.z]) - center
    top = float(np.abs(up) @ size) / 2  # half the box's height along `up`
    assert top < float(offset @ up) <= top + 0.2
    np.testing.assert_allclose(offset - (offset @ up) * up, 0.0, atol=1e-9)  # straight above the centre


def test_vanished_objects_are_deleted_once_and_ids_stay_bounded():
    om = ObjectMarkers()
    om.update(make_array([make_obj(), make_obj(), make_obj()]))
    arr = om.update(make_array([make_obj()]))
    deleted = {(m.ns, m.id) for m in arr.markers if m.action == Marker.DELETE}
    assert deleted == {('vizion3d/boxes', 1), ('vizion3d/boxes', 2), ('vizion3d/labels', 1), ('vizion3d/labels', 2)}
    assert set(by_ns(arr, 'vizion3d/boxes')) == {0}
    arr = om.update(make_array([make_obj()]))
    assert not [m for m in arr.markers if m.action != Marker.ADD]
    ids = set()
    for n in [4, 2, 5, 1, 3] * 4:
        ids |= {m.id for m in om.update(make_array([make_obj() for _ in range(n)])).markers}
    assert ids == set(range(5))


def test_colour_is_per_class_and_stable_across_frames():
    om = ObjectMarkers()
    a = om.update(make_array([make_obj(class_id=41), make_obj(class_id=0)]))
    b = om.update(make_array([make_obj(class_id=0), make_obj(class_id=56), make_obj(class_id=41)]))

    def rgba(m):
        return (m.color.r, m.color.g, m.color.b, m.color.a)

    cup_a, cup_b = by_ns(a, 'vizion3d/boxes')[0], by_ns(b, 'vizion3d/boxes')[2]
    assert rgba(cup_a) == rgba(cup_b) == pytest.approx((*np.array(distinct_color(41)) / 255, 1.0))
    assert rgba(by_ns(a, 'vizion3d/boxes')[1]) == rgba(by_ns(b, 'vizion3d/boxes')[0])
    assert rgba(by_ns(a, 'vizion3d/labels')[0]) == rgba(cup_a)
    assert len({rgba(m) for m in by_ns(b, 'vizion3d/boxes').values()}) == 3


def test_degenerate_boxes_keep_a_label_when_the_centroid_is_known():
    nan = float('nan')
    objs = [make_obj(size=(0, 0, 0), centroid=(1, 1, 1)),           # a single point
            make_obj(size=(nan, 0.1, 0.1), centroid=(2, 2, 2)),
            make_obj(quat=(nan, 0, 0, 1), centroid=(3, 3, 3)),
            make_obj(center=(nan, 0, 0), centroid=(nan, nan, nan)),  # nothing finite: no marker at all
            make_obj(size=(0, 0, 0), centroid=(0, 0, 0), n_points=0),  # no points: nowhere to put it
            make_obj(size=(0.3, 0.0, 0.2), quat=(0, 0, 0, 0))]        # flat box, unset orientation
    arr = ObjectMarkers().update(make_array(objs))
    assert set(by_ns(arr, 'vizion3d/boxes')) == {5}
    labels = by_ns(arr, 'vizion3d/labels')
    assert set(labels) == {0, 1, 2, 5}
    p = labels[2].pose.position
    assert (p.x, p.y) == (3, 3) and p.z > 3
    flat = xyz(by_ns(arr, 'vizion3d/boxes')[5].points)
    np.testing.assert_allclose(np.ptp(flat, axis=0), [0.3, 0.0, 0.2], atol=1e-12)  # identity orientation


def test_a_box_that_turns_degenerate_is_deleted_but_its_label_stays():
    om = ObjectMarkers()
    om.update(make_array([make_obj()]))
    arr = om.update(make_array([make_obj(size=(0, 0, 0))]))
    assert [(m.ns, m.id) for m in arr.markers if m.action == Marker.DELETE] == [('vizion3d/boxes', 0)]
    assert set(by_ns(arr, 'vizion3d/labels')) == {0}


def test_clear_is_one_deleteall_and_forgets_the_shown_ids():
    om = ObjectMarkers()
    om.update(make_array([make_obj(), make_obj()]))
    header = Header(frame_id='base_link', stamp=Time(sec=3))
    cleared = om.clear(header)
    assert len(cleared.markers) == 1
    assert cleared.markers[0].action == Marker.DELETEALL and cleared.markers[0].header.stamp.sec == 3
    arr = om.update(make_array([]))
    assert arr.markers == []


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        ObjectMarkers(text_height=0)
    with pytest.raises(ValueError):
        ObjectMarkers(lifetime_s=-1)


def test_box_edge_points_of_a_stack_are_those_of_each_box():
    rng = np.random.default_rng(3)
    n = 50
    centers, sizes = rng.normal(size=(n, 3)) * 5, rng.random((n, 3))
    rots = np.stack([axis_angle(rng.normal(size=3), rng.uniform(-4, 4))[1] for _ in range(n)])
    stacked = box_edge_points(centers, rots, sizes)
    assert stacked.shape == (n, 24, 3)
    for k in range(n):  # bit for bit: the markers of a frame are built from one stacked call
        assert stacked[k].tobytes() == box_edge_points(centers[k], rots[k], sizes[k]).tobytes()
    assert box_edge_points(np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros((0, 3))).shape == (0, 24, 3)


def _random_objects(rng, n):
    objs = []
    for _ in range(n):
        q, _ = axis_angle(rng.normal(size=3), rng.uniform(-4, 4))
        objs.append(make_obj(class_id=int(rng.integers(0, 80)), center=rng.normal(size=3), size=rng.random(3), quat=q))
    return objs


def test_markers_are_the_same_through_both_fill_paths_and_serialise(monkeypatch):
    objs = _random_objects(np.random.default_rng(4), 6) + [make_obj(size=(0, 0, 0)), make_obj(quat=(0, 0, 0, 0))]
    frame = make_array(objs)
    fast = ObjectMarkers(lifetime_s=0.3).update(frame)
    real = messages._layout  # now through the constructors, as with ROS_PYTHON_CHECK_FIELDS=1
    monkeypatch.setattr(messages, '_layout', lambda cls: dataclasses.replace(real(cls), direct=False))
    slow = ObjectMarkers(lifetime_s=0.3).update(frame)
    assert fast == slow and len(fast.markers) == 15

    def round_trip(arr):
        return deserialize_message(serialize_message(arr), MarkerArray)

    assert round_trip(fast) == round_trip(slow)
    box = by_ns(fast, 'vizion3d/boxes')[0]
    assert all(type(v) is float for p in box.points for v in (p.x, p.y, p.z))
    assert box.pose == Pose() and box.scale == Vector3(x=0.01) and box.text == '' and box.colors == []


def test_markers_do_not_share_what_they_carry():
    arr = ObjectMarkers().update(make_array([make_obj(), make_obj(center=(0, 0, 1))]))
    subs = [getattr(m, f) for m in arr.markers for f in ('pose', 'scale', 'color', 'lifetime', 'points')]
    subs += [m.pose.position for m in arr.markers] + [p for m in arr.markers for p in m.points]
    assert len({id(s) for s in subs}) == len(subs)
    arr.markers[0].color.r = 0.5
    assert arr.markers[1].color.r != 0.5
