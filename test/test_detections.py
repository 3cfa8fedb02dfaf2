"""ObjectMask3DArray -> vision_msgs/Detection3DArray, and a clear failure where vision_msgs is missing."""
import importlib.util
import sys
import types
from dataclasses import dataclass, field

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import Header

from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray
from vizion3d_ros.ros.detections import to_detection3d_array, vision_msgs_available

HAS_VISION_MSGS = importlib.util.find_spec('vision_msgs') is not None


def make_array():
    objs = [ObjectMask3D(id=k + 1, class_id=c, label=name, confidence=conf,
                         point_indices=np.arange(5, dtype=np.uint32),
                         centroid=Point(x=0.1 * k, y=0.2, z=1.5 + k),
                         bbox_3d_center=Pose(position=Point(x=0.1 * k, y=0.25, z=1.4 + k),
                                             orientation=Quaternion(x=0.0, y=0.0, z=0.6, w=0.8)),
                         bbox_3d_size=Vector3(x=0.1, y=0.2, z=0.3 + k))
            for k, (c, name, conf) in enumerate([(41, 'cup', 0.9), (0, 'person', 0.55)])]
    return ObjectMask3DArray(header=Header(frame_id='camera_optical', stamp=Time(sec=4, nanosec=5)), objects=objs)


def test_availability_matches_the_installation():
    assert vision_msgs_available() is HAS_VISION_MSGS


@pytest.mark.skipif(HAS_VISION_MSGS, reason='vision_msgs is installed here; the conversion test covers it')
def test_conversion_without_vision_msgs_says_what_to_install():
    with pytest.raises(ImportError, match='vision_msgs'):
        to_detection3d_array(make_array())


def check_conversion(msg, out):
    assert out.header.frame_id == 'camera_optical' and out.header.stamp.sec == 4
    assert len(out.detections) == 2
    for det, obj in zip(out.detections, msg.objects, strict=True):
        assert det.id == str(obj.id) and det.header.frame_id == 'camera_optical'
        c, s = det.bbox.center, det.bbox.size
        assert (c.position.x, c.position.y, c.position.z) == (obj.bbox_3d_center.position.x,
                                                              obj.bbox_3d_center.position.y,
                                                              obj.bbox_3d_center.position.z)
        assert (c.orientation.z, c.orientation.w) == (obj.bbox_3d_center.orientation.z,
                                                      obj.bbox_3d_center.orientation.w)
        assert (s.x, s.y, s.z) == (obj.bbox_3d_size.x, obj.bbox_3d_size.y, obj.bbox_3d_size.z)
        (hyp,) = det.results
        assert hyp.hypothesis.class_id == obj.label
        assert hyp.hypothesis.score == pytest.approx(obj.confidence)
        p = hyp.pose.pose.position
        assert (p.x, p.y, p.z) == (obj.centroid.x, obj.centroid.y, obj.centroid.z)


def test_conversion():
    # Skipped where vision_msgs is not installed (it is not among the PyPI ROS wheels this project uses);
    # test_conversion_field_names below then checks the mapping against stand-in types.
    pytest.importorskip('vision_msgs.msg')
    msg = make_array()
    check_conversion(msg, to_detection3d_array(msg))


def stand_in_vision_msgs():
    """Types with exactly the fields of vision_msgs 4.x (ROS 2 Humble and later): a wrong name raises."""
    kw = dict(kw_only=True)

    @dataclass(**kw)
    class ObjectHypothesis:
        class_id: str = ''
        score: float = 0.0

    @dataclass(**kw)
    class ObjectHypothesisWithPose:
        hypothesis: ObjectHypothesis = field(default_factory=ObjectHypothesis)
        pose: object = None

    @dataclass(**kw)
    class BoundingBox3D:
        center: object = None
        size: object = None

    @dataclass(**kw)
    class Detection3D:
        header: object = None
        results: list = field(default_factory=list)
        bbox: BoundingBox3D = field(default_factory=BoundingBox3D)
        id: str = ''

    @dataclass(**kw)
    class Detection3DArray:
        header: object = None
        detections: list = field(default_factory=list)

    mod = types.ModuleType('vision_msgs.msg')
    for cls in (ObjectHypothesis, ObjectHypothesisWithPose, BoundingBox3D, Detection3D, Detection3DArray):
        setattr(mod, cls.__name__, cls)
    pkg = types.ModuleType('vision_msgs')
    pkg.msg = mod
    return pkg, mod


@pytest.mark.skipif(HAS_VISION_MSGS, reason='the real vision_msgs is installed: test_conversion covers it')
def test_conversion_field_names(monkeypatch):
    pkg, mod = stand_in_vision_msgs()
    monkeypatch.setitem(sys.modules, 'vision_msgs', pkg)
    monkeypatch.setitem(sys.modules, 'vision_msgs.msg', mod)
    msg = make_array()
    out = to_detection3d_array(msg)
    assert isinstance(out, mod.Detection3DArray)
    check_conversion(msg, out)
