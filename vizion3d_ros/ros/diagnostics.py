"""Pipeline health for /diagnostics: rates, drops and latencies, and the DiagnosticArray that reports them.

:class:`PipelineStats` is pure Python and takes time explicitly (monotonic seconds), so tests feed it
timestamps instead of sleeping; a lock makes it safe to write from the worker thread and the executor.
:func:`to_diagnostic_array` turns one snapshot into a single ``DiagnosticStatus`` named
``"<node_name>: pipeline"`` whose ``hardware_id`` is the inference device.

Levels: ERROR when an ``error`` is given (e.g. the model failed to load); WARN when inputs arrive but
nothing was output for ``stale_after_s``, when one input topic went silent while another still arrives
(nothing can be synchronised), or when frames were dropped since the previous report for a reason that
is not routine (routine: ``superseded`` by a newer frame, ``unmatched`` by the synchroniser); OK
otherwise. The message says why in plain words.

KeyValue keys (all values are strings):

- ``state``: lifecycle state given by the node; ``model``; ``device``
- ``input_rate_hz/<topic>``: messages per second on each input topic, over the sliding window
- ``output_rate_hz``: published frames per second, over the sliding window
- ``frames_processed``: published frames since start (or the last :meth:`PipelineStats.reset`)
- ``dropped/<reason>``: dropped frames per reason, for every reason counted so far (``dropped/bad_cloud``)
- ``dropped_total``: sum over all reasons, routine ones included
- ``latency_ms/<stage>``: ``"median / p90 / max"`` in milliseconds over the last samples of the stage
  (``end_to_end``, ``conversion``, ``inference``, ``lifting``, ``publishing``, ...)

The node adds ``input_qos/<topic>`` (the input subscription's reliability and why), ``input_problem/<topic>``
(or ``input_problem/sync``: a silent or unpaired input, with the likely cause and the fix) and
``incompatible_qos/<topic>``.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

ROUTINE_DROP_REASONS = frozenset({'superseded', 'unmatched'})
INACTIVE_STATES = frozenset({'unconfigured', 'inactive', 'finalized'})


class _EventRate:
    """Event times within a sliding window; rate in Hz that is right from the first seconds on."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.times: deque[float] = deque()
        self.first: float | None = None
        self.last: float | None = None

    def add(self, now: float) -> None:
        if self.first is None:
            self.first = now
        self.last = now
        self.times.append(now)
        self._prune(now)

    def _prune(self, now: float) -> None:
        start = now - self.window_s
        while self.times and self.times[0] <= start:
            self.times.popleft()

    def rate(self, now: float) -> float:
        self._prune(now)
        if self.first is None:
            return 0.0
        span = now - self.first
        if span >= self.window_s:
            return len(self.times) / self.window_s
        # Window not full yet: n events since the first span n - 1 intervals.
        return (len(self.times) - 1) / span if span > 0 and len(self.times) > 1 else 0.0


@dataclass(frozen=True)
class StatsSnapshot:
    """Everything a report needs, read at once under the lock."""

    input_rates: dict[str, float]
    input_last: dict[str, float]
    first_input: float | None
    output_rate: float
    last_output: float | None
    frames_processed: int
    drops: dict[str, int]
    new_drops: dict[str, int]
    latency: dict[str, tuple[float, float, float]]


