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
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rclpy.node import Node

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


def run_until_stopped(name: str, make_node: Callable[[], Node], args: list[str] | None = None,
                      hard_exit: bool = False) -> int:
    """Run ``make_node()``'s node until SIGINT/SIGTERM and shut down cleanly; the executables' ``main``.

    ``hard_exit`` (the installed executables set it) ends the process with ``os._exit`` once the node
    and rclpy are shut down: third-party threads (torch, DDS) occasionally stalled interpreter teardown
    for ~20 s after a clean shutdown, which launch and systemd would then escalate to SIGKILL. A cleanup
    that takes over 10 s ends the process with exit code 1 and a line saying so.
    """
    import gc
    import os

    import rclpy
    from rclpy.executors import ExternalShutdownException

    from .allocator import keep_large_buffers

    keep_large_buffers()  # before the first big message: each VGA cloud would otherwise be fresh mmap pages
    signals = StopSignals().install()  # before rclpy.init, whose handlers chain to these
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # a signal shut the context down during startup (e.g. while a model was loading)
    finally:
        signals.stopping()

        def give_up() -> None:
            print(f'{name}: shutdown did not finish within 10 s; exiting anyway', file=sys.stderr, flush=True)
            os._exit(1)

        watchdog = threading.Timer(10.0, give_up)
        watchdog.daemon = True
        watchdog.start()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        # the DDS participant (and, with a shared-memory transport, its segment in /dev/shm) goes only
        # when its last handle is collected, and os._exit below would skip that
        node = None
        gc.collect()
        watchdog.cancel()
    if hard_exit:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
