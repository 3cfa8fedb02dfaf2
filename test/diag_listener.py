"""Listen to /diagnostics from a test client and read vizion3d_node's pipeline status as numbers."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy

# best effort matches a publisher of either reliability; a lost report is followed by the next one
DIAG_QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.BEST_EFFORT)


def level_int(level) -> int:
    """DiagnosticStatus.level as an int (rclpy gives the ``byte`` field as ``bytes``)."""
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


OK, WARN, ERROR, STALE = (level_int(x) for x in (DiagnosticStatus.OK, DiagnosticStatus.WARN,
                                                  DiagnosticStatus.ERROR, DiagnosticStatus.STALE))
LEVELS = {OK: 'OK', WARN: 'WARN', ERROR: 'ERROR', STALE: 'STALE'}


@dataclass
class PipelineStatus:
    """One '<node>: pipeline' DiagnosticStatus, with its KeyValues as a dict."""

    #: 0 OK, 1 WARN, 2 ERROR, 3 STALE
    level: int
    name: str
    message: str
    values: dict[str, str]
    received: float = field(default_factory=time.monotonic)

    @property
    def level_name(self) -> str:
        return LEVELS.get(self.level, str(self.level))

    @property
    def drops(self) -> dict[str, int]:
        """``dropped/<reason>`` counters by reason."""
        return {k.split('/', 1)[1]: int(v) for k, v in self.values.items() if k.startswith('dropped/')}

    def count(self, key: str, default: int = 0) -> int:
        """An integer KeyValue (``frames_processed``, ``dropped_total``)."""
        v = self.values.get(key)
        return default if v is None else int(v)


class DiagnosticsListener:
    """Collects the pipeline statuses of the node named ``node_name`` from /diagnostics.

    The subscription lives on ``node`` (a test client's node): spinning that node fills ``statuses``.
    """

    def __init__(self, node, node_name: str = 'vizion3d_node') -> None:
        self.node_name = node_name.strip('/').split('/')[-1]
        self.statuses: list[PipelineStatus] = []
        self.messages = 0
        self.sub = node.create_subscription(DiagnosticArray, '/diagnostics', self._on_msg, DIAG_QOS)

    def _matches(self, name: str) -> bool:
        head, _, tail = name.rpartition(': ')
        return tail == 'pipeline' and head.strip('/').split('/')[-1] == self.node_name

    def _on_msg(self, msg: DiagnosticArray) -> None:
        self.messages += 1
        for s in msg.status:
            if self._matches(s.name):
                self.statuses.append(PipelineStatus(level=level_int(s.level), name=s.name, message=s.message,
                                                    values={kv.key: kv.value for kv in s.values}))

    @property
    def latest(self) -> PipelineStatus | None:
        return self.statuses[-1] if self.statuses else None

    def since(self, t: float) -> list[PipelineStatus]:
        """Statuses received at or after monotonic time ``t``."""
        return [s for s in self.statuses if s.received >= t]

    def describe(self) -> str:
        """The latest status in words, for assertion messages."""
        s = self.latest
        if s is None:
            return (f'no "{self.node_name}: pipeline" status on /diagnostics ({self.messages} DiagnosticArray '
                    'messages seen)')
        return f'{s.level_name} {s.message!r} {s.values}'
