"""Run the real vizion3d_node in its own process and talk to it over DDS from the test process."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from vizion3d_ros.msg import ObjectMask3DArray
from vizion3d_ros.ros.cloud_frames import tf2_available
from vizion3d_ros.ros.stamps import stamp_ns  # noqa: F401 - tests import it from here

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))
from _node_io import NodeRun, matched_alike, wait_for_pattern  # noqa: E402, F401 - bench/ is not a package

RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
#: Why the node drops a cloud in a frame nobody gave a transform for: with tf2_ros it asks TF and finds
#: nothing; without it, it cannot ask at all.
NO_TRANSFORM = 'tf_unavailable' if tf2_available() else 'frame_mismatch'
# best effort matches a /diagnostics publisher of either reliability
DIAGNOSTICS_QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.BEST_EFFORT)


class NodeProcess(NodeRun):
    """vizion3d_node as a child process with its output in a log file (``bench/_node_io.NodeRun``)."""

    def __init__(self, log_path: Path, namespace: str = '', **params: str) -> None:
        super().__init__(log_path, namespace, params)

    def stop(self, timeout: float = 15.0) -> int:
        return super().stop(timeout)


def running_node(log_dir: Path, load_timeout: float = 120.0, namespace: str = '', **params: str):
    """A module fixture's body: the node started and its model loaded, yielded, then stopped by SIGTERM,
    which must end it with exit code 0."""
    proc = NodeProcess(log_dir / 'node.log', namespace=namespace, **params)
    proc.wait_loaded(timeout=load_timeout)
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


class Client:
    """Publishes frames to the node's inputs and collects its outputs by stamp."""

    def __init__(self, name: str = 'vizion3d_test_client', namespace: str = '',
                 input_qos: QoSProfile | None = RELIABLE, remap: dict[str, str] | None = None) -> None:
        """``input_qos``: QoS of the image, camera_info and points publishers (None: create them later,
        with :meth:`create_input_publishers`). ``remap``: topic remappings of the client, e.g.
        ``{'image': '/cam/image'}`` for a node launched with such remaps."""
        # a namespace per node under test keeps tests that run two nodes at once apart
        cli_args = ['--ros-args', *(a for k, v in (remap or {}).items() for a in ('-r', f'{k}:={v}'))]
        self.node = Node(name, namespace=namespace or None, cli_args=cli_args if remap else None)
        self.image_pub = self.info_pub = self.cloud_pub = None
        if input_qos is not None:
            self.create_input_publishers(input_qos)
        self.objects: dict[int, ObjectMask3DArray] = {}
        self.clouds: dict[int, PointCloud2] = {}
        self.node.create_subscription(ObjectMask3DArray, 'objects',
                                      lambda m: self.objects.setdefault(stamp_ns(m.header), m), RELIABLE)
        self.node.create_subscription(PointCloud2, 'annotated_points',
                                      lambda m: self.clouds.setdefault(stamp_ns(m.header), m), RELIABLE)
        self.markers: list[MarkerArray] = []
        self.debug_images: dict[int, Image] = {}
        self.statuses: list[DiagnosticStatus] = []
        self.node.create_subscription(MarkerArray, 'markers', self.markers.append, RELIABLE)
        self.node.create_subscription(Image, 'debug_image',
                                      lambda m: self.debug_images.setdefault(stamp_ns(m.header), m), RELIABLE)
        self._status_name = f'{self.node.get_namespace().rstrip("/")}/vizion3d_node: pipeline'
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, DIAGNOSTICS_QOS)
        self._t = 1_000  # seconds; stamps are synthetic and strictly increasing

    def create_input_publishers(self, qos: QoSProfile) -> None:
        """(Re)create the image, camera_info and points publishers with ``qos``."""
        for pub in (self.image_pub, self.info_pub, self.cloud_pub):
            if pub is not None:
                self.node.destroy_publisher(pub)
        self.image_pub = self.node.create_publisher(Image, 'image', qos)
        self.info_pub = self.node.create_publisher(CameraInfo, 'camera_info', qos)
        self.cloud_pub = self.node.create_publisher(PointCloud2, 'points', qos)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.statuses.extend(s for s in msg.status if s.name == self._status_name)

    def wait_status(self, predicate, timeout: float = 60.0) -> DiagnosticStatus:
        """The first new /diagnostics pipeline status of the node under test for which ``predicate`` holds."""
        start = len(self.statuses)

        def found():
            return next((st for st in self.statuses[start:] if predicate(st)), None)
        ok = self.spin_until(lambda: found() is not None, timeout)
        last = self.statuses[-1] if self.statuses else None
        assert ok, (f'no matching {self._status_name!r} status within {timeout} s; last: '
                    f'{last and (last.level, last.message, values(last))}')
        return found()

    def spin_until(self, predicate, timeout: float) -> bool:
        return spin_until(self.node, predicate, timeout)

    def wait_matched(self, timeout: float = 60.0) -> None:
        """Wait until the node subscribes to every input with this client's reliability (what
        ``input_reliability: auto`` does) and each publisher has matched the subscription."""
        pubs = (self.image_pub, self.info_pub, self.cloud_pub)
        ok = self.spin_until(lambda: all(matched_alike(self.node, p) for p in pubs)
                             and self.node.count_publishers('objects') > 0, timeout)
        assert ok, ('vizion3d_node did not match the test client alike within the timeout: '
                    + '; '.join(f'{p.topic_name}: {_subscriptions(self.node, p)}' for p in pubs))

    def wait_unsubscribed(self, timeout: float = 60.0) -> None:
        """Wait until the node has no subscription on any input (it deactivated)."""
        pubs = (self.image_pub, self.info_pub, self.cloud_pub)
        ok = self.spin_until(lambda: all(p.get_subscription_count() == 0 for p in pubs), timeout)
        assert ok, 'vizion3d_node still subscribes to its inputs'

    def next_header(self, frame_id: str = 'camera_color_optical_frame') -> Header:
        self._t += 1
        return Header(frame_id=frame_id, stamp=rclpy.time.Time(seconds=self._t).to_msg())

    def send(self, image: Image, info: CameraInfo, cloud: PointCloud2, header: Header | None = None,
             cloud_header: Header | None = None) -> Header:
        header = header or self.next_header()
        image.header, info.header = header, header
        cloud.header = cloud_header or header
        self.image_pub.publish(image)
        self.info_pub.publish(info)
        self.cloud_pub.publish(cloud)
        return header

    def result(self, header: Header, timeout: float = 120.0):
        key = stamp_ns(header)
        ok = self.spin_until(lambda: key in self.objects and key in self.clouds, timeout)
        assert ok, f'no result for the frame stamped {header.stamp} within {timeout} s'
        return self.objects[key], self.clouds[key]

    def close(self) -> None:
        self.node.destroy_node()


