"""`ros2 launch vizion3d_ros vizion3d.launch.py` for real: params file, remaps, and a clean stop by signal.

The launch runs as a robot runs it, in its own session and process group, and is stopped the ways robots
stop it: ctrl-c in a terminal (SIGINT to the whole group), SIGINT to ``ros2 launch`` alone (a supervisor),
a second SIGINT while shutting down (an impatient user), SIGTERM to the group (systemd, a hang-up).
``launch_supervisor.py`` runs it as a child subreaper, so even a node that ``ros2 launch`` left behind is
reaped there and its own exit code checked. Needs ``ros2 launch`` (built from ../shared/ros_src by
``make setup``; see ros_tools.py).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REDWOOD

from node_harness import Client, Lifecycle, wait_for_pattern
from ros_tools import require_ros_tools

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
PARAMS = HERE.parent / 'config' / 'vizion3d.yaml'
REMAPS = {'image': '/cam/color/image', 'camera_info': '/cam/color/info', 'points': '/cam/depth/points'}


@pytest.fixture(scope='module', autouse=True)
def _tools():
    require_ros_tools('ros2', 'launch')


class Launch:
    """``ros2 launch ARGS`` under launch_supervisor.py; its output in ``log_path``."""

    def __init__(self, log_path: Path, *args: str, launch_file: str = 'vizion3d.launch.py') -> None:
        self.log_path = log_path
        cmd = [sys.executable, str(HERE / 'launch_supervisor.py'), str(log_path),
               'ros2', 'launch', 'vizion3d_ros', launch_file, *args]
        self.supervisor = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                           env=dict(os.environ, PYTHONUNBUFFERED='1'))
        self.pid = json.loads(self.supervisor.stdout.readline())['started']  # ros2 launch = its group's leader
        self.events: list[dict] = []
        self._done = threading.Event()  # the supervisor has reaped every process
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.supervisor.stdout:
            event = json.loads(line)
            self.events.append(event)
            if event.get('done'):
                self._done.set()

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, pattern: str, timeout: float = 90.0) -> re.Match:
        m = wait_for_pattern(self.log, pattern, timeout, lambda: not self._done.is_set())
        assert m, f'{pattern!r} not in the launch output:\n{self.log()[-5000:]}'
        return m

    def node_pid(self) -> int:
        return int(self.wait_for_log(r'\[vizion3d_node-1\]: process started with pid \[(\d+)\]').group(1))

    def finish(self, timeout: float = 60.0) -> None:
        """Wait until ros2 launch and everything it started have exited; fail (and kill them) after ``timeout``."""
        if not self._done.wait(timeout):
            self.kill()
            raise AssertionError(f'processes still running {timeout} s after the stop:\n{self.log()[-5000:]}')
        self.supervisor.wait(timeout=10)

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._done.wait(10.0)

    def exit_code(self, pid: int) -> int:
        """``pid``'s exit code: reaped by the supervisor (an orphan), else as ``ros2 launch`` reported it."""
        for e in self.events:
            if e.get('exit') == pid:
                return e['code']
        log = self.log()
        if re.search(rf'process has finished cleanly \[pid {pid}\]', log):
            return 0
        m = re.search(rf'process has died \[pid {pid}, exit code (-?\d+)', log)
        assert m, f'no exit of pid {pid} in the launch output:\n{log[-5000:]}'
        return int(m.group(1))


@pytest.fixture
def launch(tmp_path, model_pt):
    """Start ``ros2 launch`` with the checkpoint and the remaps; extra launch arguments as parameters."""
    started: list[Launch] = []

    def start(*args: str, model: Path = model_pt, launch_file: str = 'vizion3d.launch.py') -> Launch:
        run = Launch(tmp_path / f'launch{len(started)}.log', f'model:={model}',
                     *(f'{k}:={v}' for k, v in REMAPS.items()), *args, launch_file=launch_file)
        started.append(run)
        return run
    yield start
    for run in started:
        run.kill()


