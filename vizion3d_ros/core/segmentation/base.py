"""The backend interface and the result every backend returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class Segmentation:
    """Instance masks of one image, sorted by descending score.

    ``masks`` is ``(K, H, W)`` bool at the input image's size; ``boxes`` ``(K, 4)`` float32
    ``[x1, y1, x2, y2]`` pixels; ``scores`` ``(K,)`` float32; ``class_ids`` ``(K,)`` int32;
    ``labels`` the K class names.
    """

    masks: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        k = len(self.scores)
        if self.masks.ndim != 3 or self.masks.shape[0] != k or len(self.boxes) != k \
                or len(self.class_ids) != k or len(self.labels) != k:
            raise ValueError('masks, boxes, scores, class_ids and labels must describe the same instances')

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, height: int, width: int) -> Segmentation:
        """No instances, for an image of the given size."""
        return cls(masks=np.zeros((0, height, width), bool), boxes=np.zeros((0, 4), np.float32),
                   scores=np.zeros(0, np.float32), class_ids=np.zeros(0, np.int32), labels=[])

    def sorted(self) -> Segmentation:
        """Copy sorted by descending score (ties keep their order)."""
        order = np.argsort(-self.scores, kind='stable')
        return Segmentation(masks=self.masks[order], boxes=self.boxes[order], scores=self.scores[order],
                            class_ids=self.class_ids[order], labels=[self.labels[i] for i in order])


class SegmentationBackend(Protocol):
    """What the pipeline needs from a segmenter."""

    #: Short name of the backend and model, reported in results (e.g. ``ultralytics:yolov8n-seg.pt``).
    name: str

    def segment(self, image_rgb: np.ndarray) -> Segmentation:
        """Instance masks of an ``(H, W, 3)`` uint8 RGB image, at that image's size."""
        ...


def parse_class_filter(spec: str, names: dict[int, str]) -> list[int] | None:
    """Class filter from ``'chair, 41'`` style text; None = all. Unknown names raise ValueError."""
    items = [s.strip() for s in spec.split(',') if s.strip()]
    if not items:
        return None
    by_name = {v.lower(): k for k, v in names.items()}
    ids = []
    for item in items:
        if item.lstrip('-').isdigit():
            ids.append(int(item))
        elif item.lower() in by_name:
            ids.append(by_name[item.lower()])
        else:
            raise ValueError(f'unknown class {item!r}; the model knows e.g. {", ".join(list(by_name)[:8])}, ...')
    return ids
