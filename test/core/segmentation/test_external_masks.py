"""External masks backend: label images, label PNGs and mask arrays turned into a Segmentation."""
import cv2
import numpy as np
import pytest

from vizion3d_ros.core.segmentation import ExternalMasksBackend

H, W = 48, 64


def _label_image(dtype, values):
    """Three instances of different shapes (the third one touches the image corner) and background."""
    a, b, c = values
    img = np.zeros((H, W), dtype)
    img[5:15, 10:30] = a                 # rectangle: x 10..29, y 5..14
    img[20:40, 40:45] = b                # tall strip: x 40..44, y 20..39
    img[20:25, 40:42] = 0                # with a hole cut from its top-left corner (box unchanged)
    img[44:, 60:] = c                    # corner block: x 60..63, y 44..47
    img[30, 5] = c                       # plus one stray pixel of the same instance far away
    return img


EXPECTED_BOXES = {0: [10, 5, 29, 14], 1: [40, 20, 44, 39], 2: [5, 30, 63, 47]}


@pytest.mark.parametrize('dtype, values', [(np.uint8, (3, 7, 200)), (np.uint16, (3, 300, 65535))])
def test_label_image_gives_one_instance_per_value(dtype, values):
    img = _label_image(dtype, values)
    backend = ExternalMasksBackend.from_label_image(img)
    assert backend.name == 'external'
    seg = backend.segment(np.zeros((H, W, 3), np.uint8))
    assert len(seg) == 3 and seg.masks.shape == (3, H, W) and seg.masks.dtype == bool
    # ascending label value (all scores equal), default texts / class ids / scores
    assert seg.labels == [f'instance_{v}' for v in values]
    assert seg.class_ids.tolist() == [-1, -1, -1] and seg.class_ids.dtype == np.int32
    assert seg.scores.tolist() == [1.0, 1.0, 1.0] and seg.scores.dtype == np.float32
    for i, v in enumerate(values):
        np.testing.assert_array_equal(seg.masks[i], img == v)
        assert seg.boxes[i].tolist() == EXPECTED_BOXES[i]
    assert seg.boxes.dtype == np.float32
    assert not seg.masks.any(axis=0)[img == 0].any()


def test_label_image_mappings_are_honoured_and_order_by_score():
    img = _label_image(np.uint16, (3, 300, 65535))
    backend = ExternalMasksBackend.from_label_image(
        img, class_ids={3: 56, 65535: 41, 999: 1},  # 999 is not in the image: ignored
        labels_text={300: 'painted chair'}, scores={3: 0.2, 300: 0.9})
    seg = backend.segment(np.zeros((H, W, 3), np.uint8))
    # 65535 has the default score 1.0, then 300 (0.9), then 3 (0.2)
    assert seg.labels == ['instance_65535', 'painted chair', 'instance_3']
    assert seg.class_ids.tolist() == [41, -1, 56]
    np.testing.assert_allclose(seg.scores, [1.0, 0.9, 0.2])
    np.testing.assert_array_equal(seg.masks[1], img == 300)
    assert seg.boxes[2].tolist() == EXPECTED_BOXES[0]


def test_equal_scores_keep_ascending_label_order():
    img = np.zeros((H, W), np.uint8)
    for v in (9, 1, 5):  # painted in another order
        img[v, v] = v
    seg = ExternalMasksBackend.from_label_image(img, scores={1: 0.5, 5: 0.5, 9: 0.5}).segment(
        np.zeros((H, W, 3), np.uint8))
    assert seg.labels == ['instance_1', 'instance_5', 'instance_9']


def test_background_only_gives_no_instances():
    seg = ExternalMasksBackend.from_label_image(np.zeros((H, W), np.uint8)).segment(np.zeros((H, W, 3), np.uint8))
    assert len(seg) == 0 and seg.masks.shape == (0, H, W) and seg.boxes.shape == (0, 4)


