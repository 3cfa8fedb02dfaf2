"""Per-frame mask folders (vizion3d_ros.core.io.masks): instance and semantic masks, every way a file is wrong."""
import json

import cv2
import numpy as np
import pytest

from vizion3d_ros.core.io.masks import MaskError, MaskFolder, write_instance_masks

META = {1: {'class_id': 56, 'label': 'chair', 'confidence': 0.8}, 300: {'class_id': 73, 'label': 'book',
                                                                        'confidence': 0.5}}


def _labels(values=(1, 300), shape=(24, 32)) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    for k, v in enumerate(values):
        labels[4 * k:4 * k + 3, 2 + 5 * k:7 + 5 * k] = v
    return labels


def test_instance_masks_come_back_with_their_classes(tmp_path):
    labels = _labels()
    write_instance_masks(tmp_path, '00007', labels, META)
    folder = MaskFolder(tmp_path)
    assert folder.stems() == ['00007']
    got, meta = folder.read('00007', labels.shape)
    np.testing.assert_array_equal(got, labels)  # 300 needs 16 bits: written and read as such
    assert meta == META
    assert folder.read('00008') is None  # no file: the frame contributes geometry only


def test_an_8_bit_instance_image_and_entries_of_absent_values(tmp_path):
    labels = _labels(values=(1,))
    write_instance_masks(tmp_path, 'a', labels, META)  # 300 is described but not in the image
    assert cv2.imread(str(tmp_path / 'a.png'), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    _, meta = MaskFolder(tmp_path).read('a')
    assert meta == {1: META[1]}


def test_semantic_masks_take_the_value_as_the_class_and_names_from_classes_json(tmp_path):
    labels = _labels(values=(3, 7))
    cv2.imwrite(str(tmp_path / 'f.png'), labels.astype(np.uint8))
    (tmp_path / 'classes.json').write_text(json.dumps({'3': 'floor', '7': 'sofa'}))
    got, meta = MaskFolder(tmp_path, 'semantic').read('f')
    np.testing.assert_array_equal(got, labels)
    assert meta == {3: {'class_id': 3, 'label': 'floor', 'confidence': 1.0},
                    7: {'class_id': 7, 'label': 'sofa', 'confidence': 1.0}}


@pytest.mark.parametrize('spoil, words', [
    (lambda d: (d / 'f.json').unlink(), ['f.json', 'missing']),
    (lambda d: (d / 'f.json').write_text('{"1": {"class_id": 56'), ['f.json', 'not valid JSON']),
    (lambda d: (d / 'f.json').write_text('[1, 2]'), ['f.json', 'expected an object']),
    (lambda d: (d / 'f.json').write_text('{"1": {"label": "chair"}}'), ['f.json', "entry '1'", 'class_id']),
    (lambda d: (d / 'f.json').write_text('{"1": {"class_id": 1, "confidence": 7}}'), ['confidence 7.0']),
    (lambda d: (d / 'f.json').write_text('{"1": {"class_id": 56}}'), ['no entry for mask value(s) [300]']),
    (lambda d: (d / 'f.png').write_bytes(b'\x89PNG\r\n not really'), ['f.png', 'not a readable PNG']),
    (lambda d: cv2.imwrite(str(d / 'f.png'), np.zeros((24, 32, 3), np.uint8)), ['f.png', 'single-channel']),
    (lambda d: cv2.imwrite(str(d / 'f.png'), np.zeros((20, 32), np.uint8)), ['f.png', '32x20', 'the frame 32x24']),
])
def test_a_bad_mask_file_names_the_file_and_the_problem(tmp_path, spoil, words):
    write_instance_masks(tmp_path, 'f', _labels(), META)
    spoil(tmp_path)
    with pytest.raises(MaskError) as err:
        MaskFolder(tmp_path).read('f', (24, 32))
    for w in words:
        assert w in str(err.value), str(err.value)


def test_a_bad_classes_json_or_folder_is_refused(tmp_path):
    (tmp_path / 'classes.json').write_text('["floor"]')
    with pytest.raises(MaskError, match='classes.json'):
        MaskFolder(tmp_path, 'semantic')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        MaskFolder(tmp_path / 'nope')
    with pytest.raises(ValueError, match='mask kind'):
        MaskFolder(tmp_path, 'panoptic')
