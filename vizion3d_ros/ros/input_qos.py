"""Input subscriptions whose reliability follows what the publishers offer (``input_reliability: auto``).

Why: with Fast DDS defaults a best-effort subscription receives almost none of the multi-megabyte clouds
a *reliable* publisher sends (0 of 20 VGA clouds on one host), while a reliable subscription cannot match
a best-effort publisher at all. Neither fixed choice works with every camera driver, and rclpy's
``BEST_AVAILABLE`` (absent in Humble) resolves only against the publishers present when the subscription is
created; a robot's node usually starts before its camera. So each input is subscribed best effort (it
matches every publisher) until publishers are discovered, then re-subscribed with what they offer: all
reliable -> reliable, any best effort -> best effort. The check runs again whenever asked (the node calls
:meth:`InputSubscription.refresh` from a 1 s timer), so publishers that come, go or change are followed.

Changing policy is make-before-break: the new subscription is created first and the old one is destroyed
only once the new one has matched the publishers (or after ``overlap_s``), so no message is lost in the
switch; while both exist, a message whose stamp already came through the other subscription is dropped, so
none is processed twice.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

RELIABILITY_MODES = ('auto', 'best_effort', 'reliable')
BEST_EFFORT, RELIABLE = 'best_effort', 'reliable'


def input_qos(policy: str) -> QoSProfile:
    """The inputs' QoS for ``policy``: the sensor-data profile (best effort, depth 5) or its reliable twin."""
    if policy == RELIABLE:
        return QoSProfile(depth=qos_profile_sensor_data.depth, reliability=ReliabilityPolicy.RELIABLE)
    return qos_profile_sensor_data


def offered_reliability(endpoints: Iterable) -> list[str]:
    """``'reliable'`` / ``'best_effort'`` per discovered publisher (``TopicEndpointInfo``); unknown -> best effort."""
    return [RELIABLE if e.qos_profile.reliability == ReliabilityPolicy.RELIABLE else BEST_EFFORT for e in endpoints]


def choose_reliability(offered: Iterable[str], current: str) -> str:
    """The subscription policy that receives from every publisher.

    All reliable -> reliable, any best effort -> best effort; no publisher -> ``current`` (nothing to decide
    until one shows up).
    """
    offered = list(offered)
    if not offered:
        return current
    return RELIABLE if all(p == RELIABLE for p in offered) else BEST_EFFORT


def compatible(subscription: str, publisher: str) -> bool:
    """DDS matching rule for reliability: a reliable reader needs a reliable writer."""
    return subscription == BEST_EFFORT or publisher == RELIABLE


@dataclass
class _Retiring:
    """The subscription a policy change replaces, kept until its successor has matched."""

    subscription: object
    since: float


