"""Pipeline statistics and the /diagnostics status built from them, with time fed in explicitly."""
import sys
import threading

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus

from vizion3d_ros.ros.diagnostics import PipelineStats, to_diagnostic_array

# Periods that are exact in binary floating point, so window edges are not a matter of rounding.
PERIOD_IMAGE, PERIOD_POINTS = 0.125, 0.25  # 8 Hz and 4 Hz


def feed(stats, start, stop, outputs=True):
    """Image at 8 Hz, points at 4 Hz and (optionally) one output per points message, in [start, stop)."""
    for k in range(int(start / PERIOD_IMAGE), int(stop / PERIOD_IMAGE)):
        t = k * PERIOD_IMAGE
        stats.count_input('image', t)
        if k % 2 == 0:
            stats.count_input('points', t)
            if outputs:
                stats.count_output(t)
    return (int(stop / PERIOD_IMAGE) - 1) * PERIOD_IMAGE  # time of the last message


def report(stats, now, **kw):
    args = dict(stamp=Time(sec=7, nanosec=9), node_name='vizion3d_node', state='active', model='yolov8n-seg.pt',
                device='cuda:0')
    args.update(kw)
    arr = to_diagnostic_array(stats, now, **args)
    assert len(arr.status) == 1
    return arr, arr.status[0], {kv.key: kv.value for kv in arr.status[0].values}


def test_rates_over_a_full_window():
    stats = PipelineStats(window_s=4.0)
    last = feed(stats, 0.0, 10.0)
    rates = stats.rates(last)
    assert rates == pytest.approx({'input/image': 8.0, 'input/points': 4.0, 'output': 4.0})
    assert stats.input_rates(last) == pytest.approx({'image': 8.0, 'points': 4.0})
    assert stats.output_rate(last) == pytest.approx(4.0)


def test_rates_before_the_window_is_full_are_not_underestimated():
    stats = PipelineStats(window_s=5.0)
    last = feed(stats, 0.0, 1.0 + PERIOD_IMAGE)  # messages from 0 to 1 s inclusive
    assert last == 1.0
    assert stats.rates(last) == pytest.approx({'input/image': 8.0, 'input/points': 4.0, 'output': 4.0})
    fresh = PipelineStats()
    assert fresh.rates(3.0) == {'output': 0.0}
    fresh.count_input('image', 3.0)
    assert fresh.rates(3.0)['input/image'] == 0.0  # one message is no rate yet


def test_the_window_slides_when_a_stream_stops():
    stats = PipelineStats(window_s=4.0)
    last = feed(stats, 0.0, 10.0)  # last message at 9.875 s
    # At 12 s the window (8, 12] holds the messages of (8, 9.875]: 15 images, 7 points.
    assert stats.rates(12.0) == pytest.approx({'input/image': 15 / 4, 'input/points': 7 / 4, 'output': 7 / 4})
    assert stats.rates(last + 4.0) == {'input/image': 0.0, 'input/points': 0.0, 'output': 0.0}


def test_drop_counters_and_totals():
    stats = PipelineStats()
    stats.count_drop('bad_cloud')
    stats.count_drop('bad_cloud', 2)
    stats.count_drop('size_mismatch')
    stats.set_drops('superseded', 7)
    stats.set_drops('superseded', 9)  # a total kept elsewhere replaces, it does not add
    assert stats.drops == {'bad_cloud': 3, 'size_mismatch': 1, 'superseded': 9}
    assert stats.total_dropped == 13
    d = stats.drops
    d['bad_cloud'] = 100
    assert stats.drops['bad_cloud'] == 3


def test_latency_summary_keeps_a_bounded_window():
    stats = PipelineStats(latency_samples=100)
    for ms in range(1, 201):
        stats.add_latency('inference', float(ms))
    stats.add_latency('lifting', 4.0)
    summary = stats.latency_summary()
    kept = np.arange(101, 201, dtype=float)  # the last 100 samples
    assert summary['inference'] == pytest.approx((np.median(kept), np.percentile(kept, 90), 200.0))
    assert summary['inference'][0] == pytest.approx(150.5)
    assert summary['lifting'] == (4.0, 4.0, 4.0)


def test_writers_and_a_reader_on_several_threads():
    stats = PipelineStats(latency_samples=100)
    errors = []
    done = threading.Event()

    def write(i):
        for k in range(3000):
            stats.count_drop('bad_image')
            stats.count_input(f'topic{i}', k * 1e-3)
            stats.add_latency(f'stage{k % 7}', float(k))

    def read():
        try:
            while not done.is_set():
                stats.latency_summary()
                report(stats, 1.0)
        except Exception as exc:  # e.g. a deque or dict changed while it was being read
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so unguarded reads and updates would collide
    try:
        reader = threading.Thread(target=read)
        reader.start()
        writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        done.set()
        reader.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    assert stats.drops == {'bad_image': 12000}
    assert len(stats.input_rates(3.0)) == 4


