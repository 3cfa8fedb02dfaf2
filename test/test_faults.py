"""Faults around the real vizion3d_node: a missing or corrupt model, and publishers that go away and come back.

Each test starts its own node process and checks what an operator sees: the node stays up, /diagnostics
says ERROR with the reason while it cannot work, the log says it once, and fixing the cause (the
``model`` parameter over rcl_interfaces/SetParameters, then lifecycle_msgs/ChangeState where autostart
is off) brings frame processing back without a restart.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from diag_listener import ERROR, DiagnosticsListener, PipelineStatus
from hostile_inputs import ValidFrame
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from node_harness import RELIABLE, Client, Lifecycle, NodeProcess, stamp_ns

pytestmark = [pytest.mark.integration, pytest.mark.model]
DDS_SHORT_HEARTBEAT = True  # see conftest.ros


def _start(tmp_path_factory, namespace: str, **params) -> NodeProcess:
    return NodeProcess(tmp_path_factory.mktemp(namespace.strip('/')) / 'node.log', namespace=namespace,
                       device='cpu', diagnostics_period='0.2', **params)


def _stop(proc: NodeProcess) -> None:
    code = proc.stop()
    assert code == 0, f'node did not shut down cleanly on SIGTERM (exit {code}):\n{proc.log()[-3000:]}'


def _wait_status(client: Client, diag: DiagnosticsListener, predicate, what: str,
                 timeout: float = 120.0) -> PipelineStatus:
    ok = client.spin_until(lambda: diag.latest is not None and predicate(diag.latest), timeout)
    assert ok, f'/diagnostics never showed {what} within {timeout} s; last: {diag.describe()}'
    return diag.latest


def _check_frames_processed(client: Client, valid: ValidFrame) -> None:
    objects, annotated = client.result(client.send(valid.image, valid.camera_info, valid.cloud))
    labels = [o.label for o in objects.objects]
    assert labels.count('chair') >= 2, labels
    n = len(valid.xyz)
    assert all(max(o.point_indices) < n for o in objects.objects)
    assert annotated.width * annotated.height == n


def _check_error_reported(proc: NodeProcess, client: Client, diag: DiagnosticsListener, file_name: str,
                          log_pattern: str) -> None:
    status = _wait_status(client, diag, lambda s: s.level == ERROR, 'an ERROR status')
    assert file_name in status.message, status.message
    assert status.values.get('state') == 'inactive', status.values
    m = proc.wait_for_log(log_pattern)
    assert file_name in m.group(0)
    assert proc.alive
    # the error is reported, not repeated: one log line for the failed activation
    assert len(re.findall(log_pattern, proc.log())) == 1, proc.log()[-3000:]


def test_missing_model_is_reported_and_setting_the_model_recovers(ros, tmp_path, tmp_path_factory, model_pt, valid):
    missing = tmp_path / 'no_such_model.pt'
    proc = _start(tmp_path_factory, '/fault_missing', model=str(missing))
    client = Client('fault_missing_client', namespace='/fault_missing')
    diag = DiagnosticsListener(client.node)
    lc = Lifecycle(client)
    try:
        _check_error_reported(proc, client, diag, 'no_such_model.pt', r'cannot activate: no segmentation model: .*')
        assert lc.state() == 'inactive'

        assert [r.successful for r in lc.set(model=str(model_pt))] == [True]
        lc.wait_for_state('active')  # autostart retries the failed activation with the new model
        client.wait_matched()
        _check_frames_processed(client, valid)
        status = _wait_status(client, diag, lambda s: s.level != ERROR and s.count('frames_processed') >= 1,
                              'the recovered node')
        assert status.values['state'] == 'active' and status.values['model'] == model_pt.name
        assert proc.alive
    finally:
        client.close()
        _stop(proc)


def test_corrupt_model_is_reported_and_change_state_recovers(ros, tmp_path, tmp_path_factory, model_pt, valid):
    corrupt = tmp_path / 'bad.pt'
    corrupt.write_bytes(np.random.default_rng(7).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes())
    proc = _start(tmp_path_factory, '/fault_corrupt', model=str(corrupt), autostart='false')
    client = Client('fault_corrupt_client', namespace='/fault_corrupt')
    diag = DiagnosticsListener(client.node)
    lc = Lifecycle(client)
    try:
        assert lc.transition('configure')
        assert not lc.transition('activate'), 'a garbage checkpoint must not activate'
        _check_error_reported(proc, client, diag, 'bad.pt', r'cannot activate: could not load model .*')
        assert lc.state() == 'inactive'

        assert [r.successful for r in lc.set(model=str(model_pt))] == [True]
        assert lc.state() == 'inactive', 'without autostart only ChangeState activates'
        assert lc.transition('activate')
        client.wait_matched()
        _check_frames_processed(client, valid)
        status = _wait_status(client, diag, lambda s: s.level != ERROR and s.values.get('state') == 'active',
                              'the recovered node')
        assert status.values['model'] == model_pt.name
    finally:
        client.close()
        _stop(proc)


# ----------------------------------------------------------------------------- publishers going away

@pytest.fixture(scope='module')
def restart_node(ros, tmp_path_factory, model_pt):
    proc = _start(tmp_path_factory, '/fault_restart', model=str(model_pt))
    proc.wait_for_log(r'model .* loaded', timeout=180)
    yield proc
    _stop(proc)


def test_processing_resumes_after_the_publishers_restart(restart_node, valid):
    client = Client('restart_client', namespace='/fault_restart')
    try:
        client.wait_matched()
        _check_frames_processed(client, valid)

        # the publishers go away and come back (a camera driver re-creating them)
        for pub in (client.image_pub, client.info_pub, client.cloud_pub):
            client.node.destroy_publisher(pub)
        assert client.spin_until(lambda: client.node.count_publishers('points') == 0, 60)
        client.image_pub = client.node.create_publisher(Image, 'image', RELIABLE)
        client.info_pub = client.node.create_publisher(CameraInfo, 'camera_info', RELIABLE)
        client.cloud_pub = client.node.create_publisher(PointCloud2, 'points', RELIABLE)
        client.wait_matched()
        _check_frames_processed(client, valid)
        last_t = client._t
    finally:
        client.close()

    # the whole client node goes away and a new one takes its place; a live source's stamps go on
    again = Client('restart_client_2', namespace='/fault_restart')
    again._t = last_t
    try:
        again.wait_matched()
        _check_frames_processed(again, valid)
        assert restart_node.alive
    finally:
        again.close()


def test_a_source_restarting_with_earlier_stamps_is_processed(restart_node, valid):
    client = Client('rewind_client', namespace='/fault_restart')
    try:
        client.wait_matched()
        client._t = 10_000_000  # well after every stamp the other tests sent
        _check_frames_processed(client, valid)
    finally:
        client.close()
    replay = Client('rewind_client_2', namespace='/fault_restart')
    try:
        replay.wait_matched()
        replay._t = 5_000_000  # the same recording played again: its stamps start over
        key = stamp_ns(replay.send(valid.image, valid.camera_info, valid.cloud))
        dropped = re.compile(r'frame dropped \(out_of_order')
        assert replay.spin_until(lambda: key in replay.objects or dropped.search(restart_node.log()), 120)
        assert key in replay.objects, 'the replayed frame was dropped as out_of_order'
        restart_node.wait_for_log(r'stamps went back 5000000\.0 s')
    finally:
        replay.close()
