"""Per-object 3D statistics: centroid and axis-aligned box."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObjectGeometry:
    """Centroid and axis-aligned box of an object's points, in the frame of the points given."""

    centroid: np.ndarray  # (3,)
    box_min: np.ndarray  # (3,)
    box_max: np.ndarray  # (3,)
    point_count: int

    @property
    def box_center(self) -> np.ndarray:
        """Centre of the axis-aligned box."""
        return (self.box_min + self.box_max) / 2.0

    @property
    def box_size(self) -> np.ndarray:
        """Edge lengths of the axis-aligned box."""
        return self.box_max - self.box_min

    @classmethod
    def empty(cls) -> ObjectGeometry:
        """Geometry of an object with no points (all zeros)."""
        z = np.zeros(3)
        return cls(centroid=z, box_min=z, box_max=z, point_count=0)


def object_geometry(points: np.ndarray, indices: np.ndarray) -> ObjectGeometry:
    """Statistics of ``points[indices]`` (float64 accumulation; the indices must be finite points)."""
    if len(indices) == 0:
        return ObjectGeometry.empty()
    sel = np.asarray(points)[indices].astype(np.float64)
    return ObjectGeometry(centroid=sel.mean(axis=0), box_min=sel.min(axis=0), box_max=sel.max(axis=0),
                          point_count=int(len(indices)))
