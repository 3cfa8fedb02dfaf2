import pytest

from vizion3d_ros.ros.sync import ApproximateSynchronizer

MS = 1_000_000


def test_emits_when_every_input_has_a_close_message():
    s = ApproximateSynchronizer(3, slop_ns=10 * MS)
    assert s.add(0, 100 * MS, 'img') is None
    assert s.add(1, 103 * MS, 'info') is None
    assert s.add(2, 95 * MS, 'cloud') == ('img', 'info', 'cloud')


def test_picks_the_closest_message_and_forgets_older_ones():
    s = ApproximateSynchronizer(2, slop_ns=20 * MS)
    s.add(0, 100 * MS, 'a100')
    s.add(0, 130 * MS, 'a130')
    assert s.add(1, 128 * MS, 'b128') == ('a130', 'b128')
    assert s.dropped == 1  # a100 was never used
    assert s.add(1, 140 * MS, 'b140') is None  # a130 was consumed


def test_stamps_further_apart_than_slop_never_match():
    s = ApproximateSynchronizer(2, slop_ns=5 * MS)
    s.add(0, 100 * MS, 'a')
    assert s.add(1, 106 * MS, 'b') is None
    assert s.add(0, 107 * MS, 'a2') == ('a2', 'b')


def test_all_three_must_be_within_slop_of_each_other():
    s = ApproximateSynchronizer(3, slop_ns=10 * MS)
    s.add(0, 100 * MS, 'a')
    s.add(1, 92 * MS, 'b')  # within 10 ms of a
    assert s.add(2, 108 * MS, 'c') is None  # within 10 ms of a, but 16 ms from b


def test_full_queue_drops_oldest_and_counts_it():
    s = ApproximateSynchronizer(2, slop_ns=0, queue_size=2)
    for t in (1, 2, 3):
        s.add(0, t * MS, t)
    assert s.dropped == 1
    assert s.add(1, 1 * MS, 'x') is None  # 1 was pushed out
    assert s.add(1, 2 * MS, 'y') == (2, 'y')


def test_out_of_order_stamps_and_invalid_arguments():
    s = ApproximateSynchronizer(2, slop_ns=MS)
    s.add(0, 50 * MS, 'late')
    s.add(0, 10 * MS, 'early')
    assert s.add(1, 10 * MS, 'b') == ('early', 'b')
    with pytest.raises(ValueError):
        ApproximateSynchronizer(0, 1)
