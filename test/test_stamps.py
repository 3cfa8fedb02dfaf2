"""Out-of-order and stale frame decisions."""
from __future__ import annotations

import pytest

from vizion3d_ros.ros.drops import DROP_REASONS, FrameRejectedError
from vizion3d_ros.ros.stamps import StampGate

S = 1_000_000_000


def test_out_of_order_frames_are_rejected_after_a_processed_one():
    gate = StampGate()
    gate.check(10 * S, 0, 0.0)
    gate.accept(10 * S)
    gate.check(10 * S, 0, 0.0)  # the same stamp again is fine
    gate.check(11 * S, 0, 0.0)
    with pytest.raises(FrameRejectedError, match='older than the last processed') as exc:
        gate.check(9 * S, 0, 0.0)
    assert exc.value.reason == 'out_of_order'
    gate.accept(5 * S)  # accepting an older stamp never moves the mark back
    assert gate.last_ns == 10 * S
    gate.reset()
    gate.check(1 * S, 0, 0.0)


def test_a_stream_that_starts_over_is_followed_not_dropped():
    gate = StampGate(rewind_s=5.0)
    gate.accept(1000 * S)
    with pytest.raises(FrameRejectedError):
        gate.check(996 * S, 0, 0.0)  # 4 s late: out of order
    assert gate.check(994 * S, 0, 0.0) is True  # 6 s back: the source restarted
    assert gate.last_ns is None
    gate.accept(994 * S)
    assert gate.check(995 * S, 0, 0.0) is False


def test_stale_frames_against_the_clock():
    gate = StampGate()
    gate.check(100 * S, 105 * S, 10.0)
    with pytest.raises(FrameRejectedError, match=r'5.000 s old \(max_frame_age 2 s\)') as exc:
        gate.check(100 * S, 105 * S, 2.0)
    assert exc.value.reason == 'stale'
    gate.check(100 * S, 105 * S, 0.0)  # 0 = off
    gate.check(100 * S, 0, 2.0)  # a simulated clock without /clock yet: no age check
    gate.check(200 * S, 105 * S, 2.0)  # stamps from the future are not stale


def test_drop_reasons_are_stable_keys():
    expected = {'bad_image', 'bad_camera_info', 'camera_info_size_mismatch', 'bad_cloud', 'frame_mismatch',
                'tf_unavailable', 'out_of_order', 'stale', 'model_unavailable', 'superseded', 'unmatched',
                'internal_error'}
    assert expected <= set(DROP_REASONS)
    assert all(k.isidentifier() and k.islower() for k in DROP_REASONS)
    with pytest.raises(ValueError, match='unknown drop reason'):
        FrameRejectedError('bad image', 'typo in a key')
