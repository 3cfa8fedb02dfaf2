"""The Ultralytics backend on the real TUM frame with the real COCO checkpoint."""
import numpy as np
import pytest

from vizion3d_ros.core.segmentation.base import Segmentation, parse_class_filter

pytestmark = pytest.mark.model


def test_real_checkpoint_finds_the_two_chairs(tum_segmentation, tum_frame):
    seg = tum_segmentation
    h, w = tum_frame.color.shape[:2]
    assert seg.masks.shape[1:] == (h, w) and seg.masks.dtype == bool
    assert seg.labels.count('chair') >= 2
    assert np.all(np.diff(seg.scores) <= 0), 'sorted by descending confidence'
    assert np.all((seg.scores >= 0.25) & (seg.scores <= 1))
    for mask, box in zip(seg.masks, seg.boxes):
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0
        # the mask lies (up to a couple of pixels of rounding) inside its box
        assert xs.min() >= box[0] - 2 and xs.max() <= box[2] + 2
        assert ys.min() >= box[1] - 2 and ys.max() <= box[3] + 2


def test_class_filter_and_thresholds(tum_frame, model_pt):
    from vizion3d_ros.core.segmentation.ultralytics_backend import UltralyticsBackend
    backend = UltralyticsBackend(model_pt, device='cpu', conf_threshold=0.5)
    backend.classes = parse_class_filter('chair', backend.class_names)
    seg = backend.segment(tum_frame.color)
    assert len(seg) >= 2 and set(seg.labels) == {'chair'} and seg.scores.min() >= 0.5


def test_parse_class_filter():
    names = {0: 'person', 56: 'chair', 41: 'cup'}
    assert parse_class_filter('', names) is None
    assert parse_class_filter('chair, 41 ,Person', names) == [56, 41, 0]
    with pytest.raises(ValueError, match="unknown class 'sofa'"):
        parse_class_filter('sofa', names)


def test_segmentation_sorting_and_validation():
    seg = Segmentation(masks=np.zeros((2, 3, 3), bool), boxes=np.zeros((2, 4), np.float32),
                       scores=np.array([0.2, 0.9], np.float32), class_ids=np.array([1, 2], np.int32),
                       labels=['a', 'b']).sorted()
    assert seg.labels == ['b', 'a'] and seg.class_ids.tolist() == [2, 1]
    with pytest.raises(ValueError):
        Segmentation(masks=np.zeros((1, 3, 3), bool), boxes=np.zeros((2, 4)), scores=np.zeros(2),
                     class_ids=np.zeros(2), labels=['a', 'b'])


def test_exported_onnx_model_segments_the_real_frame(tum_frame):
    """The int8 ONNX export (fixed 320x320 input) through the same backend, via onnxruntime."""
    from conftest import MODEL_ONNX

    from vizion3d_ros.core.segmentation.ultralytics_backend import UltralyticsBackend
    seg = UltralyticsBackend(MODEL_ONNX, device='cpu', imgsz=320).segment(tum_frame.color)
    assert seg.masks.shape[1:] == tum_frame.color.shape[:2]
    assert seg.labels.count('chair') >= 2
