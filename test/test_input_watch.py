"""InputWatch: silent and unpaired inputs get a cause and a fix, once per episode (time is passed in)."""
from __future__ import annotations

from vizion3d_ros.ros.input_qos import BEST_EFFORT, RELIABLE
from vizion3d_ros.ros.input_watch import InputState, InputWatch

TOPICS = ('/image', '/camera_info', '/points')
SLOP, QUEUE = 0.05, 10


def states(now: float, points: InputState | None = None, stamps=(5.0, 5.0, 5.0)) -> list[InputState]:
    """Three inputs with a message 0.1 s before ``now`` (``points`` replaces the third)."""
    out = [InputState(t, RELIABLE, 'auto', [RELIABLE], 1, now - 0.1, int(stamps[i] * 1e9))
           for i, t in enumerate(TOPICS)]
    if points is not None:
        out[2] = points
    return out


def check(watch: InputWatch, now: float, inputs, last_synced=None, unmatched=0):
    return watch.check(now, inputs, last_synced, unmatched, SLOP, QUEUE)


def silent_points(policy: str, offered: list[str], matched: int | None = 1) -> InputState:
    return InputState('/points', policy, 'auto', offered, matched, None, None)


def test_all_well_is_no_problem():
    watch = InputWatch()
    assert check(watch, 100.0, states(100.0), last_synced=99.9) == []
    assert watch.current == []


def test_a_matched_but_silent_input_is_reported_after_the_grace_time_with_its_cause():
    watch = InputWatch(silent_after_s=3.0, profile_hint='/share/fastdds_large_data.xml')
    points = silent_points(BEST_EFFORT, [BEST_EFFORT])
    assert check(watch, 100.0, states(100.0, points)) == []  # publishers just seen
    assert check(watch, 102.9, states(102.9, points)) == []
    (p,) = check(watch, 103.0, states(103.0, points))
    assert p.key == 'silent:/points' and p.topic == '/points'
    assert 'no message on /points for 3 s although 1 publisher is matched' in p.text
    assert 'FASTDDS_DEFAULT_PROFILES_FILE=/share/fastdds_large_data.xml' in p.text


def test_the_cause_depends_on_the_policies():
    def problem(points):
        watch = InputWatch(silent_after_s=0.5)
        check(watch, 0.0, states(0.0, points))
        (p,) = check(watch, 1.0, states(1.0, points))
        return p
    p = problem(silent_points(BEST_EFFORT, [RELIABLE, RELIABLE]))
    assert '2 publishers are matched' in p.text and 'input_reliability:=auto' in p.text
    p = problem(silent_points(RELIABLE, [RELIABLE]))
    assert 'ros2 topic hz /points' in p.text
    p = problem(silent_points(RELIABLE, [BEST_EFFORT]))
    assert p.key == 'incompatible:/points' and 'input_reliability is reliable' in p.text


def test_an_idle_source_is_not_a_fault_but_an_incompatible_one_is():
    watch = InputWatch(silent_after_s=1.0)
    quiet = [InputState(t, RELIABLE, 'auto', [RELIABLE], 1, 0.5, None) for t in TOPICS]
    check(watch, 0.0, quiet)
    assert check(watch, 10.0, quiet) == []
    quiet[2] = silent_points(RELIABLE, [BEST_EFFORT], matched=0)
    check(watch, 11.0, quiet)
    assert [p.key for p in check(watch, 12.0, quiet)] == ['incompatible:/points']


def test_publishers_discovered_but_not_matched_yet_are_given_time():
    watch = InputWatch(silent_after_s=0.5)
    check(watch, 0.0, states(0.0, silent_points(RELIABLE, [RELIABLE], matched=0)))
    assert check(watch, 10.0, states(10.0, silent_points(RELIABLE, [RELIABLE], matched=0))) == []


def test_an_input_that_resumes_clears_the_problem_and_a_relapse_is_reported_again():
    watch = InputWatch(silent_after_s=3.0)
    silent = silent_points(RELIABLE, [RELIABLE])
    check(watch, 0.0, states(0.0, silent))
    first = check(watch, 5.0, states(5.0, silent))
    assert [p.key for p in watch.new(first)] == ['silent:/points']
    assert watch.new(check(watch, 6.0, states(6.0, silent))) == []  # once per episode
    resumed = InputState('/points', RELIABLE, 'auto', [RELIABLE], 1, 6.5, None)
    assert watch.new(check(watch, 7.0, states(7.0, resumed))) == []
    assert check(watch, 9.0, states(9.0, resumed)) == []
    again = check(watch, 9.6, states(9.6, resumed))  # 3.1 s after its last message
    assert [p.key for p in watch.new(again)] == ['silent:/points']


def test_inputs_that_never_pair_up_name_the_stamp_offset():
    watch = InputWatch(unsynced_after_s=3.0)
    offset = (5.0, 5.0, 5.5)
    assert check(watch, 100.0, states(100.0, stamps=offset), unmatched=4) == []  # all arriving since now
    assert check(watch, 103.0, states(103.0, stamps=offset), unmatched=4) == []  # nothing discarded since
    (p,) = check(watch, 103.0, states(103.0, stamps=offset), unmatched=30)
    assert p.key == 'unsynced' and p.topic is None
    assert 'their stamps differ by 0.500 s' in p.text and 'sync_slop' in p.text and '26 messages discarded' in p.text


def test_the_offset_is_found_when_the_last_stamps_belong_to_different_frames():
    # a check between a frame's image and its cloud: the image's last stamp is 1044, the cloud's 1042.5
    # (the previous frame's); frames come every second with the cloud 0.5 s behind
    watch = InputWatch(unsynced_after_s=1.0)
    recent = ([1042.0, 1043.0, 1044.0], [1042.0, 1043.0, 1044.0], [1041.5, 1042.5])
    inputs = [InputState(t, RELIABLE, 'auto', [RELIABLE], 1, 99.9, int(r[-1] * 1e9), [int(x * 1e9) for x in r])
              for t, r in zip(TOPICS, recent)]
    check(watch, 99.0, inputs, unmatched=1)
    (p,) = check(watch, 100.0, inputs, unmatched=9)
    assert 'their stamps differ by 0.500 s' in p.text and '/points 1042.500' in p.text


def test_close_stamps_that_still_do_not_pair_point_at_the_queue():
    watch = InputWatch(unsynced_after_s=1.0)
    close = (5.0, 5.0, 5.01)
    check(watch, 100.0, states(100.0, stamps=close), unmatched=0)
    (p,) = check(watch, 101.0, states(101.0, stamps=close), unmatched=10)
    assert 'sync_queue_size 10' in p.text


def test_a_recent_synchronised_frame_means_no_sync_problem():
    watch = InputWatch(unsynced_after_s=1.0)
    offset = (5.0, 5.0, 5.5)
    check(watch, 100.0, states(100.0, stamps=offset), unmatched=0)
    assert check(watch, 105.0, states(105.0, stamps=offset), last_synced=104.5, unmatched=50) == []


def test_reset_forgets_the_episode():
    watch = InputWatch(silent_after_s=0.5)
    points = silent_points(RELIABLE, [RELIABLE])
    check(watch, 0.0, states(0.0, points))
    assert watch.new(check(watch, 1.0, states(1.0, points)))
    watch.reset()
    assert watch.current == []
    check(watch, 2.0, states(2.0, points))
    assert watch.new(check(watch, 3.0, states(3.0, points)))
