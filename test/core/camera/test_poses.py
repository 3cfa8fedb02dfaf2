"""Pose interpolation at a stamp, and the bounded live pose history the map node looks poses up in."""
from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vizion3d_ros.core.camera.poses import PoseHistory, PoseLookup, interpolate_poses

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000  # a wall-clock epoch stamp: large ns values must keep their precision
S45 = math.sqrt(0.5)
YAW90 = (0.0, 0.0, S45, S45)
IDENTITY = (0.0, 0.0, 0.0, 1.0)


def _yaw(pose: np.ndarray) -> float:
    return math.degrees(math.atan2(pose[1, 0], pose[0, 0]))


def test_midpoint_of_a_90_degree_yaw_is_45_degrees_and_the_mean_translation():
    stamps = np.array([T0, T0 + 100 * MS])
    poses = interpolate_poses(stamps, [[0, 0, 0], [1, 2, -4]], [IDENTITY, YAW90],
                              np.array([T0 + 50 * MS, T0 + 25 * MS]))
    assert poses.shape == (2, 4, 4)
    assert _yaw(poses[0]) == pytest.approx(45.0, abs=1e-9)
    np.testing.assert_allclose(poses[0, :3, 3], [0.5, 1.0, -2.0], atol=1e-12)
    assert _yaw(poses[1]) == pytest.approx(22.5, abs=1e-9)
    np.testing.assert_allclose(poses[1, :3, 3], [0.25, 0.5, -1.0], atol=1e-12)
    np.testing.assert_allclose(poses[:, 3], [[0, 0, 0, 1]] * 2)


def test_values_are_held_at_the_ends():
    stamps = np.array([T0, T0 + 100 * MS])
    at = np.array([T0 - 10_000 * MS, T0, T0 + 100 * MS, T0 + 10_000 * MS])
    poses = interpolate_poses(stamps, [[1, 0, 0], [3, 0, 0]], [IDENTITY, YAW90], at)
    np.testing.assert_allclose(poses[:, 0, 3], [1, 1, 3, 3], atol=1e-12)
    np.testing.assert_allclose([_yaw(p) for p in poses], [0, 0, 90, 90], atol=1e-9)


