"""Shared fixtures: real data from ../shared, DDS isolation per test run, process helpers."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('VIZION3D_SHARED', ROOT.parent / 'shared'))
TUM = SHARED / 'data' / 'rgbd' / 'tum_desk'
REDWOOD = SHARED / 'data' / 'rgbd' / 'redwood_livingroom'
MODEL_PT = SHARED / 'models' / 'yolov8n-seg-coco.pt'
MODEL_ONNX = SHARED / 'models' / 'yolov8n-seg-coco-int8-320.onnx'

# One DDS domain per test run, discovery on 127.0.0.1 only: parallel runs on one machine never see
# each other's nodes. Set before any rclpy import in this process and inherited by child processes.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f'{path} is missing: the test data lives in ../shared beside the repository')
    return path


@pytest.fixture(scope='session')
def tum_frame():
    """The real TUM RGB-D frame (colour, depth in metres, camera)."""
    from vizion3d_ros.core.io.rgbd import load_rgbd_folder
    return load_rgbd_folder(_require(TUM))


@pytest.fixture(scope='session')
def model_pt() -> Path:
    """The real COCO YOLOv8n-seg checkpoint."""
    return _require(MODEL_PT)


@pytest.fixture(scope='session')
def tum_segmentation(tum_frame, model_pt):
    """Real YOLO segmentation of the TUM frame (computed once per session)."""
    from vizion3d_ros.core.segmentation.ultralytics_backend import UltralyticsBackend
    return UltralyticsBackend(model_pt, device='cpu').segment(tum_frame.color)


@pytest.fixture(scope='session')
def _shm_segments_at_start() -> set[str]:
    from fastdds_profile import segment_names
    return segment_names()


@pytest.fixture(scope='module', autouse=True)
def _no_leftover_shm_segments(_shm_segments_at_start):
    """After each module, remove the Fast DDS segments that this run's dead processes left in /dev/shm.

    vizion3d_node leaves its segment behind when it exits (see fastdds_profile.remove_zombie_segments):
    with the large-data profile that is 128 MiB of RAM per node run. Segments that existed before the
    session, or whose owner still runs, are never touched.
    """
    yield
    from fastdds_profile import remove_zombie_segments, segment_names
    remove_zombie_segments(segment_names() - _shm_segments_at_start)


@pytest.fixture(scope='module')
def ros(request, tmp_path_factory):
    """rclpy initialised for one test module.

    A module that sets ``DDS_SHORT_HEARTBEAT = True`` gets Fast DDS's 0.2 s heartbeat (see
    fastdds_profile.py): many large reliable messages one after the other.
    """
    import rclpy
    from fastdds_profile import short_heartbeat

    if getattr(request.module, 'DDS_SHORT_HEARTBEAT', False):
        with short_heartbeat(tmp_path_factory.mktemp('fastdds')):
            rclpy.init()
            yield
            rclpy.shutdown()
    else:
        rclpy.init()
        yield
        rclpy.shutdown()


@pytest.fixture(scope='module')
def tum_msgs(tum_frame):
    """The TUM frame as ROS messages: image, camera_info, organised XYZRGB cloud, and its optical-frame xyz."""
    from vizion3d_ros.core.io.rgbd import depth_to_points_optical
    from vizion3d_ros.ros.conversions import rgb_to_image, xyzrgb_to_pointcloud2
    from vizion3d_ros.tools.player import camera_info_msg

    xyz = depth_to_points_optical(tum_frame.depth, tum_frame.camera)
    cloud = xyzrgb_to_pointcloud2(xyz, tum_frame.color.reshape(-1, 3), width=640, height=480)
    return rgb_to_image(tum_frame.color), camera_info_msg(tum_frame, None), cloud, xyz


@pytest.fixture(scope='module')
def valid():
    """The frame the hostile inputs derive from (hostile_inputs.ValidFrame)."""
    from hostile_inputs import load_valid_frame
    return load_valid_frame(_require(TUM))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
