"""The managed node over real DDS: lifecycle transitions, parameters at run time, frames, QoS events.

Every test talks to the real vizion3d_node process through its lifecycle and parameter services
(lifecycle_msgs ChangeState/GetState, rcl_interfaces SetParameters) and its topics.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from visualization_msgs.msg import Marker

from vizion3d_ros.msg import ObjectMask3DArray
from vizion3d_ros.ros.conversions import xyzrgb_to_pointcloud2
from vizion3d_ros.tools.player import camera_info_msg

from node_harness import NO_TRANSFORM, Client, Lifecycle, NodeProcess, full_mask, stamp_ns, values

pytestmark = [pytest.mark.integration, pytest.mark.model]

# cloud_to_camera of the 'lidar' frame: x forward, y left, z up (REP 103 body axes), placed at
# (0.5, -0.25, 0.125) in the camera optical frame (x right, y down, z forward).
LIDAR_R = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])  # camera <- lidar rotation
LIDAR_T = np.array([0.5, -0.25, 0.125])
LIDAR_EXTRINSIC = [0.5, -0.25, 0.125, 0.5, -0.5, 0.5, 0.5]  # x y z qx qy qz qw of LIDAR_R, LIDAR_T


def _start(tmp_path_factory, namespace: str, **params) -> NodeProcess:
    return NodeProcess(tmp_path_factory.mktemp(namespace.strip('/')) / 'node.log', namespace=namespace,
                       device='cpu', **params)


def _stop(proc: NodeProcess) -> None:
    code = proc.stop()
    assert code == 0, f'node did not shut down cleanly on SIGTERM (exit {code}):\n{proc.log()[-3000:]}'


def _labels(objects: ObjectMask3DArray) -> list[str]:
    return [o.label for o in objects.objects]


# ----------------------------------------------------------------------------- transitions

def test_lifecycle_transitions_over_change_state(ros, tmp_path_factory, model_pt, tum_msgs):
    image, info, cloud, _ = tum_msgs
    proc = _start(tmp_path_factory, '/lc', model=str(model_pt), autostart='false')
    client = Client('lc_client', namespace='/lc')
    lc = Lifecycle(client)
    try:
        assert lc.state() == 'unconfigured'
        assert client.node.count_publishers('objects') == 0
        # /diagnostics reports in every state
        client.wait_status(lambda st: values(st)['state'] == 'unconfigured')

        assert lc.transition('configure')
        assert lc.state() == 'inactive'
        assert client.spin_until(lambda: client.node.count_publishers('objects') > 0, 60), 'no objects publisher'
        while_inactive = client.send(image, info, cloud)  # nobody subscribes: must never produce output

        assert lc.transition('activate')
        assert lc.state() == 'active'
        client.wait_matched()
        header = client.send(image, info, cloud)
        objects, _ = client.result(header)
        assert _labels(objects).count('chair') >= 2
        boxes = _wait_markers(client, lambda m: m.action == Marker.ADD and m.type == Marker.LINE_LIST
                              and m.header.stamp == header.stamp)
        assert len(boxes) == len(objects.objects) and all(len(m.points) == 24 for m in boxes)
        texts = _wait_markers(client, lambda m: m.type == Marker.TEXT_VIEW_FACING and m.header.stamp == header.stamp)
        assert sorted(m.text.split()[0] for m in texts) == sorted(_labels(objects))
        status = client.wait_status(lambda st: int(values(st).get('frames_processed', 0)) >= 1)
        assert values(status)['state'] == 'active' and values(status)['model'] == model_pt.name

        assert lc.transition('deactivate')
        assert lc.state() == 'inactive'
        client.wait_unsubscribed()
        proc.wait_for_log(r'deactivated: model released')
        _wait_markers(client, lambda m: m.action == Marker.DELETEALL)  # deactivating clears RViz
        client.wait_status(lambda st: values(st)['state'] == 'inactive')
        while_deactivated = client.send(image, info, cloud)

        assert lc.transition('activate')
        client.wait_matched()
        objects, _ = client.result(client.send(image, info, cloud))
        assert _labels(objects).count('chair') >= 2
        assert stamp_ns(while_inactive) not in client.objects
        assert stamp_ns(while_deactivated) not in client.objects

        assert not lc.transition('cleanup'), 'cleanup is not a transition of an active node'
        assert lc.transition('deactivate') and lc.transition('cleanup')
        assert lc.state() == 'unconfigured'
        assert client.spin_until(lambda: client.node.count_publishers('objects') == 0, 60), \
            'cleanup left the objects publisher'

        assert lc.transition('configure') and lc.transition('activate')
        client.wait_matched()
        objects, _ = client.result(client.send(image, info, cloud))
        assert _labels(objects).count('chair') >= 2
        assert proc.alive
    finally:
        client.close()
        _stop(proc)


# ----------------------------------------------------------------------------- models

def test_missing_model_leaves_the_node_inactive_and_a_good_model_recovers_it(ros, tmp_path, tmp_path_factory,
                                                                             model_pt, tum_msgs):
    image, info, cloud, _ = tum_msgs
    missing = tmp_path / 'no_such_model.pt'
    proc = _start(tmp_path_factory, '/nomodel', model=str(missing))
    client = Client('nomodel_client', namespace='/nomodel')
    lc = Lifecycle(client)
    try:
        m = proc.wait_for_log(r'cannot activate: (no segmentation model: .*)', timeout=60)
        assert 'no_such_model.pt' in m.group(1) and 'does not exist' in m.group(1) and 'model:=' in m.group(1)
        assert lc.state() == 'inactive' and proc.alive
        status = client.wait_status(lambda st: st.level == DiagnosticStatus.ERROR)
        assert 'no segmentation model' in status.message and 'no_such_model.pt' in status.message
        assert values(status)['state'] == 'inactive'

        assert [r.successful for r in lc.set(model=str(model_pt))] == [True]
        lc.wait_for_state('active')  # autostart retries the failed activation with the new model
        client.wait_matched()
        objects, _ = client.result(client.send(image, info, cloud))
        assert _labels(objects).count('chair') >= 2
        status = client.wait_status(lambda st: values(st)['state'] == 'active')
        assert status.level != DiagnosticStatus.ERROR and values(status)['model'] == model_pt.name
    finally:
        client.close()
        _stop(proc)


def test_corrupt_model_fails_activation_and_change_state_recovers(ros, tmp_path, tmp_path_factory, model_pt, tum_msgs):
    image, info, cloud, _ = tum_msgs
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    proc = _start(tmp_path_factory, '/corrupt', model=str(corrupt), autostart='false')
    client = Client('corrupt_client', namespace='/corrupt')
    lc = Lifecycle(client)
    try:
        assert lc.transition('configure')
        assert not lc.transition('activate')
        m = proc.wait_for_log(r'cannot activate: (could not load model .*)')
        assert 'corrupt.pt' in m.group(1)
        assert lc.state() == 'inactive' and proc.alive

        assert [r.successful for r in lc.set(model=str(model_pt))] == [True]
        assert lc.state() == 'inactive', 'without autostart only ChangeState activates'
        assert lc.transition('activate')
        client.wait_matched()
        objects, _ = client.result(client.send(image, info, cloud))
        assert _labels(objects).count('chair') >= 2
    finally:
        client.close()
        _stop(proc)


# ----------------------------------------------------------------------------- parameters and frames

@pytest.fixture(scope='module')
def rt_node(ros, tmp_path_factory, model_pt):
    proc = _start(tmp_path_factory, '/rt', model=str(model_pt))
    proc.wait_for_log(r'model .* loaded', timeout=120)
    yield proc
    _stop(proc)


@pytest.fixture(scope='module')
def rt(rt_node):
    client = Client('rt_client', namespace='/rt')
    client.wait_matched()
    yield client, Lifecycle(client)
    client.close()


@pytest.mark.parametrize('params, reason', [
    ({'lift_mode': 'bogus'}, r'lift_mode must be one of visible, exclusive, naive'),
    ({'classes': 'chair,unicorn'}, r"unknown class 'unicorn'"),
    ({'classes': '999'}, r'no class id 999'),
    ({'cloud_to_camera': '1 2 3'}, r'expected 7 numbers .* or 16 .* got 3'),
    ({'cloud_to_camera': [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}, r'quaternion .* has no rotation'),
    ({'device': 'gpu'}, r'device must be'),
    ({'intrinsics_source': 'R'}, r'intrinsics_source must be one of auto, K, P'),
    ({'conf_threshold': 1.5}, r'out of range'),
    ({'autostart': False}, r'read-only|read only'),
])
def test_bad_parameter_values_are_rejected_with_a_reason(rt, params, reason):
    import re
    _, lc = rt
    (result,) = lc.set(**params)
    assert not result.successful
    assert re.search(reason, result.reason), result.reason


def test_runtime_parameters_apply_to_the_next_frame(rt, rt_node, tum_msgs):
    client, lc = rt
    image, info, cloud, _ = tum_msgs
    assert _labels(client.result(client.send(image, info, cloud))[0]).count('chair') >= 2
    try:
        assert [r.successful for r in lc.set(conf_threshold=0.95)] == [True]
        objects, _ = client.result(client.send(image, info, cloud))
        assert len(objects.objects) == 0, [(o.label, o.confidence) for o in objects.objects]

        assert [r.successful for r in lc.set(conf_threshold=0.25, classes='chair', min_points=5000)] == [True] * 3
        objects, _ = client.result(client.send(image, info, cloud))
        assert set(_labels(objects)) == {'chair'}
        assert all(len(o.point_indices) >= 5000 for o in objects.objects)
    finally:
        assert all(r.successful for r in lc.set(conf_threshold=0.25, classes='', min_points=1))
    objects, _ = client.result(client.send(image, info, cloud))
    assert len(set(_labels(objects))) > 1


def test_a_cloud_in_another_frame_is_moved_with_cloud_to_camera(rt, rt_node, tum_msgs):
    client, lc = rt
    image, info, cloud, xyz = tum_msgs
    # the same points expressed in the lidar frame: p_lidar = R^T (p_camera - t)
    xyz_lidar = ((xyz.astype(np.float64) - LIDAR_T) @ LIDAR_R).astype(np.float32)
    lidar_cloud = xyzrgb_to_pointcloud2(xyz_lidar, np.asarray(cloud_rgb(cloud)), width=640, height=480)

    header = client.send(image, info, cloud)
    in_camera, _ = client.result(header)
    client.send(image, info, lidar_cloud, *_camera_and_lidar_headers(client))
    rt_node.wait_for_log(rf"frame dropped \({NO_TRANSFORM}.*'lidar'.*cloud_to_camera")
    client.wait_status(lambda st: int(values(st).get(f'dropped/{NO_TRANSFORM}', 0)) >= 1)

    assert [r.successful for r in lc.set(cloud_to_camera=LIDAR_EXTRINSIC)] == [True]
    try:
        in_lidar, annotated = client.result(client.send(image, info, lidar_cloud,
                                                        *_camera_and_lidar_headers(client)))
        assert in_lidar.header.frame_id == 'lidar' and annotated.header.frame_id == 'lidar'
        assert _labels(in_lidar) == _labels(in_camera)
        for a, b in zip(in_camera.objects, in_lidar.objects):
            np.testing.assert_array_equal(a.point_indices, b.point_indices)
            idx = np.asarray(b.point_indices, dtype=np.int64)
            np.testing.assert_allclose([b.centroid.x, b.centroid.y, b.centroid.z],
                                       xyz_lidar[idx].astype(np.float64).mean(axis=0), atol=1e-4)
            assert b.header.frame_id == 'lidar'
        # the extrinsic only applies to clouds in another frame: a camera-frame cloud is unchanged
        again, _ = client.result(client.send(image, info, cloud))
        for a, b in zip(in_camera.objects, again.objects):
            np.testing.assert_array_equal(a.point_indices, b.point_indices)
    finally:
        assert all(r.successful for r in lc.set(cloud_to_camera=''))


def _wait_markers(client: Client, predicate, timeout: float = 60.0) -> list[Marker]:
    def found():
        return [m for arr in client.markers for m in arr.markers if predicate(m)]
    assert client.spin_until(lambda: bool(found()), timeout), 'no such marker on markers'
    return found()


def _camera_and_lidar_headers(client: Client):
    camera = client.next_header()
    lidar = client.next_header(frame_id='lidar')
    lidar.stamp = camera.stamp
    return camera, lidar


def cloud_rgb(cloud):
    from vizion3d_ros.ros.conversions import pointcloud2_to_arrays
    return pointcloud2_to_arrays(cloud).rgb


def test_intrinsics_from_p_binning_and_size_checks(rt, rt_node, tum_msgs, tum_frame):
    client, _ = rt
    image, info, cloud, _ = tum_msgs
    # a 2x-binned camera_info (sensor 1280x960) describes the 640x480 image exactly
    binned = camera_info_msg(tum_frame, None)
    binned.width, binned.height, binned.binning_x, binned.binning_y = 1280, 960, 2, 2
    binned.k = [v * 2 if i in (0, 4) else v for i, v in enumerate(info.k)]
    binned.k[2], binned.k[5] = info.k[2] * 2 + 0.5, info.k[5] * 2 + 0.5
    binned.p = [binned.k[0], 0.0, binned.k[2], 0.0, 0.0, binned.k[4], binned.k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    plain, _ = client.result(client.send(image, info, cloud))
    objects, _ = client.result(client.send(image, binned, cloud))
    assert _labels(objects) == _labels(plain)
    for a, b in zip(plain.objects, objects.objects):
        np.testing.assert_array_equal(a.point_indices, b.point_indices)

    no_binning = camera_info_msg(tum_frame, None)
    no_binning.width, no_binning.height = 1280, 960
    client.send(image, no_binning, cloud)
    rt_node.wait_for_log(r'frame dropped \(camera_info_size_mismatch.*1280x960 images but the image is 640x480')
    client.wait_status(lambda st: int(values(st).get('dropped/camera_info_size_mismatch', 0)) >= 1)
    nan_p = camera_info_msg(tum_frame, None)
    nan_p.p = [float('nan')] * 12
    nan_p.k = [float('inf')] + list(info.k[1:])
    client.send(image, nan_p, cloud)
    rt_node.wait_for_log(r'frame dropped \(bad_camera_info.*K is not a valid camera matrix')


def test_debug_image_and_pipeline_diagnostics(rt, rt_node, tum_msgs, tum_frame):
    client, lc = rt
    image, info, cloud, _ = tum_msgs
    before = client.send(image, info, cloud)
    client.result(before)
    assert [r.successful for r in lc.set(publish_debug_image=True)] == [True]
    try:
        header = client.send(image, info, cloud)
        objects, _ = client.result(header)
        assert client.spin_until(lambda: stamp_ns(header) in client.debug_images, 60), 'no debug_image'
        assert stamp_ns(before) not in client.debug_images, 'debug_image is published by default'
        debug = client.debug_images[stamp_ns(header)]
        assert (debug.width, debug.height, debug.encoding) == (640, 480, 'rgb8')
        assert debug.header.frame_id == header.frame_id
        drawn = np.frombuffer(debug.data, np.uint8).reshape(480, debug.step)[:, :640 * 3].reshape(480, 640, 3)
        masks = np.zeros((480, 640), bool)
        near = np.zeros((480, 640), bool)  # boxes with their outline and label, generously
        for o in objects.objects:
            masks |= full_mask(o, 480, 640)
            x1, y1, x2, y2 = (int(v) for v in o.bbox_2d)
            near[max(y1 - 30, 0):y2 + 4, max(x1 - 4, 0):x2 + 250] = True
        diff = np.abs(drawn.astype(int) - tum_frame.color.astype(int)).sum(axis=2)
        assert (diff[masks] > 0).mean() > 0.9, 'masks are not tinted'
        assert (diff[~(masks | near)] == 0).all(), 'pixels away from every object changed'
    finally:
        assert all(r.successful for r in lc.set(publish_debug_image=False))
    status = client.wait_status(lambda st: 'latency_ms/end_to_end' in values(st))
    v = values(status)
    for key in ('latency_ms/inference', 'latency_ms/lifting', 'latency_ms/conversion', 'latency_ms/publishing',
                'input_rate_hz/rt/image', 'input_rate_hz/rt/points', 'output_rate_hz', 'dropped_total'):
        assert key in v, (key, v)
    assert v['state'] == 'active' and v['device'] == 'cpu'


def test_incompatible_qos_is_logged_for_publishers(rt, rt_node):
    # the inputs' side (a best-effort camera while input_reliability is reliable) is in test_node_inputs.py
    client, _ = rt
    latched = client.node.create_subscription(
        ObjectMask3DArray, 'objects', lambda _m: None,
        QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    try:
        m = rt_node.wait_for_log(r'incompatible QoS on publisher (\S+): .*DURABILITY')
        assert m.group(1) == '/rt/objects'
        status = client.wait_status(lambda st: 'incompatible_qos/rt/objects' in values(st))
        assert int(values(status)['incompatible_qos/rt/objects']) >= 1
    finally:
        client.node.destroy_subscription(latched)


def test_stale_frames_are_dropped_against_the_node_clock(rt, rt_node, tum_msgs):
    # last in this module: it processes a frame stamped now, after which the harness's synthetic
    # (1970) stamps would be out of order
    client, lc = rt
    image, info, cloud, _ = tum_msgs
    assert [r.successful for r in lc.set(max_frame_age=30.0)] == [True]
    client.send(image, info, cloud)  # stamped in 1970
    rt_node.wait_for_log(r'frame dropped \(stale.*max_frame_age 30 s')
    fresh = client.next_header()
    fresh.stamp = client.node.get_clock().now().to_msg()
    objects, _ = client.result(client.send(image, info, cloud, header=fresh))
    assert _labels(objects).count('chair') >= 2


# ----------------------------------------------------------------------------- in-process: memory

def test_deactivate_frees_the_model_and_cleanup_stops_the_worker(ros, model_pt):
    import gc
    import weakref

    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from vizion3d_ros.core.segmentation.ultralytics_backend import release_model
    from vizion3d_ros.ros.node import Vizion3DNode

    ok = TransitionCallbackReturn.SUCCESS
    release_model(model_pt)  # other tests in this process may share the cached model: load a fresh one
    node = Vizion3DNode(namespace='/inproc', parameter_overrides=[
        Parameter('model', value=str(model_pt)), Parameter('device', value='cpu'),
        Parameter('autostart', value=False), Parameter('warmup', value=False)])
    try:
        node.start()  # autostart off: nothing happens
        assert node.state == 'unconfigured'
        assert node.trigger_configure() == ok and node.trigger_activate() == ok
        worker = node._worker
        model = weakref.ref(node._pipeline.backend.model)
        assert model() is not None and worker.is_alive()
        assert node.trigger_deactivate() == ok
        gc.collect()
        assert model() is None, 'the model is still referenced after deactivate'
        assert not [t for t in threading.enumerate() if t.name.startswith('vizion3d-inference')], \
            'the inference thread outlived its pipeline'
        assert node.trigger_activate() == ok, 'a second activation loads the model again'
        assert node._pipeline is not None and node.trigger_deactivate() == ok
        assert node.trigger_cleanup() == ok and node.state == 'unconfigured'
        assert not worker.is_alive() and node._objects_pub is None
    finally:
        node.destroy_node()


def test_visualisation_outputs_are_built_only_while_somebody_subscribes(ros, model_pt, tum_msgs, monkeypatch):
    """The annotated cloud and markers (milliseconds a frame) are skipped without subscribers; objects never."""
    import time

    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import PointCloud2
    from visualization_msgs.msg import MarkerArray

    from vizion3d_ros.msg import ObjectMask3DArray
    from vizion3d_ros.ros import node as node_module

    built = []
    real_annotated = node_module.annotated_cloud
    monkeypatch.setattr(node_module, 'annotated_cloud',
                        lambda *a, **k: built.append('cloud') or real_annotated(*a, **k))
    node = node_module.Vizion3DNode(namespace='/outputs', parameter_overrides=[
        Parameter('model', value=str(model_pt)), Parameter('device', value='cpu'),
        Parameter('autostart', value=False), Parameter('warmup', value=False)])
    listener = rclpy.create_node('outputs_listener', namespace='/outputs')
    got: dict[str, list] = {'objects': [], 'annotated_points': [], 'markers': []}
    try:
        ok = TransitionCallbackReturn.SUCCESS
        assert node.trigger_configure() == ok and node.trigger_activate() == ok
        markers_built = []
        real_update = node._markers.update
        node._markers.update = lambda msg: markers_built.append(1) or real_update(msg)
        image, info, cloud, _ = tum_msgs
        listener.create_subscription(ObjectMask3DArray, 'objects', got['objects'].append, 5)
        node._process(node._pipeline, image, info, cloud, time.monotonic())
        assert built == [] and markers_built == [], 'built for nobody'
        listener.create_subscription(PointCloud2, 'annotated_points', got['annotated_points'].append, 5)
        listener.create_subscription(MarkerArray, 'markers', got['markers'].append, 5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (node._cloud_pub.get_subscription_count() == 0
                                               or node._markers_pub.get_subscription_count() == 0):
            time.sleep(0.05)
        node._process(node._pipeline, image, info, cloud, time.monotonic())
        assert built == ['cloud'] and markers_built == [1]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (got['annotated_points'] and got['objects']):
            rclpy.spin_once(listener, timeout_sec=0.1)
        assert got['objects'], 'objects are published whoever listens'
        assert got['annotated_points'] and got['annotated_points'][0].width == 640
    finally:
        listener.destroy_node()
        node.destroy_node()
