"""Camera poses at arbitrary stamps: interpolation between stamped samples, and a live pose history.

Pure numpy and scipy (no rclpy), so the bag reader and the map node share one interpolation. A pose is
world <- body as a 4x4 float64 matrix; between two samples the translation is linear and the rotation
spherical (slerp); beyond the ends the end sample is held, and callers decide how far that is acceptable.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_NS = 1_000_000_000


def interpolate_poses(stamps_ns: np.ndarray, translations: np.ndarray, quaternions: np.ndarray,
                      at_ns: np.ndarray) -> np.ndarray:
    """Poses ``(N, 4, 4)`` at ``at_ns`` from samples sorted by unique stamp (ns), held at the ends.

    ``quaternions`` are ``x, y, z, w`` (normalised here). One sample gives that pose everywhere. Times are
    taken relative to the first sample, in seconds, so that stamps near 2**61 ns keep their precision.
    """
    from scipy.spatial.transform import Rotation, Slerp

    s = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
    t = np.asarray(translations, dtype=np.float64).reshape(-1, 3)
    q = np.asarray(quaternions, dtype=np.float64).reshape(-1, 4)
    at = np.asarray(at_ns, dtype=np.int64).reshape(-1)
    if not len(s) or len(t) != len(s) or len(q) != len(s):
        raise ValueError(f'{len(s)} stamps, {len(t)} translations and {len(q)} quaternions: need as many, >= 1')
    if (np.diff(s) <= 0).any():
        raise ValueError('pose stamps must be sorted and unique')
    out = np.tile(np.eye(4), (len(at), 1, 1))
    if not len(at):
        return out
    if len(s) == 1:
        out[:, :3, :3] = Rotation.from_quat(q[0]).as_matrix()
        out[:, :3, 3] = t[0]
        return out
    x = (np.clip(at, s[0], s[-1]) - s[0]).astype(np.float64) / _NS
    xs = (s - s[0]).astype(np.float64) / _NS
    out[:, :3, :3] = Slerp(xs, Rotation.from_quat(q))(x).as_matrix()
    for k in range(3):
        out[:, k, 3] = np.interp(x, xs, t[:, k])
    return out


@dataclass(frozen=True, eq=False)
class PoseLookup:
    """A pose looked up at a stamp: ``pose`` when ``status == 'ok'``, else None and why.

    ``status`` is ``'ok'``, ``'wait'`` (newer than the newest sample: retry), ``'empty'`` (no sample yet:
    retry), ``'too_old'`` (before the history: give up) or ``'gap'`` (the bracketing samples are too far
    apart to interpolate across: give up); ``message`` says it in a sentence for a log.
    """

    pose: np.ndarray | None
    status: str
    message: str


class PoseHistory:
    """A bounded, thread-safe history of stamped poses world <- body from a live topic.

    Samples sit sorted in preallocated arrays twice ``max_samples`` long: appending the newest is O(1),
    evicting advances the start, and the kept block is moved back to the front once per ``max_samples``
    appends, so memory stays fixed at 100-1000 Hz. Slightly late samples are inserted in place.
    """

    def __init__(self, max_age_s: float = 10.0, max_samples: int = 2000, tolerance_s: float = 0.005,
                 max_gap_s: float = 0.5) -> None:
        if not (max_age_s > 0 and max_samples >= 1 and tolerance_s >= 0 and max_gap_s > 0):
            raise ValueError(f'PoseHistory needs max_age_s > 0, max_samples >= 1, tolerance_s >= 0, max_gap_s > 0'
                             f' (got {max_age_s}, {max_samples}, {tolerance_s}, {max_gap_s})')
        self.max_age_ns = int(round(max_age_s * _NS))
        self.max_samples = int(max_samples)
        self.tolerance_ns = int(round(tolerance_s * _NS))
        self.max_gap_ns = int(round(max_gap_s * _NS))
        self.resets = 0  # times a backwards jump of the clock (bag restart, sim reset) cleared the history
        cap = 2 * self.max_samples
        self._stamps = np.zeros(cap, np.int64)
        self._t = np.zeros((cap, 3))
        self._q = np.zeros((cap, 4))
        self._lo = self._hi = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return self._hi - self._lo

    @property
    def newest_ns(self) -> int | None:
        """Stamp of the newest sample, None when empty."""
        with self._lock:
            return int(self._stamps[self._hi - 1]) if self._hi > self._lo else None

    def clear(self) -> None:
        """Forget every sample (``resets`` is kept)."""
        with self._lock:
            self._lo = self._hi = 0

    def add(self, stamp_ns: int, translation: Sequence[float], quaternion_xyzw: Sequence[float]) -> str | None:
        """Store a sample; None when stored, else a one-line reason it was refused.

        A stamp already stored is replaced. One older than the newest by more than ``max_age_s`` means the
        clock went back: the history is cleared first and ``resets`` counts it.
        """
        t = np.asarray(translation, dtype=np.float64).reshape(3)
        q = np.asarray(quaternion_xyzw, dtype=np.float64).reshape(4)
        stamp = int(stamp_ns)
        if not (np.isfinite(t).all() and np.isfinite(q).all()):
            return f'pose at {stamp} ns is not finite: translation {t.tolist()}, quaternion {q.tolist()}'
        norm = float(np.linalg.norm(q))
        if abs(norm - 1.0) > 1e-3:
            return f'pose at {stamp} ns: quaternion norm {norm:.6g} is not 1, so not a rotation'
        with self._lock:
            lo, hi, s = self._lo, self._hi, self._stamps
            if hi > lo and stamp < s[hi - 1] - self.max_age_ns:
                self._lo = self._hi = lo = hi = 0
                self.resets += 1
            elif hi > lo and stamp < s[lo]:
                return (f'out of order: pose at {stamp} ns is older than the oldest kept ({int(s[lo])} ns, '
                        f'newest {int(s[hi - 1])} ns)')
            pos = hi if hi == lo or stamp > s[hi - 1] else lo + int(np.searchsorted(s[lo:hi], stamp))
            if pos < hi and s[pos] == stamp:
                self._t[pos], self._q[pos] = t, q / norm
                return None
            if hi == len(s):  # move the kept block to the front: once per max_samples appends
                n = hi - lo
                for a in (s, self._t, self._q):
                    a[:n] = a[lo:hi]
                pos, lo, hi = pos - lo, 0, n
            for a in (s, self._t, self._q):
                a[pos + 1:hi + 1] = a[pos:hi].copy()
            s[pos], self._t[pos], self._q[pos] = stamp, t, q / norm
            hi += 1
            lo = max(lo, hi - self.max_samples)
            self._lo = lo + int(np.searchsorted(s[lo:hi], s[hi - 1] - self.max_age_ns))
            self._hi = hi
        return None

    def lookup(self, stamp_ns: int) -> PoseLookup:
        """The pose at ``stamp_ns``, interpolated; within ``tolerance_s`` beyond either end, the end sample."""
        stamp = int(stamp_ns)
        with self._lock:
            lo, hi = self._lo, self._hi
            if hi == lo:
                return PoseLookup(None, 'empty', f'no pose received yet for stamp {stamp} ns')
            s = self._stamps[lo:hi]
            first, last = int(s[0]), int(s[-1])
            if stamp > last + self.tolerance_ns:
                return PoseLookup(None, 'wait', f'stamp {stamp} ns is {(stamp - last) / 1e6:.1f} ms newer than '
                                                f'the newest pose ({last} ns)')
            if stamp < first - self.tolerance_ns:
                return PoseLookup(None, 'too_old', f'stamp {stamp} ns is {(first - stamp) / 1e6:.1f} ms older '
                                                   f'than the oldest kept pose ({first} ns)')
            at = min(max(stamp, first), last)
            i = int(np.searchsorted(s, at))
            k = slice(lo + i, lo + i + 1) if s[i] == at else slice(lo + i - 1, lo + i + 1)
            ks, kt, kq = self._stamps[k].copy(), self._t[k].copy(), self._q[k].copy()
        if len(ks) == 2 and ks[1] - ks[0] > self.max_gap_ns:
            return PoseLookup(None, 'gap', f'stamp {stamp} ns falls in a {(ks[1] - ks[0]) / 1e6:.0f} ms gap '
                                           f'between poses ({int(ks[0])} to {int(ks[1])} ns), over '
                                           f'{self.max_gap_ns / 1e6:g} ms')
        return PoseLookup(interpolate_poses(ks, kt, kq, np.array([at]))[0], 'ok', '')
