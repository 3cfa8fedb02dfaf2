"""DynamicTracker: moving objects keep an id while they move a little, end after their lifetime."""
from __future__ import annotations

import itertools

import numpy as np

from vizion3d_ros.core.fusion.dynamic import DynamicDetection, DynamicTracker
from vizion3d_ros.core.fusion.scene import SceneFusion

S = 1_000_000_000


def _person(center, cls=0, label='person', n=50, seed=0):
    pts = np.random.default_rng(seed).normal(center, 0.05, (n, 3))
    return DynamicDetection(cls, label, 0.9, pts)


def test_a_walking_person_keeps_one_id_and_two_people_keep_two():
    ids = itertools.count(100)
    tracker = DynamicTracker(lifetime_s=1.0, match_distance=0.5)
    first = tracker.update(0, [_person([0, 0, 0]), _person([3, 0, 0], seed=1)], lambda: next(ids))
    assert [t.id for t in first] == [100, 101]
    for k in range(1, 6):  # both walk 20 cm a frame, towards each other's side but never closer than 0.5 m
        live = tracker.update(k * S // 10, [_person([0.2 * k, 0, 0], seed=k), _person([3 - 0.2 * k, 0, 0], seed=9)],
                              lambda: next(ids))
        assert [t.id for t in live] == [100, 101]
    a = tracker.tracks[100]
    assert np.allclose(a.centroid, [1.0, 0, 0], atol=0.05) and a.frames == 6 and a.last_ns == 5 * S // 10
    assert np.all(a.box_min < a.centroid) and np.all(a.box_max > a.centroid)


def test_a_jump_beyond_the_match_distance_or_another_class_opens_a_track():
    ids = itertools.count(1)
    tracker = DynamicTracker(lifetime_s=1.0, match_distance=0.5)
    tracker.update(0, [_person([0, 0, 0])], lambda: next(ids))
    live = tracker.update(S // 10, [_person([2, 0, 0]), _person([0, 0, 0], cls=16, label='dog')], lambda: next(ids))
    assert sorted(t.id for t in live) == [1, 2, 3]
    assert {t.label for t in live if t.id != 1} == {'person', 'dog'}


def test_tracks_end_after_their_lifetime_and_on_a_clock_jump():
    ids = itertools.count(1)
    tracker = DynamicTracker(lifetime_s=1.0)
    tracker.update(0, [_person([0, 0, 0])], lambda: next(ids))
    assert len(tracker.update(S // 2, [], lambda: next(ids))) == 1
    assert tracker.update(S + S // 2, [], lambda: next(ids)) == []
    tracker.update(100 * S, [_person([0, 0, 0])], lambda: next(ids))
    assert tracker.update(10 * S, [], lambda: next(ids)) == []  # time went back 90 s: a replay started over


def test_detections_without_finite_points_are_ignored():
    tracker = DynamicTracker()
    nan = DynamicDetection(0, 'person', 0.9, np.full((10, 3), np.nan))
    assert tracker.update(0, [nan], lambda: 1) == []


def test_track_ids_come_from_the_map_counter_and_never_collide_with_instances():
    f = SceneFusion(voxel_size=0.1, min_points=1)
    pts = np.random.default_rng(0).uniform(0, 1, (200, 3))
    f.add_lifted(pts, np.eye(4), np.ones(200, np.int64), {1: {'class_id': 3, 'label': 'box', 'confidence': 0.9}})
    tid = f.reserve_id()
    f.add_lifted(pts + 5, np.eye(4), np.ones(200, np.int64), {1: {'class_id': 4, 'label': 'cup', 'confidence': 0.9}})
    assert tid not in f.instances and sorted(f.instances) == [1, tid + 1]


def test_prune_tentative_removes_one_off_detections_and_their_votes():
    f = SceneFusion(voxel_size=0.1, min_points=1, confirm_frames=2)
    rng = np.random.default_rng(1)
    table = rng.uniform(0, 1, (300, 3))
    ghost = rng.uniform(3, 4, (300, 3))
    meta = {1: {'class_id': 60, 'label': 'table', 'confidence': 0.9}, 2: {'class_id': 0, 'label': 'ghost',
                                                                         'confidence': 0.5}}
    pts = np.vstack([table, ghost])
    f.add_lifted(pts, np.eye(4), np.repeat([1, 2], 300), meta)
    for _ in range(4):
        f.add_lifted(table, np.eye(4), np.ones(300, np.int64), {1: meta[1]})
    assert sorted(f.instances) == [1, 2]
    assert f.prune_tentative(after_frames=10) == []  # seen 4 frames ago: not yet
    assert f.prune_tentative(after_frames=4) == [2]
    assert sorted(f.instances) == [1]
    labels, weights = f.map.votes
    assert not ((labels == 2) & (weights > 0)).any()  # its votes went with it
    assert ((labels == 1) & (weights > 0)).any()
    assert f.prune_tentative(after_frames=0) == []  # 0: never
