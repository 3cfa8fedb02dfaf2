"""The ROS tools PyPI lacks (``ros2`` CLI, launch, tf2_ros, vision_msgs): present, or a clear verdict.

On a robot they come with the ROS install; here ``make setup`` builds them from ``../shared/ros_src`` into
an underlay that ``scripts/env.sh`` sources. Where those sources exist the tools must be there, so a test
that needs one *fails* when it is missing (a broken setup, not an optional extra); on a machine without
the sources (a bare pip install) such tests are skipped, as the package itself runs without them.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('VIZION3D_SHARED', ROOT.parent / 'shared'))
ROS_SRC = SHARED / 'ros_src'

#: the Python module behind each tool
MODULES = {'ros2': 'ros2cli', 'launch': 'launch_ros', 'tf2_ros': 'tf2_ros', 'vision_msgs': 'vision_msgs'}


def missing(*tools: str) -> list[str]:
    """Which of ``tools`` (keys of :data:`MODULES`) cannot be used here."""
    gone = [t for t in tools if importlib.util.find_spec(MODULES[t]) is None]
    if 'ros2' in tools and 'ros2' not in gone and shutil.which('ros2') is None:
        gone.append('ros2')
    return gone


def require_ros_tools(*tools: str) -> None:
    """Fail (sources in ../shared/ros_src: setup should have built them) or skip (no sources) when missing."""
    gone = missing(*tools)
    if not gone:
        return
    if ROS_SRC.is_dir():
        pytest.fail(f'{", ".join(gone)} missing although {ROS_SRC} holds their sources: run `make setup` '
                    '(it builds them into the ROS underlay) and `source scripts/env.sh`')
    pytest.skip(f'{", ".join(gone)} not installed (no ROS install and no {ROS_SRC} to build them from)')


def ros2(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run ``ros2 ARGS`` (the real CLI) once and return its completed process; output as text."""
    return subprocess.run(['ros2', *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONUNBUFFERED='1'))


def ros2_until(predicate, *args: str, attempts: int = 10, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """``ros2 ARGS`` until ``predicate(completed)`` holds: ``--no-daemon`` verbs discover the graph afresh
    each call and may miss a node that is up ("Node not found"), so a verb is retried a few times.

    A ``ros2`` process that dies by a signal is retried too: the CLI itself occasionally segfaults in its
    own teardown (seen once in CI: ``ros2 param list`` exit -11, no output), which says nothing of the node.
    """
    proc = None
    for _ in range(attempts):
        proc = ros2(*args, timeout=timeout)
        if proc.returncode >= 0 and predicate(proc):
            return proc
        time.sleep(0.5)  # another discovery round
    raise AssertionError(f'ros2 {" ".join(args)} never gave the expected answer; last exit {proc.returncode}:\n'
                         f'{proc.stdout}\n{proc.stderr}')
