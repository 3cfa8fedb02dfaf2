"""The real `ros2` command line against the running node: lifecycle, param, node info, topic echo and hz.

What a robot user types first. Every call is a separate ``ros2`` process with ``--no-daemon`` (no daemon is
left behind by the tests), so a call may miss a node that discovery has not found yet: such calls are
retried (ros_tools.ros2_until). Needs the ros2 CLI (built from ../shared/ros_src by ``make setup``).
"""
from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from node_harness import Client, running_node
from ros_tools import require_ros_tools, ros2_until

pytestmark = pytest.mark.integration

NODE = '/vizion3d_node'
SPIN = ('--no-daemon', '--spin-time', '1')


@pytest.fixture(scope='module', autouse=True)
def _tools():
    require_ros_tools('ros2')


@pytest.fixture(scope='module')
def node(tmp_path_factory, model_pt):
    yield from running_node(tmp_path_factory.mktemp('node'), load_timeout=180, model=str(model_pt))


@pytest.fixture(scope='module')
def client(ros, node):
    c = Client('vizion3d_cli_test_client', input_qos=None)
    yield c
    c.close()


def _found(p: subprocess.CompletedProcess) -> bool:
    """False when the verb missed the node (the words differ from verb to verb)."""
    out = p.stdout + p.stderr
    return 'Node not found' not in out and 'Unable to find node' not in out


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """``ros2 ARGS --no-daemon --spin-time 1``, again while it has not found the node; exit 0 if ``ok``."""
    proc = ros2_until(_found, *args, *SPIN)
    if ok:
        assert proc.returncode == 0, f'ros2 {" ".join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}'
    return proc


def lifecycle_state() -> str:
    return cli('lifecycle', 'get', NODE).stdout.split()[0]


def test_ros2_lifecycle_get_list_and_set(node):
    assert lifecycle_state() == 'active'
    listed = cli('lifecycle', 'list', NODE).stdout
    assert re.search(r'- deactivate \[4\]', listed) and re.search(r'- shutdown \[7\]', listed), listed
    nodes = ros2_until(lambda p: NODE in p.stdout.split(), 'lifecycle', 'nodes', *SPIN).stdout
    assert NODE in nodes.split()
    out = cli('lifecycle', 'set', NODE, 'deactivate').stdout
    try:
        assert 'Transitioning successful' in out
        assert lifecycle_state() == 'inactive'
        # a transition the state machine has no edge for is refused, the state unchanged
        refused = cli('lifecycle', 'set', NODE, 'deactivate', ok=False)
        assert refused.returncode != 0 and 'Unknown transition requested' in refused.stdout + refused.stderr
        assert lifecycle_state() == 'inactive'
    finally:  # the other tests want it active
        assert 'Transitioning successful' in cli('lifecycle', 'set', NODE, 'activate').stdout
    assert lifecycle_state() == 'active'


def test_ros2_param_get_set_describe_and_a_refused_value(node):
    get = cli('param', 'get', NODE, 'conf_threshold').stdout
    assert get.strip() == 'Double value is: 0.25'
    assert 'Set parameter successful' in cli('param', 'set', NODE, 'conf_threshold', '0.4').stdout
    assert cli('param', 'get', NODE, 'conf_threshold').stdout.strip() == 'Double value is: 0.4'
    # out of range: refused by the node with the reason, the value kept
    bad = cli('param', 'set', NODE, 'conf_threshold', '2.0', ok=False)
    assert 'Setting parameter failed' in bad.stderr, bad.stdout + bad.stderr
    assert re.search(r'conf_threshold.*(range|between|0\.0.*1\.0)', bad.stderr), bad.stderr
    bad_choice = cli('param', 'set', NODE, 'lift_mode', 'everything', ok=False)
    assert 'Setting parameter failed' in bad_choice.stderr and 'visible' in bad_choice.stderr, bad_choice.stderr
    assert cli('param', 'get', NODE, 'conf_threshold').stdout.strip() == 'Double value is: 0.4'
    assert 'Set parameter successful' in cli('param', 'set', NODE, 'conf_threshold', '0.25').stdout
    described = cli('param', 'describe', NODE, 'conf_threshold').stdout
    assert 'Type: double' in described and 'Minimum detection confidence' in described
    assert 'Min value: 0.0' in described and 'Max value: 1.0' in described, described
    from vizion3d_ros.ros.params import SPECS
    listed = set(cli('param', 'list', NODE).stdout.split())
    assert set(SPECS) <= listed, set(SPECS) - listed