def test_a_single_sample_is_constant():
    poses = interpolate_poses(np.array([T0]), [[1, 2, 3]], [YAW90], np.array([0, T0, T0 + 10**12]))
    expected = np.eye(4)
    expected[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    expected[:3, 3] = [1, 2, 3]
    for pose in poses:
        np.testing.assert_allclose(pose, expected, atol=1e-12)
    assert interpolate_poses(np.array([T0]), [[1, 2, 3]], [YAW90], np.array([], np.int64)).shape == (0, 4, 4)


def test_matches_scipy_per_interval_on_random_data():
    rng = np.random.default_rng(7)
    stamps = T0 + np.cumsum(rng.integers(1 * MS, 50 * MS, 30))
    t = rng.normal(size=(30, 3))
    q = Rotation.random(30, random_state=3).as_quat()
    q[::2] *= -1  # q and -q are the same rotation: the interpolation must take the short way either way
    at = rng.integers(stamps[0], stamps[-1], 200)
    poses = interpolate_poses(stamps, t, q, at)
    i = np.searchsorted(stamps, at, side='right') - 1
    w = (at - stamps[i]) / (stamps[i + 1] - stamps[i])
    r0, r1 = Rotation.from_quat(q[i]), Rotation.from_quat(q[i + 1])
    expected = r0 * Rotation.from_rotvec((r0.inv() * r1).as_rotvec() * w[:, None])
    np.testing.assert_allclose(poses[:, :3, :3], expected.as_matrix(), atol=1e-9)
    np.testing.assert_allclose(poses[:, :3, 3], t[i] + w[:, None] * (t[i + 1] - t[i]), atol=1e-9)


def test_refuses_unsorted_or_mismatched_samples():
    with pytest.raises(ValueError, match='sorted and unique'):
        interpolate_poses(np.array([2, 1]), np.zeros((2, 3)), [IDENTITY] * 2, np.array([1]))
    with pytest.raises(ValueError, match='sorted and unique'):
        interpolate_poses(np.array([1, 1]), np.zeros((2, 3)), [IDENTITY] * 2, np.array([1]))
    with pytest.raises(ValueError, match='need as many'):
        interpolate_poses(np.array([1, 2]), np.zeros((3, 3)), [IDENTITY] * 2, np.array([1]))


def _history(**kw) -> PoseHistory:
    h = PoseHistory(**kw)
    for k in range(5):  # every 100 ms, x = k
        assert h.add(T0 + k * 100 * MS, (k, 0, 0), IDENTITY) is None
    return h


def _x(h: PoseHistory, stamp: int) -> float:
    r = h.lookup(stamp)
    assert r.status == 'ok', r.message
    return float(r.pose[0, 3])


def test_refuses_non_finite_and_unnormalised_samples():
    h = _history()
    assert 'not finite' in h.add(T0 + 500 * MS, (math.nan, 0, 0), IDENTITY)
    assert 'not finite' in h.add(T0 + 500 * MS, (0, 0, 0), (0, 0, math.inf, 1))
    why = h.add(T0 + 500 * MS, (0, 0, 0), (0, 0, 2, 0))
    assert 'norm 2 ' in why and 'not a rotation' in why
    assert 'norm 0 ' in h.add(T0 + 500 * MS, (0, 0, 0), (0, 0, 0, 0))
    assert len(h) == 5 and h.newest_ns == T0 + 400 * MS
    assert h.add(T0 + 500 * MS, (5, 0, 0), (0, 0, 0, 1.0005)) is None  # within 1e-3: renormalised
    np.testing.assert_allclose(h.lookup(T0 + 500 * MS).pose[:3, :3], np.eye(3), atol=1e-12)


def test_out_of_order_older_than_the_oldest_is_refused():
    h = _history()
    why = h.add(T0 - 1 * MS, (9, 9, 9), IDENTITY)
    assert why.startswith('out of order') and str(T0) in why
    assert len(h) == 5 and h.resets == 0 and _x(h, T0) == 0.0


def test_a_late_sample_within_the_window_is_inserted_and_used():
    h = _history()
    assert h.add(T0 + 150 * MS, (10, 0, 0), IDENTITY) is None
    assert len(h) == 6 and h.newest_ns == T0 + 400 * MS
    assert _x(h, T0 + 150 * MS) == pytest.approx(10.0)
    assert _x(h, T0 + 125 * MS) == pytest.approx(5.5)  # between x=1 at 100 ms and x=10 at 150 ms
    assert _x(h, T0 + 175 * MS) == pytest.approx(6.0)  # between x=10 at 150 ms and x=2 at 200 ms
    assert _x(h, T0 + 300 * MS) == pytest.approx(3.0)


def test_a_duplicate_stamp_replaces_the_sample():
    h = _history()
    assert h.add(T0 + 200 * MS, (-7, 0, 0), YAW90) is None
    assert h.add(T0 + 400 * MS, (8, 0, 0), IDENTITY) is None
    assert len(h) == 5
    pose = h.lookup(T0 + 200 * MS).pose
    assert pose[0, 3] == -7.0 and _yaw(pose) == pytest.approx(90.0)
    assert _x(h, T0 + 400 * MS) == 8.0


def test_a_backwards_jump_beyond_max_age_resets_the_history():
    h = _history(max_age_s=10.0)
    assert h.add(T0 - 11_000 * MS, (42, 0, 0), IDENTITY) is None  # bag restarted / sim time reset
    assert h.resets == 1 and len(h) == 1 and h.newest_ns == T0 - 11_000 * MS
    assert _x(h, T0 - 11_000 * MS) == 42.0
    assert h.lookup(T0).status == 'wait'
    h.clear()
    assert len(h) == 0 and h.newest_ns is None and h.resets == 1


def test_memory_stays_bounded_over_100k_adds():
    h = PoseHistory(max_age_s=1e6, max_samples=300)
    cap = h._stamps.shape
    for k in range(100_000):
        h.add(T0 + k * MS, (k, 0, 0), IDENTITY)
        assert len(h) <= 300
    assert len(h) == 300 and h._stamps.shape == cap
    assert _x(h, T0 + 99_999 * MS) == 99_999.0
    assert _x(h, T0 + 99_700 * MS) == 99_700.0  # the oldest kept
    assert h.lookup(T0 + 99_699 * MS - h.tolerance_ns - 1).status == 'too_old'
    assert np.all(np.diff(h._stamps[h._lo:h._hi]) == MS)


def test_samples_older_than_max_age_are_evicted():
    h = PoseHistory(max_age_s=1.0, max_samples=1000)
    for k in range(50):  # 20 Hz for 2.45 s
        h.add(T0 + k * 50 * MS, (k, 0, 0), IDENTITY)
    assert len(h) == 21  # 1.45 s .. 2.45 s
    assert h.lookup(T0 + 1450 * MS).status == 'ok'
    assert h.lookup(T0 + 1400 * MS).status == 'too_old'


def test_each_lookup_status():
    h = PoseHistory(tolerance_s=0.005, max_gap_s=0.5)
    r = h.lookup(T0)
    assert isinstance(r, PoseLookup) and (r.pose, r.status) == (None, 'empty')
    for k, stamp in enumerate([T0, T0 + 100 * MS, T0 + 800 * MS]):
        h.add(stamp, (k, 0, 0), IDENTITY)
    assert _x(h, T0 + 50 * MS) == pytest.approx(0.5)
    assert _x(h, T0 - 4 * MS) == 0.0  # within tolerance before the first: held
    assert _x(h, T0 + 804 * MS) == 2.0  # within tolerance after the newest: held
    assert _x(h, T0 + 800 * MS) == 2.0  # on a sample at the edge of the gap: no interpolation across it
    r = h.lookup(T0 + 806 * MS)
    assert (r.pose, r.status) == (None, 'wait') and '6.0 ms newer' in r.message
    r = h.lookup(T0 - 6 * MS)
    assert (r.pose, r.status) == (None, 'too_old') and '6.0 ms older' in r.message
    r = h.lookup(T0 + 300 * MS)
    assert (r.pose, r.status) == (None, 'gap') and '700 ms gap' in r.message
    assert h.lookup(T0 + 100 * MS).status == 'ok'


def test_concurrent_adds_and_lookups_keep_the_history_sorted():
    h = PoseHistory(max_age_s=1e6, max_samples=8000)
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for k in range(offset, 4000, 4):
                why = h.add(T0 + 1000 * MS + k * MS, (k, 0, 0), IDENTITY)
                assert why is None or why.startswith('out of order'), why
        except BaseException as exc:  # reported from the main thread
            errors.append(exc)

    def reader() -> None:
        try:
            for k in range(2000):
                r = h.lookup(T0 + 1000 * MS + k * MS)
                assert r.status in ('ok', 'wait', 'too_old', 'empty', 'gap'), r.status
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)] + [threading.Thread(target=reader)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    s = h._stamps[h._lo:h._hi]
    assert np.all(np.diff(s) > 0)
    kept = (s - T0 - 1000 * MS) // MS
    np.testing.assert_array_equal(h._t[h._lo:h._hi, 0], kept)  # every stamp carries its own pose
