"""Stamp checks of frames: out of order (older than the last processed one) and stale (too old).

Pure Python on integer nanoseconds, so the policy is tested without a clock or a node.
"""
from __future__ import annotations

from .drops import FrameRejectedError

#: A frame further back than this behind the last processed one is a restarted source, not a late frame.
REWIND_S = 5.0


class StampGate:
    """Remembers the newest processed stamp and rejects frames that are older or too old.

    Late frames (up to ``rewind_s`` behind the last processed one) are dropped as out of order. A frame
    much further back means the source started over (a driver restarted, a bag played again without
    use_sim_time): dropping it would drop that source for good, so the gate starts over instead.
    """

    def __init__(self, rewind_s: float = REWIND_S) -> None:
        self.last_ns: int | None = None
        self.rewind_ns = int(rewind_s * 1e9)

    def check(self, stamp_ns: int, now_ns: int, max_age_s: float) -> bool:
        """Raise :class:`FrameRejectedError` ('out_of_order' or 'stale') unless the frame may be processed.

        Returns True when the frame rewound the stream (see the class docstring) and the gate started
        over. ``max_age_s`` = 0 turns the age check off; so does ``now_ns`` = 0 (a simulated clock that
        has not received /clock yet). Equal stamps are not out of order (a frame may be re-sent).
        """
        rewound = False
        if self.last_ns is not None and stamp_ns < self.last_ns:
            if self.last_ns - stamp_ns <= self.rewind_ns:
                raise FrameRejectedError('out_of_order', f'frame stamped {_fmt(stamp_ns)} is older than the last '
                                         f'processed frame ({_fmt(self.last_ns)})')
            self.reset()
            rewound = True
        if max_age_s > 0 and now_ns > 0:
            age = (now_ns - stamp_ns) / 1e9
            if age > max_age_s:
                raise FrameRejectedError('stale', f'frame stamped {_fmt(stamp_ns)} is {age:.3f} s old '
                                         f'(max_frame_age {max_age_s:g} s); is the sender\'s clock in sync '
                                         'with this node\'s (use_sim_time)?')
        return rewound

    def accept(self, stamp_ns: int) -> None:
        """Record a processed frame's stamp."""
        if self.last_ns is None or stamp_ns > self.last_ns:
            self.last_ns = stamp_ns

    def reset(self) -> None:
        """Forget the last stamp (after a deactivation or a backwards clock jump, e.g. a bag loop)."""
        self.last_ns = None


def stamp_ns(header) -> int:
    """A std_msgs/Header's stamp in integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _fmt(ns: int) -> str:
    return f'{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}'