@pytest.fixture(scope='module')
def client(ros):
    c = Client('vizion3d_launch_test_client', input_qos=None, remap=REMAPS)
    yield c
    c.close()


def _params_file(tmp_path: Path, **changes) -> Path:
    params = yaml.safe_load(PARAMS.read_text())
    params['vizion3d_node']['ros__parameters'].update(changes)
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump(params))
    return path


def _stop_cleanly(run: Launch, send, launch_codes: tuple[int, ...] | None = (0,)) -> None:
    """Stop by ``send``; the node must exit 0 without a traceback, ``ros2 launch`` with one of ``launch_codes``."""
    node = run.node_pid()
    send()
    run.finish()
    log = run.log()
    assert 'Traceback' not in log and 'KeyboardInterrupt' not in log, log[-5000:]
    assert run.exit_code(node) == 0, log[-5000:]
    if launch_codes is not None:
        assert run.exit_code(run.pid) in launch_codes, log[-5000:]


def test_launch_brings_the_node_up_with_its_params_file_and_remaps(launch, client, tmp_path, tum_msgs, model_pt):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    params = _params_file(tmp_path, conf_threshold=0.3, min_points=7, marker_lifetime=2.5)
    run = launch(f'params_file:={params}')
    run.wait_for_log(r'model \S+ loaded on cpu', timeout=120)
    lifecycle = Lifecycle(client)
    lifecycle.wait_for_state('active')
    # the params file's values, the launch argument's model, the defaults for the rest
    got = lifecycle.get('conf_threshold', 'min_points', 'marker_lifetime', 'model', 'iou_threshold')
    assert got == {'conf_threshold': 0.3, 'min_points': 7, 'marker_lifetime': 2.5, 'model': str(model_pt),
                   'iou_threshold': 0.45}
    # the remaps: the node listens on the remapped topics, and a frame sent there is answered
    for topic in REMAPS.values():
        names = [i.node_name for i in client.node.get_subscriptions_info_by_topic(topic)]
        assert 'vizion3d_node' in names, (topic, names)
    client.create_input_publishers(QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    client.wait_matched()
    image, info, cloud, _ = tum_msgs
    objects, annotated = client.result(client.send(image, info, cloud))
    assert objects.objects and all(o.confidence >= 0.3 and len(o.point_indices) >= 7 for o in objects.objects)
    assert annotated.width * annotated.height == cloud.width * cloud.height
    _stop_cleanly(run, lambda: os.killpg(run.pid, signal.SIGINT))  # ctrl-c in the terminal


def _sigint_twice(run: Launch) -> None:
    """Ctrl-c, and ctrl-c again as soon as ``ros2 launch`` says it is shutting down."""
    os.killpg(run.pid, signal.SIGINT)
    run.wait_for_log(r'user interrupted with ctrl-c', timeout=10)
    os.killpg(run.pid, signal.SIGINT)


# how each stop is sent, and the exit codes ros2 launch itself may end with (None: not checked)
STOPS = {
    'SIGINT to ros2 launch alone': (lambda run: os.kill(run.pid, signal.SIGINT), (0,)),
    # the node may have finished before the second SIGINT lands; ros2 launch has then removed its handlers and
    # Python ends by the signal (-2), upstream behaviour. The node's own clean exit is what is checked
    'a second SIGINT during shutdown': (_sigint_twice, (0, -signal.SIGINT)),
    # ros2 launch takes SIGTERM as 'terminate now': it exits (-15) without stopping its processes and warns
    # they may be orphaned (upstream behaviour). The node gets the same SIGTERM from the group signal and
    # must end cleanly on its own; the supervisor reaps it
    'SIGTERM to the group': (lambda run: os.killpg(run.pid, signal.SIGTERM), None),
}


@pytest.mark.parametrize('how', list(STOPS))
def test_a_signal_ends_the_launched_node_with_exit_code_0_and_no_traceback(launch, client, how):
    run = launch()
    run.wait_for_log(r'model \S+ loaded on cpu', timeout=120)
    Lifecycle(client).wait_for_state('active')
    send, launch_codes = STOPS[how]
    _stop_cleanly(run, lambda: send(run), launch_codes)


def test_a_missing_model_leaves_the_launched_node_up_and_saying_why(launch, client, tmp_path):
    run = launch(model=tmp_path / 'no-such-model.pt')
    run.wait_for_log(r'\[ERROR\].*no-such-model\.pt', timeout=120)
    lifecycle = Lifecycle(client)
    assert lifecycle.state() in ('unconfigured', 'inactive')
    _stop_cleanly(run, lambda: os.killpg(run.pid, signal.SIGINT))


def test_the_map_launch_maps_the_redwood_frames_with_stable_ids_and_stops_cleanly(launch, client, tmp_path):
    """vizion3d_map.launch.py end to end: the player replays the redwood frames (real YOLO, real poses on /tf)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from vizion3d_ros.msg import MapObject3D, MapObject3DArray

    run = launch(launch_file='vizion3d_map.launch.py')
    run.wait_for_log(r'model \S+ loaded on cpu', timeout=120)
    run.wait_for_log(r"configured: world_frame 'odom', poses from TF", timeout=60)
    run.wait_for_log('map ready', timeout=60)
    Lifecycle(client).wait_for_state('active')
    node = client.node
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cloud_readers = {i.node_name for i in node.get_subscriptions_info_by_topic(REMAPS['points'])}
        object_readers = {i.node_name for i in node.get_subscriptions_info_by_topic('/objects')}
        if {'vizion3d_node', 'vizion3d_map_node'} <= cloud_readers and 'vizion3d_map_node' in object_readers:
            break
        time.sleep(0.2)
    assert {'vizion3d_node', 'vizion3d_map_node'} <= cloud_readers, cloud_readers
    assert 'vizion3d_map_node' in object_readers, object_readers
    maps: list[MapObject3DArray] = []
    node.create_subscription(MapObject3DArray, '/map_objects', maps.append,
                             QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))
    remaps = ['camera/color/image_raw', REMAPS['image'], 'camera/color/camera_info', REMAPS['camera_info'],
              'camera/depth_registered/points', REMAPS['points']]
    player = subprocess.run(['vizion3d_player', '--frames', str(REDWOOD), '--rate', '1', '--ros-args',
                             *[a for k, v in zip(remaps[::2], remaps[1::2]) for a in ('-r', f'{k}:={v}')]],
                            capture_output=True, text=True, timeout=120)
    assert player.returncode == 0, player.stdout + player.stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (maps and maps[-1].frames_integrated >= 5):
        rclpy_spin(node)
    assert maps and maps[-1].frames_integrated >= 4, (len(maps), run.log()[-5000:])  # a frame may be superseded
    confirmed = [o for o in maps[-1].objects if o.state == MapObject3D.STATE_CONFIRMED]
    assert confirmed, [(o.id, o.label, o.state) for o in maps[-1].objects]
    for obj in confirmed:  # from its first appearance on, the object is in every map message with its id and class
        first = next(k for k, m in enumerate(maps) if any(o.id == obj.id for o in m.objects))
        for m in maps[first:]:
            same = [o for o in m.objects if o.id == obj.id]
            assert same and same[0].class_id == obj.class_id, (obj.id, obj.label)
    # one id per physical object: no two confirmed objects of a class overlap
    for a in confirmed:
        for b in confirmed:
            if a.id < b.id and a.class_id == b.class_id:
                ca, cb = (np.array([o.centroid.x, o.centroid.y, o.centroid.z]) for o in (a, b))
                assert np.linalg.norm(ca - cb) > 0.3, f'{a.label} #{a.id} and #{b.id} are one object'
    map_pid = int(run.wait_for_log(r'\[vizion3d_map_node-2\]: process started with pid \[(\d+)\]').group(1))
    _stop_cleanly(run, lambda: os.killpg(run.pid, signal.SIGINT))
    assert run.exit_code(map_pid) == 0, run.log()[-5000:]


def rclpy_spin(node) -> None:
    import rclpy

    rclpy.spin_once(node, timeout_sec=0.1)
