"""A Fast DDS profile with a short heartbeat period, for tests that send many VGA frames to a node.

Fast DDS repairs a lost sample of a reliable writer after the writer's next heartbeat, 3 s by default.
VGA clouds (4.9 MB) sent to vizion3d_node are repaired that way now and then (about one frame in three
in ``test_bad_input.py`` on this machine, with Fast DDS's default transports), so a test that waits for
each frame in turn spends most of its time waiting for heartbeats. With a 0.2 s heartbeat the same repair
takes 0.2 s. Only timing changes: reliability, history and every other QoS stay as the test and the node
set them.

The profile is the one the environment already names (``scripts/env.sh`` sets
``config/fastdds_large_data.xml``, the transport users get) with a default ``data_writer`` element added,
so these tests run on the same transport as the others; with no profile in the environment it holds the
``data_writer`` element alone, as before.
"""
from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
SHIPPED = Path(__file__).resolve().parents[1] / 'config' / 'fastdds_large_data.xml'
WRITER = """  <data_writer profile_name="vizion3d_test_writer" is_default_profile="true">
    <times><heartbeat_period><sec>0</sec><nanosec>200000000</nanosec></heartbeat_period></times>
  </data_writer>
"""
PROFILE = f"""<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com"><profiles>
{WRITER}</profiles></dds>
"""


def profile_xml(base: Path | None) -> str:
    """The short-heartbeat profile: ``base`` (a Fast DDS XML profile) with :data:`WRITER` added to its
    ``<profiles>``; just the writer when ``base`` is None."""
    if base is None:
        return PROFILE
    text = Path(base).read_text()
    if text.count('</profiles>') != 1:
        raise ValueError(f'{base}: expected one <profiles> element to add the test data_writer to')
    out = text.replace('</profiles>', WRITER + '</profiles>')
    ET.fromstring(out.encode())  # still well-formed
    return out


def environment_profile() -> Path | None:
    """The profile Fast DDS would load now (``FASTDDS_DEFAULT_PROFILES_FILE``), if it names a file."""
    value = os.environ.get(VARIABLE)
    return Path(value) if value and Path(value).is_file() else None


@contextlib.contextmanager
def short_heartbeat(folder: Path) -> Iterator[None]:
    """Set FASTDDS_DEFAULT_PROFILES_FILE for this process's next rclpy context and the nodes it starts."""
    path = Path(folder) / 'fastdds_short_heartbeat.xml'
    path.write_text(profile_xml(environment_profile()))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(VARIABLE, str(path))
        yield
