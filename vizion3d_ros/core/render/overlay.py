"""Pictures for people: masks, boxes and labels drawn over the camera image."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .colors import palette


def tint_masks(image_rgb: np.ndarray, masks: Sequence[np.ndarray], colors: np.ndarray,
               alpha: float = 0.5) -> np.ndarray:
    """Copy of ``image_rgb`` with each ``(H, W)`` bool mask blended with its row of ``(K, 3)`` ``colors``.

    Where masks overlap the first one wins (objects come in descending confidence), so a pixel is
    tinted once and overlapping masks do not darken each other.
    """
    out = np.array(image_rgb, dtype=np.uint8, copy=True)
    if len(masks) == 0:
        return out
    stack = np.stack([np.asarray(m, dtype=bool) for m in masks])
    if stack.shape[1:] != out.shape[:2]:
        raise ValueError(f'masks are {stack.shape[2]}x{stack.shape[1]} but the image is '
                         f'{out.shape[1]}x{out.shape[0]}')
    covered = stack.any(axis=0)
    owner = stack.argmax(axis=0)[covered]  # index of the first mask covering each covered pixel
    tint = np.asarray(colors, dtype=np.float32)[owner]
    out[covered] = (out[covered] * (1.0 - alpha) + tint * alpha + 0.5).astype(np.uint8)
    return out


def overlay(image_rgb: np.ndarray, objects: Sequence, alpha: float = 0.5) -> np.ndarray:
    """RGB image with each object's mask tinted in its instance colour, its box and its label.

    ``objects`` need ``mask``, ``bbox_2d``, ``label``, ``confidence`` and ``point_indices``
    (e.g. :class:`~vizion3d_ros.core.pipeline.LiftedObject`); colours match the annotated cloud.
    """
    import cv2

    pal = palette(len(objects))
    out = tint_masks(image_rgb, [obj.mask for obj in objects], pal, alpha)
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


def render_overlay(image_rgb: np.ndarray, objects: Sequence) -> np.ndarray:
    """The node's debug image: :func:`overlay` of a frame's LiftedObjects, always ``(H, W, 3)`` uint8 RGB.

    A mono image is drawn on in grey; colours are the instance colours of the node's annotated cloud.
    """
    img = np.asarray(image_rgb)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f'expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {img.shape}')
    return overlay(np.ascontiguousarray(img[:, :, :3], dtype=np.uint8), objects)
