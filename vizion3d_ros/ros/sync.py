"""Pairing image, camera_info and cloud messages by stamp (message_filters is not always installed).

Pure Python, no rclpy: stamps are integer nanoseconds. Approximate-time policy: when every input has
a message within ``slop`` of a newly arrived one, the closest of each form a set, which is emitted, and
everything at or before the emitted stamps is forgotten.
"""
from __future__ import annotations

from collections import deque
from typing import Any


class ApproximateSynchronizer:
    """Groups one message per input whose stamps all lie within ``slop_ns`` of each other."""

    def __init__(self, num_inputs: int, slop_ns: int, queue_size: int = 10) -> None:
        if num_inputs < 1 or slop_ns < 0 or queue_size < 1:
            raise ValueError('num_inputs >= 1, slop_ns >= 0 and queue_size >= 1 are required')
        self.slop_ns = int(slop_ns)
        self._queues: list[deque[tuple[int, Any]]] = [deque(maxlen=queue_size) for _ in range(num_inputs)]
        self.dropped = 0  # messages forgotten without being part of an emitted set

    def add(self, index: int, stamp_ns: int, msg: Any) -> tuple[Any, ...] | None:
        """Add a message of input ``index``; return a matched tuple (one per input) or None."""
        q = self._queues[index]
        if len(q) == q.maxlen:
            self.dropped += 1
        q.append((int(stamp_ns), msg))
        best: list[tuple[int, Any]] = []
        for j, other in enumerate(self._queues):
            if j == index:
                best.append((int(stamp_ns), msg))
                continue
            if not other:
                return None
            cand = min(other, key=lambda item: abs(item[0] - stamp_ns))
            if abs(cand[0] - stamp_ns) > self.slop_ns:
                return None
            best.append(cand)
        stamps = [s for s, _ in best]
        if max(stamps) - min(stamps) > self.slop_ns:
            return None
        for j, other in enumerate(self._queues):
            keep = [(s, m) for s, m in other if s > best[j][0]]
            self.dropped += len(other) - len(keep) - 1  # each queue holds its emitted message
            other.clear()
            other.extend(keep)
        return tuple(m for _, m in best)

    def clear(self) -> None:
        """Forget every queued message."""
        for q in self._queues:
            q.clear()