class PipelineStats:
    """Counters of one node's pipeline; every method takes ``now`` in monotonic seconds where time matters."""

    def __init__(self, window_s: float = 5.0, latency_samples: int = 100) -> None:
        if window_s <= 0 or latency_samples < 1:
            raise ValueError('window_s must be > 0 and latency_samples >= 1')
        self.window_s = float(window_s)
        self.latency_samples = int(latency_samples)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything (e.g. when the node is cleaned up and configured again)."""
        with self._lock:
            self._inputs: dict[str, _EventRate] = {}
            self._output = _EventRate(self.window_s)
            self._frames = 0
            self._drops: dict[str, int] = {}
            self._reported_drops: dict[str, int] = {}
            self._latency: dict[str, deque[float]] = {}

    def count_input(self, topic: str, now: float) -> None:
        """One message arrived on ``topic``."""
        with self._lock:
            rate = self._inputs.get(topic)
            if rate is None:
                rate = self._inputs[topic] = _EventRate(self.window_s)
            rate.add(now)

    def count_output(self, now: float) -> None:
        """One frame was published."""
        with self._lock:
            self._output.add(now)
            self._frames += 1

    def count_drop(self, reason: str, n: int = 1) -> None:
        """``n`` frames dropped for ``reason`` (a short key such as ``bad_cloud``)."""
        with self._lock:
            self._drops[reason] = self._drops.get(reason, 0) + int(n)

    def set_drops(self, reason: str, total: int) -> None:
        """Set the total for a counter kept elsewhere (the mailbox's ``superseded`` count)."""
        with self._lock:
            self._drops[reason] = int(total)

    def add_latency(self, stage: str, ms: float) -> None:
        """One latency sample of ``stage`` in milliseconds; only the last ``latency_samples`` are kept."""
        with self._lock:
            window = self._latency.get(stage)
            if window is None:
                window = self._latency[stage] = deque(maxlen=self.latency_samples)
            window.append(float(ms))

    def input_rates(self, now: float) -> dict[str, float]:
        """Messages per second on each input topic seen so far."""
        with self._lock:
            return {t: r.rate(now) for t, r in self._inputs.items()}

    def output_rate(self, now: float) -> float:
        """Published frames per second."""
        with self._lock:
            return self._output.rate(now)

    def rates(self, now: float) -> dict[str, float]:
        """``{'input/<topic>': hz, ..., 'output': hz}`` over the sliding window."""
        with self._lock:
            out = {f'input/{t}': r.rate(now) for t, r in self._inputs.items()}
            out['output'] = self._output.rate(now)
            return out

    @property
    def frames_processed(self) -> int:
        """Frames published since start."""
        with self._lock:
            return self._frames

    @property
    def drops(self) -> dict[str, int]:
        """Dropped frames per reason (a copy)."""
        with self._lock:
            return dict(self._drops)

    @property
    def total_dropped(self) -> int:
        """Dropped frames over all reasons, routine ones included."""
        with self._lock:
            return sum(self._drops.values())

    def latency_summary(self) -> dict[str, tuple[float, float, float]]:
        """``{stage: (median, p90, max)}`` in milliseconds over each stage's kept samples."""
        with self._lock:
            return self._latency_summary()

    def _latency_summary(self) -> dict[str, tuple[float, float, float]]:
        out = {}
        for stage, window in self._latency.items():
            a = np.fromiter(window, dtype=np.float64, count=len(window))
            med, p90 = np.percentile(a, [50, 90])
            out[stage] = (float(med), float(p90), float(a.max()))
        return out

    def snapshot(self, now: float, mark_reported: bool = True) -> StatsSnapshot:
        """All counters at once; ``new_drops`` are those since the previous marked snapshot."""
        with self._lock:
            new = {r: n - self._reported_drops.get(r, 0) for r, n in self._drops.items()}
            if mark_reported:
                self._reported_drops = dict(self._drops)
            firsts = [r.first for r in self._inputs.values() if r.first is not None]
            return StatsSnapshot(
                input_rates={t: r.rate(now) for t, r in self._inputs.items()},
                input_last={t: r.last for t, r in self._inputs.items() if r.last is not None},
                first_input=min(firsts) if firsts else None,
                output_rate=self._output.rate(now), last_output=self._output.last,
                frames_processed=self._frames, drops=dict(self._drops),
                new_drops={r: n for r, n in new.items() if n > 0}, latency=self._latency_summary())


def _problems(snap: StatsSnapshot, now: float, state: str, stale_after_s: float,
              routine: Collection[str]) -> list[str]:
    """Plain-words reasons for a WARN, empty when all is well."""
    problems = []
    arriving = {t for t, last in snap.input_last.items() if now - last < stale_after_s}
    if arriving and state.lower() not in INACTIVE_STATES:
        since = snap.last_output if snap.last_output is not None else snap.first_input
        if since is not None and now - since >= stale_after_s:
            if snap.last_output is None:
                problems.append(f'no frame published yet although input has arrived for {now - since:.1f} s')
            else:
                problems.append(f'no frame published for {now - since:.1f} s although input arrives')
        silent = sorted(set(snap.input_last) - arriving)
        if silent:
            problems.append(f'no message on {", ".join(silent)} for {stale_after_s:g} s')
    bad = {r: n for r, n in snap.new_drops.items() if r not in routine}
    if bad:
        problems.append('dropped ' + ', '.join(f'{n} frame{"s" if n > 1 else ""} ({r})'
                                                for r, n in sorted(bad.items())) + ' since last report')
    return problems


def to_diagnostic_array(stats: PipelineStats, now: float, stamp, node_name: str, state: str, model: str,
                        device: str, error: str | None = None, stale_after_s: float = 5.0,
                        routine_drops: Collection[str] = ROUTINE_DROP_REASONS,
                        input_problems: Sequence[str] = (),
                        extra_values: Sequence[tuple[str, str]] = ()) -> DiagnosticArray:
    """One-status DiagnosticArray of the pipeline's health (keys and levels in the module docstring).

    ``now`` is the same monotonic clock the stats were fed with; ``stamp`` the ROS time of the header.
    Each call marks the drops seen so far as reported, so a WARN for drops lasts one report.
    ``input_problems`` (the node's input watch: silent or unpaired inputs, with cause and fix) come first
    in a WARN's message; ``extra_values`` are appended to the KeyValues.
    """
    snap = stats.snapshot(now)
    problems = list(input_problems) + _problems(snap, now, state, stale_after_s, routine_drops)
    if error:
        level, message = DiagnosticStatus.ERROR, f'error: {error}'
    elif problems:
        level, message = DiagnosticStatus.WARN, '; '.join(problems)
    elif not snap.input_last:
        level, message = DiagnosticStatus.OK, f'{state}: waiting for input'
    else:
        level, message = DiagnosticStatus.OK, f'{state}: publishing at {snap.output_rate:.1f} Hz'

    values = [('state', state), ('model', model), ('device', device)]
    values += [(f'input_rate_hz/{t}', f'{hz:.2f}') for t, hz in sorted(snap.input_rates.items())]
    values += [('output_rate_hz', f'{snap.output_rate:.2f}'), ('frames_processed', str(snap.frames_processed))]
    values += [(f'dropped/{r}', str(n)) for r, n in sorted(snap.drops.items())]
    values.append(('dropped_total', str(sum(snap.drops.values()))))
    values += [(f'latency_ms/{s}', f'{m:.1f} / {p:.1f} / {x:.1f}') for s, (m, p, x) in sorted(snap.latency.items())]
    values += list(extra_values)

    status = DiagnosticStatus(level=level, name=f'{node_name}: pipeline', message=message, hardware_id=device,
                              values=[KeyValue(key=k, value=v) for k, v in values])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
