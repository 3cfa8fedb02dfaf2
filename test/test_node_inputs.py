"""The node's inputs over real DDS: input_reliability auto follows the publishers, and silent or unpaired
inputs are reported with their cause (log once, /diagnostics while it lasts). The node runs with its
default parameters (only the model is given), as a user would start it next to a camera driver.
"""
from __future__ import annotations

import os
import re
import time

import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from node_harness import Client, NodeProcess, running_node, stamp_ns, values

pytestmark = [pytest.mark.integration, pytest.mark.model]
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope='module')
def node(ros, model_pt, tmp_path_factory):
    yield from running_node(tmp_path_factory.mktemp('inputs'), namespace='/inp', model=str(model_pt))


@pytest.fixture(scope='module')
def client(node):
    c = Client('inputs_client', namespace='/inp', input_qos=None)
    yield c
    c.close()


def stream_until(client: Client, proc: NodeProcess, pattern: str, send, timeout: float = 30.0,
                 period: float = 0.2) -> re.Match:
    """Call ``send()`` every ``period`` s, spinning the client, until the node's log matches ``pattern``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        send()
        client.spin_until(lambda: False, period)
        m = re.search(pattern, proc.log())
        if m:
            return m
    raise AssertionError(f'{pattern!r} not in the node log after {timeout} s:\n{proc.log()[-3000:]}')


def test_auto_waits_best_effort_then_follows_a_reliable_camera(node, client, tum_msgs):
    # first in the module: no publisher yet
    status = client.wait_status(lambda st: 'input_qos/inp/points' in values(st))
    assert values(status)['input_qos/inp/points'] == 'best_effort (auto: no publisher seen yet)'
    assert node.log().count('subscribing reliable') == 0

    client.create_input_publishers(RELIABLE)  # a camera driver with the default (reliable) QoS
    client.wait_matched()
    for topic in ('image', 'camera_info', 'points'):
        node.wait_for_log(rf'input /inp/{topic}: subscribing reliable instead of best_effort because 1 reliable '
                          r'publisher \(input_reliability auto\)')
    status = client.wait_status(lambda st: values(st).get('input_qos/inp/points', '').startswith('reliable'))
    assert values(status)['input_qos/inp/points'] == 'reliable (auto: 1 reliable publisher)'
    image, info, cloud, _ = tum_msgs
    objects, annotated = client.result(client.send(image, info, cloud))
    assert len(objects.objects) >= 5 and annotated.width == 640
    assert {'chair'} <= {o.label for o in objects.objects}


def test_a_best_effort_publisher_turns_the_input_best_effort_and_its_leaving_turns_it_back(node, client, tum_msgs):
    image, info, cloud, _ = tum_msgs
    extra = client.node.create_publisher(Image, 'image', qos_profile_sensor_data)
    try:
        node.wait_for_log(r'input /inp/image: subscribing best_effort instead of reliable because 1 of 2 publishers '
                          'best effort')
        status = client.wait_status(lambda st: values(st)['input_qos/inp/image'].startswith('best_effort'))
        assert values(status)['input_qos/inp/image'] == 'best_effort (auto: 1 of 2 publishers best effort)'
        assert values(status)['input_qos/inp/points'].startswith('reliable')  # each input on its own
        assert 'incompatible QoS on subscription' not in node.log()  # auto resolves it instead of warning
    finally:
        client.node.destroy_publisher(extra)
    before = node.log().count('input /inp/image: subscribing reliable')
    client.wait_matched()
    assert node.log().count('input /inp/image: subscribing reliable') == before + 1
    objects, _ = client.result(client.send(image, info, cloud))
    assert len(objects.objects) >= 5


def test_a_matched_but_silent_cloud_is_reported_with_what_to_do(node, client, tum_msgs):
    image, info, cloud, _ = tum_msgs
    client.wait_matched()

    def image_only():
        header = client.next_header()
        image.header, info.header = header, header
        client.image_pub.publish(image)
        client.info_pub.publish(info)
    m = stream_until(client, node, r'no message on /inp/points for \d+ s although 1 publisher is matched: (.*)',
                     image_only)
    assert 'ros2 topic hz /inp/points' in m.group(1)
    status = client.wait_status(lambda st: 'input_problem/inp/points' in values(st))
    assert 'no message on /inp/points' in status.message and values(status)['input_qos/inp/points'].startswith('rel')
    assert node.log().count('no message on /inp/points') == 1  # warned once
    objects, _ = client.result(client.send(image, info, cloud))  # and the next complete frame is served
    assert len(objects.objects) >= 5
    client.wait_status(lambda st: 'input_problem/inp/points' not in values(st))


def test_inputs_that_never_pair_up_name_their_stamp_offset(node, client, tum_msgs):
    image, info, cloud, _ = tum_msgs

    def offset_cloud():
        header = client.next_header()
        late = client.next_header()
        late.stamp.sec, late.stamp.nanosec = header.stamp.sec, 500_000_000
        client.send(image, info, cloud, header=header, cloud_header=late)
    m = stream_until(client, node, r'no image, camera_info and points within sync_slop \(0.05 s\) for \d+ s although '
                     r'all arrive \(\d+ messages discarded\): (.*)', offset_cloud, timeout=45.0)
    assert 'their stamps differ by 0.500 s' in m.group(1)
    status = client.wait_status(lambda st: 'input_problem/sync' in values(st))
    assert 'stamps differ by 0.500 s' in values(status)['input_problem/sync']
    objects, _ = client.result(client.send(image, info, cloud))
    assert len(objects.objects) >= 5


def test_a_best_effort_camera_is_served(node, client, tum_msgs):
    # a driver with the sensor-data QoS. Its VGA clouds arrive whole only because this process (the
    # publisher) runs with the large-data Fast DDS profile that scripts/env.sh sets (README: DDS profile)
    profile = os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE', '')
    assert profile.endswith('fastdds_large_data.xml'), 'run the tests from scripts/env.sh (make test)'
    image, info, cloud, _ = tum_msgs
    client.create_input_publishers(qos_profile_sensor_data)
    client.wait_matched()
    status = client.wait_status(lambda st: all(values(st).get(f'input_qos/inp/{t}', '').startswith('best_effort')
                                               for t in ('image', 'camera_info', 'points')))
    assert values(status)['input_qos/inp/points'] == 'best_effort (auto: 1 best-effort publisher)'
    headers = [client.send(image, info, cloud) for _ in range(3)]  # best effort: one may be lost, not all
    assert client.spin_until(lambda: any(stamp_ns(h) in client.objects for h in headers), 120), \
        'no result for 3 best-effort frames'
    objects = next(client.objects[stamp_ns(h)] for h in headers if stamp_ns(h) in client.objects)
    assert len(objects.objects) >= 5
    client.create_input_publishers(RELIABLE)


def test_forced_reliable_inputs_warn_about_a_best_effort_camera(ros, model_pt, tmp_path_factory):
    proc = NodeProcess(tmp_path_factory.mktemp('forced') / 'node.log', namespace='/forced', model=str(model_pt),
                       input_reliability='reliable')
    client = Client('forced_client', namespace='/forced', input_qos=qos_profile_sensor_data)
    try:
        proc.wait_loaded(timeout=120)
        m = proc.wait_for_log(r'incompatible QoS on subscription (\S+): .*RELIABILITY.*input_reliability is reliable')
        assert m.group(1) in {'/forced/image', '/forced/camera_info', '/forced/points'}
        status = client.wait_status(lambda st: 'input_problem/forced/points' in values(st), timeout=30)
        text = values(status)['input_problem/forced/points']
        assert 'offer best effort but input_reliability is reliable' in text and 'auto' in text
        assert values(status)['input_qos/forced/points'] == 'reliable (forced by input_reliability)'
        assert int(values(status)['incompatible_qos/forced/points']) >= 1
    finally:
        client.close()
        assert proc.stop() == 0