@pytest.mark.parametrize('dtype, values', [(np.uint8, (3, 7, 200)), (np.uint16, (3, 300, 65535))])
def test_png_round_trip(tmp_path, dtype, values):
    img = _label_image(dtype, values)
    path = tmp_path / f'labels_{np.dtype(dtype).name}.png'
    assert cv2.imwrite(str(path), img)
    seg = ExternalMasksBackend.from_png(path, labels_text={values[1]: 'b'}).segment(np.zeros((H, W, 3), np.uint8))
    assert seg.labels == [f'instance_{values[0]}', 'b', f'instance_{values[2]}']
    for i, v in enumerate(values):
        np.testing.assert_array_equal(seg.masks[i], img == v)
        assert seg.boxes[i].tolist() == EXPECTED_BOXES[i]


def test_colour_png_is_rejected(tmp_path):
    path = tmp_path / 'painted.png'
    colour = np.zeros((H, W, 3), np.uint8)
    colour[5:15, 10:30] = (0, 0, 255)
    assert cv2.imwrite(str(path), colour)
    with pytest.raises(ValueError, match=r'painted\.png.*single-channel.*3 channels'):
        ExternalMasksBackend.from_png(path)


def test_other_dtypes_and_missing_files_are_rejected(tmp_path):
    with pytest.raises(ValueError, match='uint8/uint16.*int32'):
        ExternalMasksBackend.from_label_image(np.ones((H, W), np.int32))
    with pytest.raises(ValueError, match='found float32'):
        ExternalMasksBackend.from_label_image(np.ones((H, W), np.float32))
    with pytest.raises(FileNotFoundError, match='absent.png'):
        ExternalMasksBackend.from_png(tmp_path / 'absent.png')
    (tmp_path / 'junk.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match='junk.png.*could not be read'):
        ExternalMasksBackend.from_png(tmp_path / 'junk.png')


def test_image_size_must_match_the_masks():
    backend = ExternalMasksBackend.from_label_image(_label_image(np.uint8, (1, 2, 3)))
    with pytest.raises(ValueError, match=rf'640x480.*{W}x{H}'):
        backend.segment(np.zeros((480, 640, 3), np.uint8))
    with pytest.raises(ValueError, match=rf'{H}x{W}.*{W}x{H}'):  # transposed
        backend.segment(np.zeros((W, H, 3), np.uint8))
    assert len(backend.segment(np.zeros((H, W, 3), np.uint8))) == 3


def test_arrays_drop_empty_masks_and_sort_by_score():
    masks = np.zeros((4, H, W), bool)
    masks[0, 1:3, 2:5] = True
    masks[2, 10:20, 30:31] = True          # masks[1] and masks[3] stay empty
    backend = ExternalMasksBackend.from_arrays(masks, scores=[0.3, 0.99, 0.8, 0.95], class_ids=[1, 2, 3, 4],
                                               labels=['a', 'empty', 'c', 'empty too'])
    seg = backend.segment(np.zeros((H, W, 3), np.uint8))
    assert seg.labels == ['c', 'a']
    assert seg.class_ids.tolist() == [3, 1]
    np.testing.assert_allclose(seg.scores, [0.8, 0.3])
    np.testing.assert_array_equal(seg.masks, masks[[2, 0]])
    assert seg.boxes.tolist() == [[30, 10, 30, 19], [2, 1, 4, 2]]
    defaults = ExternalMasksBackend.from_arrays(masks).segment(np.zeros((H, W, 3), np.uint8))
    assert defaults.labels == ['instance_0', 'instance_2'] and defaults.class_ids.tolist() == [-1, -1]


def test_arrays_with_wrong_lengths_are_rejected():
    masks = np.ones((2, H, W), bool)
    with pytest.raises(ValueError, match='3 scores for 2 masks'):
        ExternalMasksBackend.from_arrays(masks, scores=[1, 2, 3])
    with pytest.raises(ValueError, match='1 labels for 2 masks'):
        ExternalMasksBackend.from_arrays(masks, labels=['a'])
    with pytest.raises(ValueError, match=r'\(K, H, W\)'):
        ExternalMasksBackend.from_arrays(np.ones((H, W), bool))


def test_results_cannot_corrupt_the_next_frame():
    backend = ExternalMasksBackend.from_label_image(_label_image(np.uint8, (1, 2, 3)))
    first = backend.segment(np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match='read-only'):
        first.masks[0, 0, 0] = True
    first.labels[0] = 'changed'
    assert backend.segment(np.zeros((H, W, 3), np.uint8)).labels[0] == 'instance_1'
