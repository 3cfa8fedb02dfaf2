"""The lifting targets of issue 3, asserted on ray-cast scenes with exact per-point labels.

Defaults must reach, per object: precision >= 0.98 and recall >= 0.97 (over the object's points that
project into its exact mask) on a cloud from a sensor 0.5 m beside the camera with exact masks, and
precision >= 0.97 on the camera's own depth cloud with masks 4 px too wide. The naive method is
measured beside it on the same inputs and must be clearly worse there (that is the point).
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from vizion3d_ros.core.lifting.lift import LiftConfig, lift_masks
from vizion3d_ros.core.synthetic.scenes import DEFAULT_CAMERA, precision_recall, random_scene, standard_scenes

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / 'bench'))
from eval_lifting import make_case  # noqa: E402

SCENES = standard_scenes() + [(f'random_{s}', random_scene(np.random.default_rng(s), num_objects=4,
                                                           near_wall=s % 2 == 0)) for s in (100, 101, 102)]


def scores_for(masks):
    return np.linspace(0.9, 0.5, len(masks))


@pytest.mark.parametrize('name, scene', SCENES, ids=[n for n, _ in SCENES])
def test_offset_sensor_cloud_with_exact_masks(name, scene):
    pts, pids, masks, exact = make_case(scene, 'offset_exact')
    res = precision_recall(lift_masks(pts, DEFAULT_CAMERA, masks, scores_for(masks)), pids, exact, pts,
                           DEFAULT_CAMERA)
    naive = precision_recall(lift_masks(pts, DEFAULT_CAMERA, masks, scores_for(masks), mode='naive'), pids,
                             exact, pts, DEFAULT_CAMERA)
    for k, (r, n) in enumerate(zip(res, naive)):
        assert r['precision'] >= 0.98, f'object {k + 1}: precision {r["precision"]:.3f} (naive {n["precision"]:.3f})'
        assert r['recall'] >= 0.97, f'object {k + 1}: recall {r["recall"]:.3f}'
    assert min(n['precision'] for n in naive) < 0.95, 'the scene should defeat the naive method'


@pytest.mark.parametrize('name, scene', SCENES, ids=[n for n, _ in SCENES])
def test_depth_cloud_with_masks_4px_too_wide(name, scene):
    pts, pids, masks, exact = make_case(scene, 'depth_dilated4')
    res = precision_recall(lift_masks(pts, DEFAULT_CAMERA, masks, scores_for(masks)), pids, exact, pts,
                           DEFAULT_CAMERA)
    for k, r in enumerate(res):
        assert r['precision'] >= 0.97, f'object {k + 1}: precision {r["precision"]:.3f}'
        assert r['recall'] >= 0.9, f'object {k + 1}: recall {r["recall"]:.3f}'


@pytest.mark.parametrize('name, scene', SCENES[:3], ids=[n for n, _ in SCENES[:3]])
def test_exact_masks_on_depth_cloud_keep_the_object(name, scene):
    pts, pids, masks, exact = make_case(scene, 'depth_exact')
    for k, r in enumerate(precision_recall(lift_masks(pts, DEFAULT_CAMERA, masks, scores_for(masks)), pids,
                                           exact, pts, DEFAULT_CAMERA)):
        assert r['precision'] >= 0.99 and r['recall'] >= 0.95, f'object {k + 1}: {r}'


def test_noisy_depth_still_beats_naive():
    """Kinect-like noise (sigma = 0.0015 z^2): not a target of the issue, but the default must help."""
    name, scene = SCENES[0]
    pts, pids, masks, exact = make_case(scene, 'depth_dilated4', noise=0.0015)
    vis = precision_recall(lift_masks(pts, DEFAULT_CAMERA, masks, scores_for(masks)), pids, exact, pts,
                           DEFAULT_CAMERA)
    naive = precision_recall(lift_masks(pts, DEFAULT_CAMERA, masks, scores_for(masks), mode='naive'), pids,
                             exact, pts, DEFAULT_CAMERA)
    assert np.mean([r['precision'] for r in vis]) > np.mean([r['precision'] for r in naive]) + 0.05


def test_options_change_the_result():
    """Each cleanup step matters on the offset cloud (switching it off costs accuracy)."""
    name, scene = SCENES[0]
    pts, pids, masks, exact = make_case(scene, 'offset_exact')
    full = precision_recall(lift_masks(pts, DEFAULT_CAMERA, masks, scores_for(masks)), pids, exact, pts,
                            DEFAULT_CAMERA)
    no_link = precision_recall(lift_masks(pts, DEFAULT_CAMERA, masks, scores_for(masks),
                                          config=LiftConfig(connect_hidden=False)), pids, exact, pts,
                               DEFAULT_CAMERA)
    assert min(r['recall'] for r in no_link) < min(r['recall'] for r in full)