class InputSubscription:
    """One input topic's subscription, re-created when the publishers' reliability calls for another policy.

    ``mode`` is ``auto``, ``best_effort`` or ``reliable`` (the last two never change). ``callback(msg)``
    gets every message once. ``stamp_of(msg)`` (integer ns) tells duplicates apart during a switch.
    Runs on the node's executor: :meth:`refresh` and the callbacks never run at the same time.
    """

    def __init__(self, node, msg_type, topic: str, callback: Callable, mode: str,
                 stamp_of: Callable[[object], int], event_callbacks: Callable[[], object] | None = None,
                 overlap_s: float = 10.0, settle_s: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in RELIABILITY_MODES:
            raise ValueError(f'input reliability must be one of {", ".join(RELIABILITY_MODES)}; got {mode!r}')
        self._node, self._type, self._callback, self._stamp_of = node, msg_type, callback, stamp_of
        self._events = event_callbacks
        self.mode = mode
        self.overlap_s, self.settle_s, self._clock = overlap_s, settle_s, clock
        self.policy = RELIABLE if mode == RELIABLE else BEST_EFFORT
        #: Why the policy is what it is (logged on every change, shown on /diagnostics).
        self.reason = 'no publisher seen yet'
        self.offered: list[str] = []
        self.last_message: float | None = None
        self.switches = 0
        self.duplicates = 0
        self._retiring: _Retiring | None = None
        self._matched_since: float | None = None
        # stamps delivered by each subscription while a switch is under way (and a while after it)
        self._seen: dict[int, deque[int]] = {}
        self._dedupe_until = 0.0
        self._name = topic  # as given: every re-creation goes through the same remapping
        self._subscription = self._subscribe(self.policy)
        #: The resolved (remapped, namespaced) topic name.
        self.topic: str = self._subscription.topic_name

    # ------------------------------------------------------------------ state
    @property
    def switching(self) -> bool:
        return self._retiring is not None

    def matched_publishers(self) -> int | None:
        """Publishers the current subscription has matched (None where rclpy cannot tell: Humble)."""
        count = getattr(self._subscription, 'get_publisher_count', None)
        return count() if count is not None else None

    def describe(self) -> str:
        """``'reliable (auto: 2 reliable publishers)'`` and the like, for logs and /diagnostics."""
        if self.mode != 'auto':
            return f'{self.policy} (forced by input_reliability)'
        return f'{self.policy} (auto: {self.reason})'

    # ------------------------------------------------------------------ graph check
    def refresh(self) -> str | None:
        """Re-read the publishers and switch policy if they call for it; the log line of a switch, or None."""
        now = self._clock()
        self.offered = offered_reliability(self._node.get_publishers_info_by_topic(self.topic))
        self._finish_switch(now)
        if self.mode != 'auto' or self._retiring is not None:
            return None
        wanted = choose_reliability(self.offered, self.policy)
        if self.offered:
            n, n_rel = len(self.offered), sum(p == RELIABLE for p in self.offered)
            if n_rel in (0, n):
                self.reason = f'{n} {"reliable" if n_rel else "best-effort"} publisher{"s" * (n != 1)}'
            else:
                self.reason = f'{n - n_rel} of {n} publishers best effort'
        if wanted == self.policy:
            return None
        old = self.policy
        self._retiring = _Retiring(self._subscription, now)
        self._matched_since = None
        self._dedupe_until = float('inf')
        self.policy = wanted
        self._subscription = self._subscribe(wanted)
        self.switches += 1
        return (f'input {self.topic}: subscribing {wanted} instead of {old} because {self.reason} '
                f'(input_reliability auto); the {old} subscription stays until the new one has matched')

    def _finish_switch(self, now: float) -> None:
        if self._retiring is None:
            return
        needed = sum(compatible(self.policy, p) for p in self.offered)
        matched = self.matched_publishers()
        if matched is None:  # cannot tell: keep the overlap for its full length
            ready = False
        else:
            ready = matched >= needed
        if ready and self._matched_since is None:
            self._matched_since = now
        elif not ready:
            self._matched_since = None
        settled = self._matched_since is not None and now - self._matched_since >= self.settle_s
        if settled or now - self._retiring.since >= self.overlap_s:
            self._node.destroy_subscription(self._retiring.subscription)
            self._retiring = None
            # a reliable reader may still deliver, late, a sample the old one already handed over
            self._dedupe_until = now + self.overlap_s

    # ------------------------------------------------------------------ messages
    def _subscribe(self, policy: str):
        kwargs = {'event_callbacks': self._events()} if self._events is not None else {}
        sub = None

        def on_message(msg) -> None:
            self._on_message(sub, msg)
        sub = self._node.create_subscription(self._type, self._name, on_message, input_qos(policy), **kwargs)
        return sub

    def _on_message(self, sub, msg) -> None:
        now = self._clock()
        if self._retiring is not None or now < self._dedupe_until:
            stamp = self._stamp_of(msg)
            key = id(sub)
            if any(stamp in seen for other, seen in self._seen.items() if other != key):
                self.duplicates += 1
                return
            self._seen.setdefault(key, deque(maxlen=64)).append(stamp)
        elif self._seen:
            self._seen.clear()
        self.last_message = now
        self._callback(msg)

    def destroy(self) -> None:
        """Destroy the subscription(s)."""
        if self._retiring is not None:
            self._node.destroy_subscription(self._retiring.subscription)
            self._retiring = None
        self._node.destroy_subscription(self._subscription)