def test_ros2_node_info_shows_the_inputs_outputs_and_lifecycle_services(node):
    info = cli('node', 'info', NODE).stdout
    subscribers = info.split('Subscribers:')[1].split('Publishers:')[0]
    publishers = info.split('Publishers:')[1].split('Service Servers:')[0]
    services = info.split('Service Servers:')[1]
    for topic in ('/image: sensor_msgs/msg/Image', '/camera_info: sensor_msgs/msg/CameraInfo',
                  '/points: sensor_msgs/msg/PointCloud2'):
        assert topic in subscribers, info
    for topic in ('/objects: vizion3d_ros/msg/ObjectMask3DArray', '/annotated_points: sensor_msgs/msg/PointCloud2',
                  '/markers: visualization_msgs/msg/MarkerArray', '/diagnostics: diagnostic_msgs/msg/DiagnosticArray'):
        assert topic in publishers, info
    assert f'{NODE}/change_state: lifecycle_msgs/srv/ChangeState' in services, info


def _send_while(client: Client, proc: subprocess.Popen, frames, period: float, timeout: float) -> int:
    """Publish frames every ``period`` s until ``proc`` exits (or ``timeout``); the number sent."""
    image, info, cloud = frames
    sent, deadline = 0, time.monotonic() + timeout
    next_send = time.monotonic()
    while proc.poll() is None and time.monotonic() < deadline:
        if time.monotonic() >= next_send:
            client.send(image, info, cloud)
            sent += 1
            next_send += period
        client.spin_until(lambda: False, 0.05)
    return sent


def _reliable_publishers(client: Client) -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    if client.image_pub is None:
        client.create_input_publishers(QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    client.wait_matched()


def test_ros2_topic_echo_once_prints_an_objects_message(node, client, tum_msgs):
    _reliable_publishers(client)
    echo = subprocess.Popen(['ros2', 'topic', 'echo', '--once', '--no-daemon', '/objects',
                             'vizion3d_ros/msg/ObjectMask3DArray'], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _send_while(client, echo, tum_msgs[:3], period=1.0, timeout=90)
        out, _ = echo.communicate(timeout=10)
    finally:
        echo.kill()
    assert echo.returncode == 0, out
    labels = set(re.findall(r'^\s+label: (\S+)', out, flags=re.M))
    stamp = int(re.search(r'sec: (\d+)', out).group(1))
    sent = next(m for k, m in client.objects.items() if k // 10**9 == stamp)
    assert labels == {o.label for o in sent.objects} and labels, out
    assert 'frame_id: camera_color_optical_frame' in out


def test_ros2_topic_hz_measures_the_objects_rate(node, client, tum_msgs):
    _reliable_publishers(client)
    hz = subprocess.Popen(['ros2', 'topic', 'hz', '/objects', '--window', '5'],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        before = len(client.objects)
        _send_while(client, hz, tum_msgs[:3], period=1.0, timeout=12)
        hz.send_signal(signal.SIGINT)
        out, _ = hz.communicate(timeout=10)
    finally:
        hz.kill()
    rates = [float(r) for r in re.findall(r'average rate: ([\d.]+)', out)]
    assert rates, out
    # one frame a second was sent and each was answered (the client saw them): hz reports about that
    assert len(client.objects) - before >= 5
    assert 0.3 < rates[-1] < 3.0, out