def spin_until(node: Node, predicate, timeout: float) -> bool:
    """Spin ``node`` until ``predicate()`` holds (True) or ``timeout`` seconds pass (its last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        rclpy.spin_once(node, timeout_sec=0.05)
    return predicate()


def _subscriptions(node: Node, pub) -> list[str]:
    return [f'{e.node_name} {e.qos_profile.reliability.name}'
            for e in node.get_subscriptions_info_by_topic(pub.topic_name)]


def full_mask(obj, height: int, width: int) -> np.ndarray:
    """Rebuild an object's full-image mask from its cropped mask and ROI (as a user would)."""
    m = np.zeros((height, width), bool)
    r = obj.mask_roi
    crop = np.frombuffer(obj.mask.data, np.uint8).reshape(obj.mask.height, obj.mask.step)[:, :obj.mask.width]
    m[r.y_offset:r.y_offset + r.height, r.x_offset:r.x_offset + r.width] = crop > 0
    return m


class Lifecycle:
    """The lifecycle and parameter services of a node under test, called through a test client's node."""

    TRANSITIONS = {'configure': Transition.TRANSITION_CONFIGURE, 'cleanup': Transition.TRANSITION_CLEANUP,
                   'activate': Transition.TRANSITION_ACTIVATE, 'deactivate': Transition.TRANSITION_DEACTIVATE}

    def __init__(self, client: Client, node_name: str = 'vizion3d_node') -> None:
        self.node = client.node
        base = f'{self.node.get_namespace().rstrip("/")}/{node_name}'
        self._change = self.node.create_client(ChangeState, f'{base}/change_state')
        self._get = self.node.create_client(GetState, f'{base}/get_state')
        self._set = self.node.create_client(SetParameters, f'{base}/set_parameters')
        self._get_params = self.node.create_client(GetParameters, f'{base}/get_parameters')

    def _call(self, client, request, timeout: float = 120.0):
        assert client.wait_for_service(timeout_sec=60.0), f'service {client.srv_name} did not appear'
        future = client.call_async(request)
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
        assert future.done(), f'no answer from {client.srv_name} within {timeout} s'
        return future.result()

    def state(self) -> str:
        """The node's lifecycle state label (GetState)."""
        return self._call(self._get, GetState.Request()).current_state.label

    def transition(self, name: str) -> bool:
        """Trigger ``configure``/``activate``/``deactivate``/``cleanup``; True when it succeeded."""
        request = ChangeState.Request()
        request.transition.id = self.TRANSITIONS[name]
        return self._call(self._change, request).success

    def wait_for_state(self, label: str, timeout: float = 120.0) -> None:
        """Poll GetState until the node is in ``label``."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.state()
            if state == label:
                return
            rclpy.spin_once(self.node, timeout_sec=0.2)
        raise AssertionError(f'node still {state!r}, not {label!r}, after {timeout} s')

    def set(self, **params) -> list[SetParametersResult]:
        """Set parameters (one SetParameters call); the per-parameter results."""
        request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                    for k, v in params.items()])
        return list(self._call(self._set, request).results)

    def get(self, *names: str) -> dict:
        """The node's values of parameters ``names`` (one GetParameters call), as Python values."""
        values = self._call(self._get_params, GetParameters.Request(names=list(names))).values
        return {n: Parameter.from_parameter_msg(ParameterMsg(name=n, value=v)).value
                for n, v in zip(names, values, strict=True)}


def values(status: DiagnosticStatus) -> dict[str, str]:
    """A DiagnosticStatus' KeyValues as a dict."""
    return {kv.key: kv.value for kv in status.values}
