"""Per-frame masks from a folder, as ``vizion3d-fuse --masks DIR`` reads them.

``DIR/<stem>.png`` is an 8- or 16-bit label image of the frame ``<stem>`` (0 = nothing). In ``instance``
masks each other value is one object *of that frame* (numbers are unrelated between frames), described by
``DIR/<stem>.json`` = ``{"<value>": {"class_id": int, "label": str, "confidence": float}}``. In
``semantic`` masks the value is the class itself, consistent over frames, named by an optional
``DIR/classes.json`` = ``{"<value>": "name"}``. A frame without a PNG contributes geometry only.

A file that exists but cannot be used raises :class:`MaskError` naming the file and what is wrong, so that
the caller can skip that frame's masks (or the frame) and go on.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

MASK_KINDS = ('instance', 'semantic')


class MaskError(ValueError):
    """A mask file (image or JSON) of one frame is unreadable or inconsistent."""


class MaskFolder:
    """The masks of ``folder``, by frame stem."""

    def __init__(self, folder: str | Path, kind: str = 'instance') -> None:
        if kind not in MASK_KINDS:
            raise ValueError(f'mask kind must be one of {MASK_KINDS}, got {kind!r}')
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f'mask folder {self.folder} does not exist')
        self.kind = kind
        self.class_names: dict[int, str] = {}
        names = self.folder / 'classes.json'
        if kind == 'semantic' and names.exists():
            raw = _read_json(names)
            try:
                self.class_names = {int(k): str(v) for k, v in raw.items()}
            except (AttributeError, TypeError, ValueError) as exc:
                raise MaskError(f'{names}: expected {{"<value>": "name"}}, got {str(raw)[:80]}') from exc

    def stems(self) -> list[str]:
        """Stems that have a mask image."""
        return sorted(p.stem for p in self.folder.glob('*.png'))

    def read(self, stem: str, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, dict[int, dict]] | None:
        """``(labels, meta)`` of the frame ``stem``, or None when it has no mask image.

        ``labels`` is (H, W) uint16 (checked against ``shape`` when given). ``meta[value]`` holds
        ``class_id``, ``label`` and ``confidence`` of every non-zero value present: from the frame's JSON
        for instance masks, the value itself (and classes.json's name) for semantic ones.
        """
        path = self.folder / f'{stem}.png'
        if not path.exists():
            return None
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise MaskError(f'{path}: not a readable PNG')
        if img.ndim != 2 or img.dtype not in (np.uint8, np.uint16):
            raise MaskError(f'{path}: a mask must be a single-channel 8- or 16-bit image, got '
                            f'{img.dtype} with shape {img.shape}')
        if shape is not None and img.shape != tuple(shape):
            raise MaskError(f'{path}: mask is {img.shape[1]}x{img.shape[0]}, the frame {shape[1]}x{shape[0]}')
        labels = img.astype(np.uint16, copy=False)
        values = np.unique(labels)
        values = values[values != 0]
        if self.kind == 'semantic':
            meta = {int(v): {'class_id': int(v), 'label': self.class_names.get(int(v), str(int(v))),
                             'confidence': 1.0} for v in values}
            return labels, meta
        return labels, self._instance_meta(stem, values)

    def _instance_meta(self, stem: str, values: np.ndarray) -> dict[int, dict]:
        path = self.folder / f'{stem}.json'
        if not path.exists():
            raise MaskError(f'{path}: missing (instance masks need the class of every value)')
        raw = _read_json(path)
        if not isinstance(raw, dict):
            raise MaskError(f'{path}: expected an object {{"<value>": {{...}}}}, got {type(raw).__name__}')
        meta: dict[int, dict] = {}
        for key, info in raw.items():
            try:
                value = int(key)
                entry = {'class_id': int(info['class_id']), 'label': str(info.get('label', info['class_id'])),
                         'confidence': float(info.get('confidence', 1.0))}
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise MaskError(f'{path}: entry {key!r} needs an integer "class_id" (and optional "label", '
                                f'"confidence"), got {str(info)[:80]}') from exc
            if not 0.0 <= entry['confidence'] <= 1.0:
                raise MaskError(f'{path}: entry {key!r} has confidence {entry["confidence"]}, expected 0 to 1')
            meta[value] = entry
        missing = [int(v) for v in values if int(v) not in meta]
        if missing:
            raise MaskError(f'{path}: no entry for mask value(s) {missing[:10]} present in {stem}.png')
        return {int(v): meta[int(v)] for v in values}


def write_instance_masks(folder: str | Path, stem: str, labels: np.ndarray, meta: dict[int, dict]) -> None:
    """Write one frame's instance masks in the layout :class:`MaskFolder` reads (for tools and tests)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    if not cv2.imwrite(str(folder / f'{stem}.png'), labels.astype(dtype)):
        raise OSError(f'could not write {folder / f"{stem}.png"}')
    entries = {str(v): {'class_id': int(m['class_id']), 'label': str(m.get('label', m['class_id'])),
                        'confidence': float(m.get('confidence', 1.0))} for v, m in meta.items()}
    (folder / f'{stem}.json').write_text(json.dumps(entries, indent=1))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaskError(f'{path}: not valid JSON ({exc})') from exc