def test_status_carries_every_documented_key():
    stats = PipelineStats(window_s=4.0)
    last = feed(stats, 0.0, 10.0)
    stats.count_drop('bad_cloud', 2)
    stats.set_drops('superseded', 5)
    for ms in (10.0, 20.0, 30.0):
        stats.add_latency('inference', ms)
    arr, st, kv = report(stats, last)
    assert (arr.header.stamp.sec, arr.header.stamp.nanosec) == (7, 9)
    assert st.name == 'vizion3d_node: pipeline' and st.hardware_id == 'cuda:0'
    assert (kv['state'], kv['model'], kv['device']) == ('active', 'yolov8n-seg.pt', 'cuda:0')
    assert float(kv['input_rate_hz/image']) == pytest.approx(8.0)
    assert float(kv['input_rate_hz/points']) == pytest.approx(4.0)
    assert float(kv['output_rate_hz']) == pytest.approx(4.0)
    assert int(kv['frames_processed']) == 40
    assert (kv['dropped/bad_cloud'], kv['dropped/superseded'], kv['dropped_total']) == ('2', '5', '7')
    assert [float(v) for v in kv['latency_ms/inference'].split(' / ')] == pytest.approx([20.0, 28.0, 30.0])
    assert all(isinstance(v.value, str) for v in st.values)


def test_ok_while_frames_flow_and_while_waiting_for_input():
    stats = PipelineStats()
    _, st, _ = report(stats, 1.0)
    assert st.level == DiagnosticStatus.OK and 'waiting for input' in st.message
    last = feed(stats, 0.0, 10.0)
    _, st, _ = report(stats, last)
    assert st.level == DiagnosticStatus.OK


def test_warn_when_input_arrives_but_nothing_is_published():
    stats = PipelineStats()
    feed(stats, 0.0, 4.0)  # the last output is at 3.75 s
    feed(stats, 4.0, 8.75, outputs=False)
    _, st, _ = report(stats, 8.625, stale_after_s=5.0)  # 4.875 s since the last output: not stale yet
    assert st.level == DiagnosticStatus.OK
    last = feed(stats, 8.75, 10.0, outputs=False)
    _, st, _ = report(stats, last, stale_after_s=5.0)
    assert st.level == DiagnosticStatus.WARN and 'no frame published' in st.message
    _, st, _ = report(stats, last, stale_after_s=5.0, state='inactive')  # not expected to publish
    assert st.level == DiagnosticStatus.OK

    never = PipelineStats()
    last = feed(never, 0.0, 6.0, outputs=False)
    _, st, _ = report(never, last)
    assert st.level == DiagnosticStatus.WARN and 'yet' in st.message


def test_warn_when_one_input_goes_silent():
    stats = PipelineStats()
    feed(stats, 0.0, 10.0)
    for k in range(80, 160):  # images and outputs go on, the cloud has stopped at 9.75 s
        stats.count_input('image', k * PERIOD_IMAGE)
        stats.count_output(k * PERIOD_IMAGE)
    _, st, _ = report(stats, 159 * PERIOD_IMAGE)
    assert st.level == DiagnosticStatus.WARN and 'points' in st.message and 'image' not in st.message


def test_warn_once_for_rejected_frames_but_not_for_superseded_ones():
    stats = PipelineStats()
    last = feed(stats, 0.0, 10.0)
    stats.set_drops('superseded', 30)
    stats.count_drop('unmatched', 3)
    _, st, _ = report(stats, last)
    assert st.level == DiagnosticStatus.OK
    stats.count_drop('bad_cloud', 2)
    _, st, kv = report(stats, last)
    assert st.level == DiagnosticStatus.WARN and 'bad_cloud' in st.message and '2 frames' in st.message
    _, st, kv = report(stats, last)  # no new drops since the previous report
    assert st.level == DiagnosticStatus.OK and kv['dropped/bad_cloud'] == '2'


def test_error_wins_and_says_why():
    stats = PipelineStats()
    stats.count_drop('bad_cloud')
    _, st, kv = report(stats, 1.0, error='model file yolov8n-seg.pt could not be loaded')
    assert st.level == DiagnosticStatus.ERROR
    assert 'could not be loaded' in st.message
    assert kv['dropped/bad_cloud'] == '1'


def test_input_problems_lead_a_warning_and_extra_values_are_appended():
    stats = PipelineStats()
    last = feed(stats, 0.0, 10.0)
    problem = 'no message on /points for 4 s although 1 publisher is matched: ...'
    _, st, kv = report(stats, last, input_problems=[problem],
                       extra_values=[('input_qos/points', 'reliable (auto: 1 reliable publisher)')])
    assert st.level == DiagnosticStatus.WARN and st.message.startswith(problem)
    assert kv['input_qos/points'] == 'reliable (auto: 1 reliable publisher)'
    assert st.values[-1].key == 'input_qos/points'
    _, st, _ = report(stats, last)
    assert st.level == DiagnosticStatus.OK
