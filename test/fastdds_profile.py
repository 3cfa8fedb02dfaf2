"""A Fast DDS profile with a short heartbeat period, for tests that send many VGA frames to a node.

Fast DDS repairs a lost sample of a reliable writer after the writer's next heartbeat, 3 s by default.
VGA clouds (4.9 MB) sent to vizion3d_node are repaired that way now and then (about one frame in three
in ``test_bad_input.py`` on this machine), so a test that waits for each frame in turn spends most of
its time waiting for heartbeats. With a 0.2 s heartbeat the same repair takes 0.2 s. Only timing
changes: reliability, history and every other QoS stay as the test and the node set them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <data_writer profile_name="vizion3d_test_writer" is_default_profile="true">
    <times><heartbeat_period><sec>0</sec><nanosec>200000000</nanosec></heartbeat_period></times>
  </data_writer>
</profiles></dds>
"""


@contextlib.contextmanager
def short_heartbeat(folder: Path) -> Iterator[None]:
    """Set FASTDDS_DEFAULT_PROFILES_FILE for this process's next rclpy context and the nodes it starts."""
    path = Path(folder) / 'fastdds_short_heartbeat.xml'
    path.write_text(PROFILE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('FASTDDS_DEFAULT_PROFILES_FILE', str(path))
        yield
