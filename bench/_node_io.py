"""The real vizion3d_node as a child process: start, wait for a log line, CPU time, stop.

Shared by the ``bench/`` scripts that run the node and by the integration tests' harness; the frames,
the RSS reading and the DDS client of the benchmarks come from ``soak.py``.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, in seconds (psutil, else ``/proc/<pid>/stat``); NaN if gone."""
    try:
        import psutil
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - psutil.NoSuchProcess and friends
        return float('nan')
    try:
        # fields after the parenthesised command name: state is field 3, utime 14, stime 15
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except OSError:
        return float('nan')
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class NodeError(AssertionError):
    """The node died or did not log what was awaited (an AssertionError: tests using it fail, not error)."""


class NodeRun:
    """``vizion3d_node`` (or another ``executable`` of the package) with ``params`` as a child process.

    In ``namespace`` if given; its output goes to ``log_path``.

    The one way the bench scripts and the integration tests (``test/node_harness.py``) run the node.
    ``debug_log`` turns on the node's own logger at debug level (its per-frame timing line).
    """

    def __init__(self, log_path: Path, namespace: str = '', params: dict[str, str] | None = None,
                 debug_log: bool = False, executable: str = 'vizion3d_node') -> None:
        self.cmd = [executable, '--ros-args'] + (['-r', f'__ns:={namespace}'] if namespace else [])
        for k, v in (params or {}).items():
            self.cmd += ['-p', f'{k}:={v}']
        if debug_log:  # the node's logger only: rcl's debug output would drown it
            logger = '.'.join([*namespace.strip('/').split('/'), executable]).lstrip('.')
            self.cmd += ['--log-level', f'{logger}:=debug']
        self.log_path = Path(log_path)
        env = dict(os.environ, PYTHONUNBUFFERED='1', RCUTILS_LOGGING_BUFFERED_STREAM='0')
        with open(self.log_path, 'w') as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, pattern: str, timeout: float = 60.0) -> re.Match:
        """Wait until the log matches ``pattern``; :class:`NodeError` (with the log) if the node dies or times out."""
        m = wait_for_pattern(self.log, pattern, timeout, lambda: self.alive)
        if m:
            return m
        if not self.alive:
            raise NodeError(f'node exited with {self.proc.returncode}:\n{self.log()[-4000:]}')
        raise NodeError(f'{pattern!r} not in node log after {timeout} s:\n{self.log()[-4000:]}')

    def wait_loaded(self, timeout: float) -> re.Match:
        """Wait for 'model PATH loaded on DEVICE;' (groups 1 and 2)."""
        return self.wait_for_log(r'model (\S+) loaded on (\S+?);', timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (as launch and systemd do), then SIGKILL if it hangs; returns the exit code."""
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_for_pattern(read, pattern: str, timeout: float, running) -> re.Match | None:
    """Poll ``read()`` (a log another process writes) until it matches ``pattern``.

    None when ``running()`` turns false without a match, or after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, read())
        if m or not running() or time.monotonic() >= deadline:
            return m
        time.sleep(0.05)


def matched_alike(node, pub) -> bool:
    """Whether every subscription on ``pub``'s topic has the publisher's reliability and has matched it.

    vizion3d_node's ``input_reliability: auto`` subscribes best effort until it sees a publisher, then
    with the publisher's reliability (both subscriptions are listed during the switch): a client that
    publishes before this holds may lose its first large message.
    """
    subs = node.get_subscriptions_info_by_topic(pub.topic_name)
    alike = [e for e in subs if e.qos_profile.reliability == pub.qos_profile.reliability]
    return len(alike) == len(subs) > 0 and pub.get_subscription_count() >= len(subs)
