"""A one-slot mailbox: producers overwrite, one consumer takes the newest item.

This is how the node keeps latency flat when the model is slower than the camera: callbacks never
block, and a frame that was not picked up before a newer one arrived is dropped (and counted).
"""
from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar('T')


class LatestSlot(Generic[T]):
    """Thread-safe single-item slot holding only the newest value."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.replaced = 0  # items overwritten before a consumer took them

    def put(self, item: T) -> None:
        """Store ``item``, replacing (and counting) any item not yet taken. Never blocks for long."""
        with self._cond:
            if self._item is not None:
                self.replaced += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float | None = None) -> T | None:
        """Wait up to ``timeout`` seconds for an item and remove it; None on timeout or close."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake any waiting consumer for good."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed
