"""input_reliability auto: the policy rule, and InputSubscription switching on a real rclpy graph.

The switching tests run a real subscription and real publishers over DDS inside this process (two nodes,
one context); the node-level behaviour over DDS from another process is in test_node_inputs.py.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo

from vizion3d_ros.ros.input_qos import (
    BEST_EFFORT,
    RELIABLE,
    InputSubscription,
    choose_reliability,
    compatible,
    input_qos,
    offered_reliability,
)
from vizion3d_ros.ros.stamps import stamp_ns

RELIABLE_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def test_the_policy_follows_the_publishers():
    assert choose_reliability([], BEST_EFFORT) == BEST_EFFORT
    assert choose_reliability([], RELIABLE) == RELIABLE  # nobody to decide for: keep what is there
    assert choose_reliability([RELIABLE, RELIABLE], BEST_EFFORT) == RELIABLE
    assert choose_reliability([RELIABLE, BEST_EFFORT], RELIABLE) == BEST_EFFORT
    assert choose_reliability([BEST_EFFORT], RELIABLE) == BEST_EFFORT


def test_offered_reliability_reads_endpoint_info_and_treats_unknown_as_best_effort():
    infos = [SimpleNamespace(qos_profile=SimpleNamespace(reliability=r))
             for r in (ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.SYSTEM_DEFAULT)]
    assert offered_reliability(infos) == [RELIABLE, BEST_EFFORT, BEST_EFFORT]


def test_compatibility_and_profiles():
    assert compatible(BEST_EFFORT, RELIABLE) and compatible(BEST_EFFORT, BEST_EFFORT)
    assert compatible(RELIABLE, RELIABLE) and not compatible(RELIABLE, BEST_EFFORT)
    assert input_qos(RELIABLE).reliability == ReliabilityPolicy.RELIABLE
    assert input_qos(BEST_EFFORT).reliability == ReliabilityPolicy.BEST_EFFORT
    assert input_qos(RELIABLE).depth == input_qos(BEST_EFFORT).depth == qos_profile_sensor_data.depth


class Graph:
    """A subscriber node holding the InputSubscription and a publisher node, spun together."""

    def __init__(self, topic: str, mode: str) -> None:
        self.sub_node = Node('input_qos_sub')
        self.pub_node = Node('input_qos_pub')
        self.received: list[int] = []
        self.input = InputSubscription(self.sub_node, CameraInfo, topic,
                                       lambda m: self.received.append(stamp_ns(m.header)), mode,
                                       stamp_of=lambda m: stamp_ns(m.header), overlap_s=10.0, settle_s=0.3)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.sub_node)
        self.executor.add_node(self.pub_node)
        self.changes: list[str] = []
        self._next = 1

    def spin(self, seconds: float, publishers=(), refresh: bool = True) -> None:
        """Spin for ``seconds``, publishing one message on each of ``publishers`` every 5 ms, refreshing at 4 Hz."""
        end = time.monotonic() + seconds
        next_refresh = 0.0
        while time.monotonic() < end:
            for pub in publishers:
                msg = CameraInfo()
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(self._next, 1000)
                msg.header.stamp.nanosec *= 1_000_000
                self._next += 1
                pub.publish(msg)
            if refresh and time.monotonic() >= next_refresh:
                change = self.input.refresh()
                if change:
                    self.changes.append(change)
                next_refresh = time.monotonic() + 0.25
            # several callbacks per message sent: during a switch two subscriptions receive each one, and a
            # backlog would overflow the inputs' depth-5 history (a loss the test would blame on the switch)
            for _ in range(4):
                self.executor.spin_once(timeout_sec=0.00125)

    def wait(self, predicate, timeout: float = 15.0, publishers=()) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.spin(0.05, publishers)
        return predicate()

    def sent(self) -> int:
        return self._next - 1

    def close(self) -> None:
        self.input.destroy()
        self.executor.shutdown()
        self.sub_node.destroy_node()
        self.pub_node.destroy_node()


@pytest.fixture(scope='module')
def rcl():
    rclpy.init()
    yield
    rclpy.shutdown()


def test_auto_switches_both_ways_without_losing_or_repeating_a_message(rcl):
    g = Graph('qos_switch', 'auto')
    try:
        assert g.input.policy == BEST_EFFORT and 'no publisher' in g.input.describe()
        reliable = g.pub_node.create_publisher(CameraInfo, 'qos_switch', RELIABLE_QOS)
        assert g.wait(lambda: g.input.policy == RELIABLE and not g.input.switching)
        assert 'subscribing reliable instead of best_effort because 1 reliable publisher' in g.changes[0]
        # from here on every message must arrive exactly once, through both switches
        g.received.clear()
        first = g.sent() + 1
        best_effort = g.pub_node.create_publisher(CameraInfo, 'qos_switch', qos_profile_sensor_data)
        assert g.wait(lambda: g.input.policy == BEST_EFFORT and not g.input.switching, publishers=[reliable])
        assert '1 of 2 publishers best effort' in g.changes[1]
        g.pub_node.destroy_publisher(best_effort)
        assert g.wait(lambda: g.input.policy == RELIABLE and not g.input.switching, publishers=[reliable])
        last = g.sent()
        g.spin(0.5, refresh=False)  # let the last messages land
        stamps = [s for s in g.received if s >= first * 1_000_000]
        assert g.input.switches == 3
        assert len(stamps) == len(set(stamps)), 'a message was processed twice'
        expected = set(range(first, last + 1))
        missing = expected - {s // 1_000_000 for s in stamps}
        assert not missing, f'{len(missing)} of {len(expected)} messages lost across the switches'
        assert g.input.duplicates > 0, 'the switches overlapped no message: the test proves nothing'
    finally:
        g.close()


@pytest.mark.parametrize('mode, expected', [(RELIABLE, RELIABLE), (BEST_EFFORT, BEST_EFFORT)])
def test_forced_policies_never_change(rcl, mode, expected):
    g = Graph(f'qos_forced_{mode}', mode)
    try:
        g.pub_node.create_publisher(CameraInfo, f'qos_forced_{mode}', RELIABLE_QOS)
        g.pub_node.create_publisher(CameraInfo, f'qos_forced_{mode}', qos_profile_sensor_data)
        assert g.wait(lambda: len(g.input.offered) == 2)
        g.spin(0.5)
        assert g.input.policy == expected and g.changes == [] and g.input.switches == 0
        assert g.input.describe() == f'{expected} (forced by input_reliability)'
    finally:
        g.close()


def test_a_bad_mode_is_refused(rcl):
    node = Node('input_qos_bad')
    try:
        with pytest.raises(ValueError, match='input reliability must be one of auto, best_effort, reliable'):
            InputSubscription(node, CameraInfo, 'x', lambda m: None, 'sometimes', stamp_of=lambda m: 0)
    finally:
        node.destroy_node()
