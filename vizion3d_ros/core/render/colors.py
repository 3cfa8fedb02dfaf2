"""Distinct, stable colours for instances and classes."""
from __future__ import annotations

import colorsys

import numpy as np

_GOLDEN = 0.618033988749895


def distinct_color(i: int) -> tuple[int, int, int]:
    """The i-th colour of an endless sequence of well-separated saturated hues (RGB, 0-255)."""
    h = (0.08 + i * _GOLDEN) % 1.0
    s = 0.85 if i % 2 == 0 else 0.65
    r, g, b = colorsys.hsv_to_rgb(h, s, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def palette(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 array of :func:`distinct_color` 0..n-1."""
    return np.array([distinct_color(i) for i in range(n)], dtype=np.uint8).reshape(n, 3)


def recolor(colors: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Copy of ``(N, 3)`` uint8 ``colors`` with the points of group k painted in ``distinct_color(k)``."""
    out = np.array(colors, dtype=np.uint8, copy=True)
    pal = palette(len(groups))
    for k, idx in enumerate(groups):
        out[idx] = pal[k]
    return out
