"""Instance masks made elsewhere (painted by hand, another segmenter) served as a segmentation backend.

Useful to run the 3D pipeline on ground-truth or third-party masks, and to test it without a model.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from .base import Segmentation

_LABEL_DTYPES = (np.uint8, np.uint16)


class ExternalMasksBackend:
    """Returns the same fixed instance masks for every image of their size.

    Build it with :meth:`from_label_image`, :meth:`from_png` or :meth:`from_arrays`. Empty masks are
    dropped, boxes are computed from the masks (tight, inclusive pixel indices like
    :func:`vizion3d_ros.core.lifting.lift.mask_boxes`) and instances are sorted by descending score.
    """

    name = 'external'

    def __init__(self, segmentation: Segmentation) -> None:
        seg = segmentation.sorted()
        for arr in (seg.masks, seg.boxes, seg.scores, seg.class_ids):
            arr.setflags(write=False)  # shared by every result: a consumer must not change the next frame's
        self._seg = seg

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the masks, which every segmented image must have."""
        return self._seg.masks.shape[1], self._seg.masks.shape[2]

    def __len__(self) -> int:
        return len(self._seg)

    def segment(self, image_rgb: np.ndarray) -> Segmentation:
        """The stored masks, after checking that ``image_rgb`` has their size (no rescaling)."""
        h, w = self.size
        if np.ndim(image_rgb) < 2 or tuple(image_rgb.shape[:2]) != (h, w):
            got = 'x'.join(map(str, image_rgb.shape[1::-1])) if np.ndim(image_rgb) >= 2 else str(image_rgb.shape)
            raise ValueError(f'image is {got} (WxH) but the external masks are {w}x{h}: they must match')
        s = self._seg
        return Segmentation(masks=s.masks, boxes=s.boxes, scores=s.scores, class_ids=s.class_ids,
                            labels=list(s.labels))

    @classmethod
    def from_arrays(cls, masks: np.ndarray, scores: Sequence[float] | np.ndarray | None = None,
                    class_ids: Sequence[int] | np.ndarray | None = None,
                    labels: Sequence[str] | None = None) -> ExternalMasksBackend:
        """From ``(K, H, W)`` masks (non-zero = inside); defaults: score 1, class -1, label ``instance_<i>``."""
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise ValueError(f'masks must be (K, H, W), got shape {masks.shape}')
        masks = masks.astype(bool, copy=False)
        k = masks.shape[0]
        scores_a = _per_instance(scores, k, 1.0, np.float32, 'scores')
        class_a = _per_instance(class_ids, k, -1, np.int32, 'class_ids')
        if labels is None:
            labels = [f'instance_{i}' for i in range(k)]
        elif len(labels) != k:
            raise ValueError(f'{len(labels)} labels for {k} masks')
        keep = np.flatnonzero(masks.reshape(k, -1).any(axis=1))
        masks = masks[keep]
        seg = Segmentation(masks=masks, boxes=_tight_boxes(masks), scores=scores_a[keep], class_ids=class_a[keep],
                           labels=[str(labels[i]) for i in keep])
        return cls(seg)

    @classmethod
    def from_label_image(cls, labels: np.ndarray, class_ids: Mapping[int, int] | None = None,
                         labels_text: Mapping[int, str] | None = None,
                         scores: Mapping[int, float] | None = None) -> ExternalMasksBackend:
        """From a uint8/uint16 label image: each non-zero value ``v`` is one instance, 0 is background.

        The mappings are keyed by label value; values they leave out get class -1, label ``instance_<v>``
        and score 1. Equal scores keep ascending label order.
        """
        labels = _check_label_image(np.asarray(labels), 'label image')
        values = np.unique(labels)
        values = values[values != 0]
        class_ids, labels_text, scores = class_ids or {}, labels_text or {}, scores or {}
        masks = np.empty((len(values),) + labels.shape, bool)
        for i, v in enumerate(values):
            np.equal(labels, v, out=masks[i])
        vs = [int(v) for v in values]
        seg = Segmentation(masks=masks, boxes=_tight_boxes(masks),
                           scores=np.array([scores.get(v, 1.0) for v in vs], np.float32).reshape(-1),
                           class_ids=np.array([class_ids.get(v, -1) for v in vs], np.int32).reshape(-1),
                           labels=[str(labels_text.get(v, f'instance_{v}')) for v in vs])
        return cls(seg)

    @classmethod
    def from_png(cls, path: str | os.PathLike, class_ids: Mapping[int, int] | None = None,
                 labels_text: Mapping[int, str] | None = None,
                 scores: Mapping[int, float] | None = None) -> ExternalMasksBackend:
        """From a single-channel 8- or 16-bit label PNG (see :meth:`from_label_image`)."""
        import cv2
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'label image {path!r} does not exist')
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f'label image {path!r} could not be read as an image')
        return cls.from_label_image(_check_label_image(image, f'label image {path!r}'), class_ids=class_ids,
                                    labels_text=labels_text, scores=scores)


def _check_label_image(labels: np.ndarray, what: str) -> np.ndarray:
    # A colour image here almost always means a visualisation was saved instead of the ids: say so.
    if labels.ndim == 3 and labels.shape[2] == 1:
        labels = labels[..., 0]
    if labels.ndim != 2:
        found = f'{labels.shape[2]} channels' if labels.ndim == 3 else f'shape {labels.shape}'
        raise ValueError(f'{what} must be a single-channel image of instance ids, found {found}')
    if labels.dtype not in _LABEL_DTYPES:
        raise ValueError(f'{what} must be 8- or 16-bit unsigned (uint8/uint16), found {labels.dtype}')
    return labels


def _per_instance(values: Sequence | np.ndarray | None, k: int, default: float, dtype: type,
                  what: str) -> np.ndarray:
    if values is None:
        return np.full(k, default, dtype)
    arr = np.asarray(values, dtype).reshape(-1)
    if len(arr) != k:
        raise ValueError(f'{len(arr)} {what} for {k} masks')
    return arr


def _tight_boxes(masks: np.ndarray) -> np.ndarray:
    out = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        if rows.size:
            out[i] = (cols[0], rows[0], cols[-1], rows[-1])
    return out
