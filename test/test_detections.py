"""ObjectMask3DArray -> vision_msgs/Detection3DArray, and a clear failure where vision_msgs is missing.

The conversion runs on the real vision_msgs (built from ../shared/ros_src by ``make setup``); the node
publishing it over DDS is test_node_tf_vision.py. The missing-package path runs in a child process whose
imports cannot find vision_msgs, as on a ROS install without it.
"""
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import Header

from vizion3d_ros.msg import ObjectMask3D, ObjectMask3DArray
from vizion3d_ros.ros.detections import to_detection3d_array, vision_msgs_available

from ros_tools import require_ros_tools

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


WITHOUT_VISION_MSGS = textwrap.dedent('''
    import sys
    sys.modules['vision_msgs'] = None  # what an import finds where the package is not installed
    from test_detections import make_array
    from vizion3d_ros.ros.detections import to_detection3d_array, vision_msgs_available
    assert vision_msgs_available() is False
    try:
        to_detection3d_array(make_array())
    except ImportError as exc:
        print(exc)
    else:
        raise SystemExit('no ImportError')
''')


def test_conversion_without_vision_msgs_says_what_to_install():
    here = str(Path(__file__).resolve().parent)
    out = subprocess.run([sys.executable, '-c', WITHOUT_VISION_MSGS], capture_output=True, text=True, cwd=here,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'vision_msgs is not installed: install ros-<distro>-vision-msgs' in out.stdout


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
    require_ros_tools('vision_msgs')
    from vision_msgs.msg import Detection3DArray
    msg = make_array()
    out = to_detection3d_array(msg)
    assert isinstance(out, Detection3DArray)
    check_conversion(msg, out)
