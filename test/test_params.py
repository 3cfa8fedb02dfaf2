"""The parameter table and its validation, without a node."""
from __future__ import annotations

import dataclasses

import pytest
from rcl_interfaces.msg import ParameterDescriptor

from vizion3d_ros.ros.params import (
    SPECS,
    USED_BY_ACTIVATE,
    NodeSettings,
    SettingsError,
    check_value,
    check_values,
    descriptor,
    settings_from_values,
    validate_settings,
)

COCO = {0: 'person', 41: 'cup', 56: 'chair'}


def test_every_setting_has_a_spec_and_the_defaults_are_valid():
    names = {f.name for f in dataclasses.fields(NodeSettings)}
    assert names == set(SPECS)
    assert validate_settings(NodeSettings()) == NodeSettings()


def test_descriptors_carry_ranges_choices_read_only_and_when_changes_apply():
    d = descriptor('conf_threshold')
    assert isinstance(d, ParameterDescriptor)
    assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == (0.0, 1.0)
    assert 'next frame' in d.description
    imgsz = descriptor('imgsz')
    assert (imgsz.integer_range[0].from_value, imgsz.integer_range[0].step) == (32, 32)
    assert 'next activation' in imgsz.description
    assert 'next configure' in descriptor('sync_slop').description
    assert descriptor('autostart').read_only and not descriptor('model').read_only
    assert 'visible' in descriptor('lift_mode').additional_constraints
    assert descriptor('cloud_to_camera').dynamic_typing


@pytest.mark.parametrize('name, value, message', [
    ('conf_threshold', 1.5, 'conf_threshold must be in [0.0, 1.0], got 1.5'),
    ('conf_threshold', float('nan'), 'must be finite'),
    ('iou_threshold', -0.1, 'iou_threshold must be in'),
    ('imgsz', 100, 'multiple of 32'),
    ('imgsz', 8192, 'imgsz must be in'),
    ('edge_band', 51, 'edge_band must be in'),
    ('lift_mode', 'bogus', 'lift_mode must be one of visible, exclusive, naive'),
    ('input_reliability', 'reliable_ish', 'input_reliability must be one of'),
    ('intrinsics_source', 'k', 'intrinsics_source must be one of auto, K, P'),
    ('device', 'gpu', 'device must be'),
    ('cloud_to_camera', '1 2 3', 'expected 7 numbers'),
    ('cloud_to_camera', [0.0] * 7, 'no rotation'),
    ('cloud_to_camera', 'a b c d e f g', 'separated by spaces'),
    ('max_frame_age', -1.0, 'max_frame_age must be in'),
    ('min_points', 'ten', 'min_points must be a int'),
    ('publish_annotated_cloud', 1, 'must be a bool'),
    ('sync_queue_size', True, 'must be a int'),
])
def test_bad_values_are_rejected_with_a_reason(name, value, message):
    problem = check_value(name, value)
    assert problem is not None and message in problem or pytest.fail(f'{name}={value!r}: {problem!r}')


@pytest.mark.parametrize('name, value', [
    ('conf_threshold', 0.0), ('conf_threshold', 1), ('imgsz', 320), ('device', 'cuda:1'), ('device', '0'),
    ('device', 'mps'), ('cloud_to_camera', ''), ('cloud_to_camera', []), ('cloud_to_camera', '0 0 0 0 0 0 1'),
    ('cloud_to_camera', [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]), ('lift_mode', 'naive'),
    ('classes', 'anything at all'), ('intrinsics_source', 'P'), ('unknown_parameter', object()),
])
def test_good_values_pass(name, value):
    assert check_value(name, value) is None


def test_classes_are_checked_against_the_loaded_model_only():
    assert check_value('classes', 'unicorn') is None  # no model loaded yet: checked on activation
    assert "unknown class 'unicorn'" in check_value('classes', 'chair, unicorn', COCO)
    assert 'no class id 7' in check_value('classes', '7', COCO)
    assert check_value('classes', 'Chair, 41', COCO) is None
    assert check_value('classes', '', COCO) is None


def test_check_values_joins_every_problem():
    problem = check_values({'conf_threshold': 2.0, 'lift_mode': 'x', 'min_points': 3})
    assert 'conf_threshold' in problem and 'lift_mode' in problem and 'min_points' not in problem
    assert check_values({'conf_threshold': 0.5}) is None


def test_validate_settings_raises_with_all_problems():
    bad = dataclasses.replace(NodeSettings(), lift_mode='x', cloud_to_camera='1')
    with pytest.raises(SettingsError, match='lift_mode.*cloud_to_camera'):
        validate_settings(bad)


def test_settings_from_parameter_values():
    import array
    s = settings_from_values({'cloud_to_camera': array.array('d', [0.0] * 6 + [1.0]), 'imgsz': 320,
                              'model': None, 'not_a_setting': 1})
    assert s.cloud_to_camera == [0.0] * 6 + [1.0] and isinstance(s.cloud_to_camera, list)
    assert s.imgsz == 320 and s.model == ''  # None (NOT_SET, e.g. `[]` in YAML) keeps the default


def test_a_failed_activation_waits_for_the_model_parameters():
    assert {'model', 'device', 'imgsz', 'classes'} <= USED_BY_ACTIVATE
    assert 'conf_threshold' not in USED_BY_ACTIVATE
