"""Short-lived tracks of moving objects (people, by default) that are kept out of the static map.

A person walking through the room must not leave a trail of "person" voxels in the map, yet a planner
still wants to know where people are and to follow one of them for a moment. Each frame's detections
of the dynamic classes become world-frame centroids and boxes; they are matched to the live tracks of
the same class by centroid distance (optimal assignment, at most ``match_distance`` apart), unmatched
ones open tracks, and a track not seen for ``lifetime_s`` ends. Ids come from the map's own counter, so
a track's id never collides with a map object's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class DynamicTrack:
    """One moving object: where it was last seen (world frame) and since when."""

    id: int
    class_id: int
    label: str
    confidence: float
    centroid: np.ndarray  # (3,)
    box_min: np.ndarray  # (3,)
    box_max: np.ndarray  # (3,)
    points: int
    first_ns: int
    last_ns: int
    frames: int = 1


@dataclass(frozen=True)
class DynamicDetection:
    """One frame's detection of a dynamic class: its points already in the world frame."""

    class_id: int
    label: str
    confidence: float
    points: np.ndarray  # (N, 3) world, may hold NaN rows


class DynamicTracker:
    """Matches dynamic detections frame to frame (see the module docstring)."""

    def __init__(self, lifetime_s: float = 1.0, match_distance: float = 0.5) -> None:
        if lifetime_s < 0 or match_distance < 0:
            raise ValueError('lifetime_s and match_distance must be >= 0')
        self.lifetime_ns = int(lifetime_s * 1e9)
        self.match_distance = float(match_distance)
        self.tracks: dict[int, DynamicTrack] = {}

    def update(self, stamp_ns: int, detections: list[DynamicDetection], new_id: Callable[[], int]
               ) -> list[DynamicTrack]:
        """Fold one frame's detections in, end the expired tracks; returns the live tracks by id."""
        measured = []
        for det in detections:
            pts = np.asarray(det.points, np.float64).reshape(-1, 3)
            pts = pts[np.isfinite(pts).all(axis=1)]
            if len(pts):
                measured.append((det, pts.mean(axis=0), pts.min(axis=0), pts.max(axis=0), len(pts)))
        matched = self._match(measured)
        for k, (det, centroid, lo, hi, n) in enumerate(measured):
            tid = matched.get(k)
            if tid is None:
                tid = new_id()
                self.tracks[tid] = DynamicTrack(tid, det.class_id, det.label, det.confidence, centroid, lo, hi, n,
                                                stamp_ns, stamp_ns, 0)
            t = self.tracks[tid]
            t.centroid, t.box_min, t.box_max, t.points = centroid, lo, hi, n
            t.confidence, t.last_ns, t.frames = det.confidence, max(t.last_ns, stamp_ns), t.frames + 1
        for tid in [i for i, t in self.tracks.items() if abs(stamp_ns - t.last_ns) > self.lifetime_ns]:
            del self.tracks[tid]  # expired (or the clock jumped: a bag loop)
        return [self.tracks[i] for i in sorted(self.tracks)]

    def _match(self, measured: list) -> dict[int, int]:
        """Detection index -> track id, per class, minimising the summed centroid distance."""
        from scipy.optimize import linear_sum_assignment

        out: dict[int, int] = {}
        for cls in {m[0].class_id for m in measured}:
            dets = [k for k, m in enumerate(measured) if m[0].class_id == cls]
            ids = [i for i, t in self.tracks.items() if t.class_id == cls]
            if not ids:
                continue
            a = np.array([measured[k][1] for k in dets])
            b = np.array([self.tracks[i].centroid for i in ids])
            cost = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
            for r, c in zip(*linear_sum_assignment(cost)):
                if cost[r, c] <= self.match_distance:
                    out[dets[r]] = ids[c]
        return out

    def clear(self) -> None:
        """End every track (the map was cleared or loaded)."""
        self.tracks.clear()
