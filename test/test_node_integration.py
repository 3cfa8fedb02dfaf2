"""The real vizion3d_node in its own process, over real DDS, with the real checkpoint and TUM frame."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from vizion3d_ros.ros.conversions import pointcloud2_to_arrays
from vizion3d_ros.tools.player import camera_info_msg

from node_harness import NO_TRANSFORM, Client, NodeProcess, full_mask

pytestmark = [pytest.mark.integration, pytest.mark.model]


@pytest.fixture(scope='module')
def node(ros, model_pt, tmp_path_factory):
    proc = NodeProcess(tmp_path_factory.mktemp('node') / 'node.log', model=str(model_pt), device='cpu')
    proc.wait_for_log(r'model .* loaded', timeout=120)
    yield proc
    code = proc.stop()
    assert code == 0, f'node did not shut down cleanly on SIGTERM (exit {code}):\n{proc.log()[-3000:]}'


@pytest.fixture(scope='module')
def client(node):
    c = Client()
    c.wait_matched()
    yield c
    c.close()


def test_tum_frame_end_to_end(client, node, tum_frame, tum_msgs):
    image, _, cloud, xyz = tum_msgs
    header = client.send(image, camera_info_msg(tum_frame, None), cloud)
    objects, annotated = client.result(header)

    assert objects.header.frame_id == 'camera_color_optical_frame' and objects.header.stamp == header.stamp
    layout = (objects.cloud_width, objects.cloud_height, objects.image_width, objects.image_height)
    assert layout == (640, 480, 640, 480)
    assert objects.model == 'yolov8n-seg-coco.pt'
    labels = [o.label for o in objects.objects]
    assert labels.count('chair') >= 2, labels
    conf = [o.confidence for o in objects.objects]
    assert conf == sorted(conf, reverse=True)
    assert len({o.id for o in objects.objects}) == len(objects.objects)

    cam = tum_frame.camera
    owner = np.zeros(len(xyz), int)
    for obj in objects.objects:
        idx = np.asarray(obj.point_indices, dtype=np.int64)
        assert len(idx) > 0 and idx.max() < len(xyz)
        assert not owner[idx].any(), 'a point was given to two objects'
        owner[idx] = obj.id
        # every returned point projects inside its object's mask (pinhole projection done here, independently)
        p = xyz[idx].astype(np.float64)
        u = np.floor(cam.fx * p[:, 0] / p[:, 2] + cam.cx + 0.5).astype(int)
        v = np.floor(cam.fy * p[:, 1] / p[:, 2] + cam.cy + 0.5).astype(int)
        assert full_mask(obj, 480, 640)[v, u].all()
        c = obj.centroid
        np.testing.assert_allclose([c.x, c.y, c.z], p.mean(axis=0), rtol=1e-5, atol=1e-5)
        assert obj.header.frame_id == 'camera_color_optical_frame'
    for chair in (o for o in objects.objects if o.label == 'chair'):
        assert len(chair.point_indices) > 2000
        assert 1.0 < chair.centroid.z < 4.0, 'TUM chairs stand ~2 m from the camera'
        assert chair.bbox_3d_size.x > 0.2 and chair.bbox_3d_size.y > 0.2  # chair-sized, metres

    out = pointcloud2_to_arrays(annotated)
    assert (annotated.width, annotated.height) == (640, 480) and len(out.xyz) == len(xyz)
    np.testing.assert_array_equal(out.xyz, xyz)  # NaNs included, same order
    rgb_in = tum_frame.color.reshape(-1, 3)
    np.testing.assert_array_equal(out.rgb[owner == 0], rgb_in[owner == 0])
    colours = {tuple(out.rgb[owner == obj.id][0]) for obj in objects.objects}
    assert len(colours) == len(objects.objects), 'each instance has its own colour'
    for obj in objects.objects:
        assert (out.rgb[owner == obj.id] == out.rgb[owner == obj.id][0]).all()


def test_bad_frames_are_dropped_with_reasons_and_the_next_frame_is_served(client, node, tum_frame, tum_msgs):
    image, _, cloud, xyz = tum_msgs
    info = camera_info_msg(tum_frame, None)

    truncated = copy.deepcopy(cloud)
    truncated.data = bytes(cloud.data)[:1000]
    client.send(image, info, truncated)
    node.wait_for_log(r'frame dropped \(bad_cloud.*point cloud data has 1000 bytes')

    odd = copy.deepcopy(image)
    odd.encoding = '32FC1'
    client.send(odd, info, cloud)
    node.wait_for_log(r"frame dropped \(bad_image.*unsupported image encoding '32FC1'")

    small_info = camera_info_msg(tum_frame, None)
    small_info.width, small_info.height = 320, 240
    client.send(image, small_info, cloud)
    node.wait_for_log(r'frame dropped \(camera_info_size_mismatch.*camera_info is for 320x240 images but the '
                      r'image is 640x480')

    zero_info = camera_info_msg(tum_frame, None)
    zero_info.k = [0.0] * 9
    zero_info.p = [0.0] * 12
    client.send(image, zero_info, cloud)
    node.wait_for_log(r'frame dropped \(bad_camera_info.*not a valid camera matrix')

    header = client.next_header()
    other = client.next_header(frame_id='lidar')
    other.stamp = header.stamp
    client.send(image, info, cloud, header=header, cloud_header=other)
    node.wait_for_log(rf"frame dropped \({NO_TRANSFORM}.*'lidar'")

    assert node.alive
    header = client.send(image, info, cloud)
    objects, annotated = client.result(header)
    assert [o.label for o in objects.objects].count('chair') >= 2
    assert annotated.width * annotated.height == len(xyz)


def test_frames_older_than_the_last_processed_one_are_dropped_as_out_of_order(client, node, tum_frame, tum_msgs):
    image, _, cloud, _ = tum_msgs
    info = camera_info_msg(tum_frame, None)
    processed = client.send(image, info, cloud)
    client.result(processed)
    old = client.next_header()
    old.stamp.sec = processed.stamp.sec - 1  # late, not a restarted source (see stamps.REWIND_S)
    old.stamp.nanosec = 500_000_000
    client.send(image, info, cloud, header=old)
    node.wait_for_log(r'frame dropped \(out_of_order.*older than the last processed frame')
    header = client.send(image, info, cloud)  # newer stamps are served again
    objects, _ = client.result(header)
    assert [o.label for o in objects.objects].count('chair') >= 2
