"""Pictures for people: masks, boxes and labels drawn over the camera image."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .colors import palette


def overlay(image_rgb: np.ndarray, objects: Sequence, alpha: float = 0.5) -> np.ndarray:
    """RGB image with each object's mask tinted in its instance colour, its box and its label.

    ``objects`` need ``mask``, ``bbox_2d``, ``label``, ``confidence`` and ``point_indices``
    (e.g. :class:`~vizion3d_ros.core.pipeline.LiftedObject`); colours match the annotated cloud.
    """
    import cv2

    out = np.array(image_rgb, dtype=np.uint8, copy=True)
    pal = palette(len(objects))
    for k, obj in enumerate(objects):
        color = pal[k].astype(np.float32)
        m = obj.mask
        out[m] = (out[m] * (1.0 - alpha) + color * alpha).astype(np.uint8)
    for k, obj in enumerate(objects):
        c = tuple(int(v) for v in pal[k])
        x1, y1, x2, y2 = (int(round(float(v))) for v in obj.bbox_2d)
        cv2.rectangle(out, (x1, y1), (x2, y2), c, 2)
        text = f'{obj.label} {obj.confidence:.2f} ({len(obj.point_indices)} pts)'
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        ty = max(y1, th + base + 2)
        cv2.rectangle(out, (x1, ty - th - base - 2), (x1 + tw + 4, ty), c, -1)
        cv2.putText(out, text, (x1 + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return out
