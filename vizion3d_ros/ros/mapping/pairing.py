"""Pairs each objects message with its cloud by exact stamp, in bounded buffers.

vizion3d_node stamps its objects with the header of the cloud it lifted them onto, so partners share a
stamp exactly; whichever arrives first waits. Each input keeps at most ``queue_size`` unpaired messages:
when one more arrives the oldest is pushed out and counted, so a partner that never comes (a dropped
cloud, a different camera) costs bounded memory and shows up in the diagnostics.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any


class StampPairer:
    """``add_objects``/``add_cloud`` return ``(stamp, objects, cloud)`` once both halves are there, else None."""

    def __init__(self, queue_size: int = 10) -> None:
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        self.queue_size = int(queue_size)
        self._objects: OrderedDict[int, Any] = OrderedDict()
        self._clouds: OrderedDict[int, Any] = OrderedDict()
        self.pushed_out = 0  # unpaired messages dropped so far

    def add_objects(self, stamp: int, msg: Any) -> tuple[int, Any, Any] | None:
        """Offer an objects message; the completed pair, if its cloud is waiting."""
        cloud = self._add(stamp, msg, self._objects, self._clouds)
        return None if cloud is None else (stamp, msg, cloud)

    def add_cloud(self, stamp: int, msg: Any) -> tuple[int, Any, Any] | None:
        """Offer a cloud; the completed pair, if its objects message is waiting."""
        objects = self._add(stamp, msg, self._clouds, self._objects)
        return None if objects is None else (stamp, objects, msg)

    def _add(self, stamp: int, msg: Any, mine: OrderedDict, theirs: OrderedDict) -> Any:
        partner = theirs.pop(stamp, None)
        if partner is not None:
            return partner
        mine[stamp] = msg  # a re-sent stamp replaces the waiting one
        mine.move_to_end(stamp)
        while len(mine) > self.queue_size:
            mine.popitem(last=False)
            self.pushed_out += 1
        return None

    def waiting(self) -> tuple[int, int]:
        """Unpaired objects messages and clouds held now."""
        return len(self._objects), len(self._clouds)

    def clear(self) -> None:
        """Forget every waiting message (deactivation)."""
        self._objects.clear()
        self._clouds.clear()
