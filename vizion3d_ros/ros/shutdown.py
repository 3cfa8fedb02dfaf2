"""Stopping on SIGINT / SIGTERM exactly once, however many signals arrive.

`ros2 launch` stops a node by sending it SIGINT, and when launch itself got the ctrl-c (the terminal
signals the whole process group) the node receives a second one a moment later; launch escalates to
SIGTERM, and systemd or docker send SIGTERM to every process of a service. rclpy's handler shuts the
context down and then chains to Python's, which raises ``KeyboardInterrupt`` wherever the main thread is:
the second signal used to land inside ``destroy_node`` and end the process with a traceback and exit
code -2. :class:`StopSignals` turns the first signal into one ``KeyboardInterrupt`` (which ends the spin)
and every later one into a log line, so the cleanup always runs to its end.
"""
from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Python handlers for SIGINT and SIGTERM: the first raises ``KeyboardInterrupt``, later ones are ignored.

    Install before ``rclpy.init``: rclpy's own handler (which wakes the executor and shuts the context
    down) then chains to these. Call :meth:`stopping` once shutdown has begun for any reason, so that a
    signal arriving during the cleanup is ignored too.
    """

    def __init__(self) -> None:
        self.received: list[str] = []
        self._stopping = False

    def install(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for s in SIGNALS:
                signal.signal(s, self._handle)
        return self

    def stopping(self) -> None:
        """Shutdown has begun: from now on every signal is only noted."""
        self._stopping = True

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if not self._stopping:
            self._stopping = True
            raise KeyboardInterrupt(name)
        print(f'vizion3d_node: {name} received while shutting down; finishing the shutdown first',
              file=sys.stderr, flush=True)
