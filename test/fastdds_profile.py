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

:func:`remove_zombie_segments` removes the shared-memory segments dead processes left in /dev/shm
(conftest runs it after each module): with the profile each is 128 MiB of RAM.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
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


SHM = Path('/dev/shm')
SEGMENT = re.compile(r'^fastdds_[0-9a-z]{16}$')


def segment_names() -> set[str]:
    """The Fast DDS shared-memory segments in /dev/shm now (file names)."""
    try:
        return {n for n in os.listdir(SHM) if SEGMENT.match(n)}
    except OSError:
        return set()


def _owner_alive(lock: Path) -> bool:
    """Whether the segment's ``_el`` lock file is locked, i.e. its owner runs (``fastdds shm clean``'s test)."""
    try:
        with open(lock, 'ab') as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True


def remove_zombie_segments(names: Iterable[str], settle_s: float = 0.5) -> int:
    """Remove the segments among ``names`` whose owner process is gone; returns the bytes freed.

    A participant that ends without being destroyed (SIGKILL, or ``os._exit`` while a node is still
    referenced) leaves its segment in /dev/shm, and with config/fastdds_large_data.xml that is 128 MiB
    of RAM each. A segment goes when its ``_el`` lock file is unlocked (what ``fastdds shm clean``
    checks) twice, ``settle_s`` apart (not one being created); the caller passes the names it may touch.
    """
    def unlocked(among: Iterable[str]) -> list[str]:
        return [n for n in among if (SHM / f'{n}_el').exists() and not _owner_alive(SHM / f'{n}_el')]

    candidates = unlocked(names)
    if not candidates:
        return 0
    time.sleep(settle_s)
    freed = 0
    for name in unlocked(candidates):
        try:
            freed += (SHM / name).stat().st_blocks * 512
            (SHM / name).unlink()
            (SHM / f'{name}_el').unlink(missing_ok=True)
        except OSError:
            continue
    return freed
