"""Ultralytics YOLO instance segmentation (.pt checkpoints and the exported formats it loads)."""
from __future__ import annotations

import gc
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import Segmentation

_load_lock = threading.Lock()
_models: dict[tuple[str, str | None], object] = {}


def configure_offline_environment() -> None:
    """Keep Ultralytics from reaching the network or writing outside a cache (must run before import).

    Robots often run without internet; Ultralytics otherwise tries to auto-install packages, check for
    updates and fetch fonts. Values already set by the user are kept.
    """
    os.environ.setdefault('YOLO_OFFLINE', '1')
    os.environ.setdefault('YOLO_AUTOINSTALL', 'False')
    os.environ.setdefault('YOLO_VERBOSE', 'False')
    os.environ.setdefault('ORT_DISABLE_TELEMETRY', '1')
    if 'YOLO_CONFIG_DIR' not in os.environ:
        cfg = Path.home() / '.cache' / 'vizion3d' / 'ultralytics'
        cfg.mkdir(parents=True, exist_ok=True)
        os.environ['YOLO_CONFIG_DIR'] = str(cfg)


def select_device(requested: str = 'auto') -> str:
    """Resolve ``auto`` to the best available torch device: cuda > mps > cpu."""
    if requested and requested != 'auto':
        return requested
    import torch
    if torch.cuda.is_available():
        return 'cuda:0'
    mps = getattr(torch.backends, 'mps', None)
    if mps is not None and mps.is_available():
        return 'mps'
    return 'cpu'


def _task_for(path: Path) -> str | None:
    # Exported formats (.onnx, .engine, ...) do not always carry the task; .pt checkpoints do.
    return None if path.suffix == '.pt' else 'segment'


def load_model(path: Path):
    """Load (once per process, thread-safely) the Ultralytics model at ``path``."""
    configure_offline_environment()
    key = (str(Path(path).resolve()), _task_for(Path(path)))
    with _load_lock:
        model = _models.get(key)
        if model is None:
            from ultralytics import YOLO
            model = YOLO(key[0], task=key[1])
            _models[key] = model
        return model


def release_model(path: Path, device: str | None = None) -> None:
    """Forget the cached model at ``path`` and give its memory back.

    Callers drop their own references first (the backend and pipeline); then the cache entry goes,
    ``gc.collect()`` frees the model's reference cycles, and on CUDA the allocator's cached blocks are
    returned to the driver (``torch.cuda.empty_cache``), so other processes can use the memory.
    """
    key = (str(Path(path).resolve()), _task_for(Path(path)))
    with _load_lock:
        _models.pop(key, None)
    gc.collect()
    if device and (device.startswith('cuda') or device[0].isdigit()):
        import torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class UltralyticsBackend:
    """Instance segmentation with an Ultralytics YOLO model.

    Masks are returned at the input image's resolution (``retina_masks``), so they line up with the
    camera intrinsics without any rescaling on our side.
    """

    def __init__(self, model_path: Path, device: str = 'auto', imgsz: int = 640,
                 conf_threshold: float = 0.25, iou_threshold: float = 0.45,
                 classes: Sequence[int] | None = None, cpu_threads: int | None = None) -> None:
        self.model_path = Path(model_path)
        self.device = select_device(device)
        self.imgsz = int(imgsz)
        self.conf_threshold = float(conf_threshold)
        self.iou_threshold = float(iou_threshold)
        self.classes = list(classes) if classes else None
        self.cpu_threads = cpu_threads or os.cpu_count() or 1
        self.model = load_model(self.model_path)
        self.name = f'ultralytics:{self.model_path.name}'
        self._threads_set = False

    @property
    def class_names(self) -> dict[int, str]:
        """Class index -> name of the loaded model."""
        return dict(self.model.names)

    def warmup(self, height: int = 480, width: int = 640) -> None:
        """Run one inference on a blank image so the first real frame is not slow."""
        self.segment(np.zeros((height, width, 3), np.uint8))

    def segment(self, image_rgb: np.ndarray) -> Segmentation:
        """Segment an ``(H, W, 3)`` uint8 RGB image."""
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f'expected an (H, W, 3) uint8 RGB image, got {image_rgb.shape} {image_rgb.dtype}')
        h, w = image_rgb.shape[:2]
        bgr = np.ascontiguousarray(image_rgb[..., ::-1])  # Ultralytics takes OpenCV's BGR order
        results = self.model.predict(source=bgr, conf=self.conf_threshold, iou=self.iou_threshold,
                                     imgsz=self.imgsz, device=self.device, classes=self.classes,
                                     retina_masks=True, verbose=False)
        self._use_all_cores()
        res = results[0]
        if res.masks is None or res.boxes is None or len(res.boxes) == 0:
            return Segmentation.empty(h, w)
        masks = res.masks.data.cpu().numpy() > 0.5
        if masks.shape[1:] != (h, w):  # exported models can return the letterboxed size
            masks = _resize_masks(masks, h, w)
        boxes = res.boxes.xyxy.cpu().numpy().astype(np.float32)
        scores = res.boxes.conf.cpu().numpy().astype(np.float32)
        class_ids = res.boxes.cls.cpu().numpy().astype(np.int32)
        names = res.names
        seg = Segmentation(masks=masks, boxes=boxes, scores=scores, class_ids=class_ids,
                           labels=[str(names[int(c)]) for c in class_ids])
        return seg.sorted()

    def _use_all_cores(self) -> None:
        # The predictor pins torch to min(8, cores - 1) threads on its first call (1 thread on a
        # 2-core robot computer); resetting it afterwards makes CPU inference ~1.7x faster there.
        if not self._threads_set and self.device == 'cpu':
            import torch
            torch.set_num_threads(self.cpu_threads)
        self._threads_set = True


def _resize_masks(masks: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2
    out = np.empty((masks.shape[0], h, w), bool)
    for i, m in enumerate(masks):  # per instance, not per pixel
        out[i] = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return out
