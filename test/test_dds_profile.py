"""config/fastdds_large_data.xml: what it sets, that Fast DDS loads it, and who applies it.

scripts/env.sh exports it when the shell names no profile; launch/vizion3d.launch.py passes it to the node
unless the environment already names one; fastdds_profile.short_heartbeat builds on it. Delivery with and
without it is measured by bench/bench_transport.py (test_bench_transport.py runs its smoke mode).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / 'config' / 'fastdds_large_data.xml'
NS = '{http://www.eprosima.com}'
VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
FOUR_K_CLOUD = 3840 * 2160 * 16


def _descriptors() -> dict[str, dict[str, str]]:
    root = ET.parse(PROFILE).getroot()
    out = {}
    for d in root.iter(f'{NS}transport_descriptor'):
        fields = {child.tag.removeprefix(NS): (child.text or '').strip() for child in d}
        out[fields['type']] = fields
    return out


def test_profile_sets_only_transports_shm_sized_for_large_clouds_and_udp_kept():
    root = ET.parse(PROFILE).getroot()
    assert root.tag == f'{NS}dds'
    profiles = root.find(f'{NS}profiles')
    assert [c.tag.removeprefix(NS) for c in profiles] == ['transport_descriptors', 'participant']  # no QoS
    participant = profiles.find(f'{NS}participant')
    assert participant.get('is_default_profile') == 'true'
    rtps = participant.find(f'{NS}rtps')
    assert rtps.findtext(f'{NS}useBuiltinTransports').strip() == 'false'
    used = [t.text.strip() for t in rtps.find(f'{NS}userTransports')]
    d = _descriptors()
    assert set(d) == {'SHM', 'UDPv4'} and used == [d['SHM']['transport_id'], d['UDPv4']['transport_id']]
    assert FOUR_K_CLOUD < int(d['SHM']['segment_size']) < 2**32  # a 4K cloud fits; uint32 in the schema
    assert int(d['SHM']['port_queue_capacity']) > FOUR_K_CLOUD // 65500  # a 4K cloud's fragments
    assert int(d['UDPv4']['receiveBufferSize']) >= 2_000_000 * 16  # a 2M-point cloud
    assert int(d['UDPv4']['sendBufferSize']) >= 2_000_000 * 16
    assert int(d['UDPv4']['maxInitialPeersRange']) >= 32  # as rmw_fastrtps sets it for LOCALHOST


def _participant_report(env: dict) -> subprocess.CompletedProcess:
    code = (
        "import rclpy\n"
        "rclpy.init(); node = rclpy.create_node('profile_probe')\n"
        "sizes = {}\n"
        "for line in open('/proc/self/maps'):\n"
        "    p = line.split(None, 5)\n"
        "    if len(p) == 6 and p[5].strip().startswith('/dev/shm/fastdds_'):\n"
        "        lo, hi = (int(x, 16) for x in p[0].split('-'))\n"
        "        sizes[p[5].strip()] = sizes.get(p[5].strip(), 0) + hi - lo\n"
        "print(max(sizes.values(), default=0))\n"
        "node.destroy_node(); rclpy.shutdown()\n")
    return subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=60)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    return {**env, **extra}


@pytest.mark.integration
def test_fast_dds_loads_the_profile_and_the_composed_test_profile(tmp_path):
    from fastdds_profile import profile_xml

    segment = int(_descriptors()['SHM']['segment_size'])
    default = _participant_report(_env())
    assert default.returncode == 0, default.stderr[-2000:]
    assert int(default.stdout.split()[-1]) < segment  # the default segment is 512 KiB

    loaded = _participant_report(_env(FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE)))
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert 'Error' not in loaded.stderr, loaded.stderr[-2000:]  # no XMLPARSER / transport errors
    assert int(loaded.stdout.split()[-1]) >= segment  # this participant sends from the profile's segment

    composed = tmp_path / 'composed.xml'
    composed.write_text(profile_xml(PROFILE))
    both = _participant_report(_env(FASTDDS_DEFAULT_PROFILES_FILE=str(composed)))
    assert both.returncode == 0 and 'Error' not in both.stderr, both.stderr[-2000:]
    assert int(both.stdout.split()[-1]) >= segment


def test_short_heartbeat_profile_is_the_environment_profile_plus_the_writer(tmp_path, monkeypatch):
    from fastdds_profile import PROFILE as WRITER_ONLY
    from fastdds_profile import environment_profile, profile_xml, short_heartbeat

    text = profile_xml(PROFILE)
    root = ET.fromstring(text.encode())
    profiles = root.find(f'{NS}profiles')
    assert [c.tag.removeprefix(NS) for c in profiles] == ['transport_descriptors', 'participant', 'data_writer']
    writer = profiles.find(f'{NS}data_writer')
    assert writer.get('is_default_profile') == 'true'
    assert writer.find(f'{NS}times/{NS}heartbeat_period/{NS}nanosec').text == '200000000'

    monkeypatch.setenv('FASTDDS_DEFAULT_PROFILES_FILE', str(PROFILE))
    assert environment_profile() == PROFILE
    with short_heartbeat(tmp_path):
        assert Path(os.environ['FASTDDS_DEFAULT_PROFILES_FILE']).read_text() == text
    assert os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] == str(PROFILE)
    monkeypatch.delenv('FASTDDS_DEFAULT_PROFILES_FILE')
    assert environment_profile() is None
    with short_heartbeat(tmp_path):
        assert Path(os.environ['FASTDDS_DEFAULT_PROFILES_FILE']).read_text() == WRITER_ONLY


def test_zombie_segments_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    import fcntl

    import fastdds_profile

    monkeypatch.setattr(fastdds_profile, 'SHM', tmp_path)
    names = {'live': 'fastdds_0123456789abcdef', 'dead': 'fastdds_fedcba9876543210',
             'nolock': 'fastdds_00000000000000aa'}
    for n in names.values():
        (tmp_path / n).write_bytes(b'x' * 4096)
    (tmp_path / f"{names['live']}_el").touch()
    (tmp_path / f"{names['dead']}_el").touch()
    with open(tmp_path / f"{names['live']}_el", 'ab') as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running participant holds it (another open file description)
        assert fastdds_profile.segment_names() == set(names.values())
        assert fastdds_profile.remove_zombie_segments(names.values(), settle_s=0.01) >= 4096
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [names['live'], f"{names['live']}_el", names['nolock']])


def _env_sh(prefix: str) -> str:
    run = subprocess.run(['bash', '-c', f'{prefix}; source scripts/env.sh >/dev/null; '
                          'echo "${FASTDDS_DEFAULT_PROFILES_FILE-<unset>}"'],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip().splitlines()[-1]


def test_env_sh_exports_the_profile_unless_the_shell_names_one():
    assert Path(_env_sh('true')) == PROFILE
    assert _env_sh('export FASTDDS_DEFAULT_PROFILES_FILE=/robot/profile.xml') == '/robot/profile.xml'
    assert _env_sh('export FASTDDS_DEFAULT_PROFILES_FILE=') == '<unset>'  # empty = none


def _launch_module():
    pytest.importorskip('launch')
    pytest.importorskip('launch_ros')
    import importlib.util

    spec = importlib.util.spec_from_file_location('vizion3d_launch', ROOT / 'launch' / 'vizion3d.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_sets_the_profile_for_fast_dds_2_and_3_unless_the_environment_has_one():
    env_for = _launch_module().dds_profile_env
    assert env_for('/p.xml', {}) == {'FASTDDS_DEFAULT_PROFILES_FILE': '/p.xml',
                                     'FASTRTPS_DEFAULT_PROFILES_FILE': '/p.xml'}
    assert env_for('', {}) == {} and env_for('none', {}) == {} and env_for("''", {}) == {}
    assert env_for('/p.xml', {'FASTDDS_DEFAULT_PROFILES_FILE': '/mine.xml'}) == {}
    assert env_for('/p.xml', {'FASTRTPS_DEFAULT_PROFILES_FILE': '/mine.xml'}) == {}
    assert env_for('/p.xml', {'FASTDDS_DEFAULT_PROFILES_FILE': ''}) != {}  # empty names no profile


def _ros2_launch_node_env(tmp_path: Path, args: list[str], env: dict) -> dict[str, str]:
    """Start ``ros2 launch vizion3d_ros vizion3d.launch.py`` and return vizion3d_node's environment."""
    psutil = pytest.importorskip('psutil')
    log = open(tmp_path / 'launch.log', 'w')  # noqa: SIM115
    proc = subprocess.Popen(['ros2', 'launch', 'vizion3d_ros', 'vizion3d.launch.py', 'autostart:=false',
                             'model:=/nonexistent/model.pt', *args], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    if any('vizion3d_node' in part for part in child.cmdline()):
                        return child.environ()
                except psutil.Error:
                    continue
            assert proc.poll() is None, (tmp_path / 'launch.log').read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError('vizion3d_node did not start: ' + (tmp_path / 'launch.log').read_text()[-3000:])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        log.close()


@pytest.mark.integration
def test_ros2_launch_gives_the_node_the_installed_profile(tmp_path):
    import shutil

    if shutil.which('ros2') is None:
        pytest.skip('ros2 (ros2cli + launch) is not installed')
    from ament_index_python.packages import get_package_share_directory

    installed = Path(get_package_share_directory('vizion3d_ros')) / 'config' / 'fastdds_large_data.xml'
    assert installed.is_file(), 'CMakeLists installs config/: run `make setup` (colcon build) again'
    assert installed.read_bytes() == PROFILE.read_bytes()

    node_env = _ros2_launch_node_env(tmp_path, [], _env())
    assert node_env.get('FASTDDS_DEFAULT_PROFILES_FILE') == str(installed)
    assert node_env.get('FASTRTPS_DEFAULT_PROFILES_FILE') == str(installed)

    node_env = _ros2_launch_node_env(tmp_path, ['dds_profile:=none'], _env())
    assert not set(VARIABLES) & set(node_env)

    mine = tmp_path / 'mine.xml'
    mine.write_text(PROFILE.read_text())
    node_env = _ros2_launch_node_env(tmp_path, [], _env(FASTDDS_DEFAULT_PROFILES_FILE=str(mine)))
    assert node_env.get('FASTDDS_DEFAULT_PROFILES_FILE') == str(mine)
    assert 'FASTRTPS_DEFAULT_PROFILES_FILE' not in node_env


@pytest.mark.integration
def test_node_removes_its_shared_memory_segment_when_it_stops(tmp_path):
    from node_harness import NodeProcess

    node = NodeProcess(tmp_path / 'node.log', autostart='false')
    try:
        node.wait_for_log('autostart is off', timeout=120)
        maps = Path(f'/proc/{node.pid}/maps').read_text().splitlines()
        segments = {line.split()[-1] for line in maps if line.split()[-1].startswith('/dev/shm/fastdds_')
                    and '_port' not in line}
        assert segments, 'the node maps no Fast DDS segment'
    finally:
        rc = node.stop()
    assert rc == 0, node.log()[-3000:]
    left = sorted(s for s in segments if Path(s).exists())
    assert not left, f'left in /dev/shm after a clean stop: {left}'
