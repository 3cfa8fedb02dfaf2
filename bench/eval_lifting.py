"""Accuracy of the lifting modes on ray-cast scenes with exact per-point labels.

Per object: precision of the returned points and recall over the object's points that project into
its exact mask. Conditions: the camera's own depth cloud with exact masks and with masks dilated by
4 px, and a sparser cloud from a sensor 0.5 m to the side with exact masks.

    python bench/eval_lifting.py [--noise 0.0]
"""
from __future__ import annotations

import argparse

import numpy as np

from vizion3d_ros.core.lifting.lift import LIFT_MODES, LiftConfig, lift_masks
from vizion3d_ros.core.synthetic.scenes import (
    DEFAULT_CAMERA,
    camera_cloud,
    dilate_masks,
    instance_masks,
    look_at,
    precision_recall,
    render_camera,
    sensor_cloud,
    standard_scenes,
)

CONDITIONS = ('depth_exact', 'depth_dilated4', 'offset_exact')


def offset_pose() -> np.ndarray:
    """A sensor 0.5 m right of and 0.2 m above the camera, looking at the middle of the scene."""
    return look_at(eye=(0.5, 0.2, 0.0), target=(0.0, -0.6, -2.8))


def make_case(scene, condition: str, cam=DEFAULT_CAMERA, noise: float = 0.0, seed: int = 0):
    """(points_gl, point_ids, masks used for lifting, exact masks) for one scene and condition."""
    _, ids = render_camera(scene, cam)
    exact = instance_masks(ids, scene.num_objects)
    rng = np.random.default_rng(seed)
    if condition.startswith('depth'):
        pts, pids = camera_cloud(scene, cam, noise_std=noise, rng=rng)
    else:
        pts, pids = sensor_cloud(scene, offset_pose(), 70.0, 55.0, 640, 240, noise_std=noise, rng=rng)
    masks = dilate_masks(exact, 4) if condition.endswith('dilated4') else exact
    return pts, pids, masks, exact


def evaluate(scenes, modes=LIFT_MODES, cam=DEFAULT_CAMERA, noise: float = 0.0, config: LiftConfig | None = None):
    """{(condition, mode): [per-object dicts]} over all scenes."""
    out: dict[tuple[str, str], list[dict]] = {}
    for _name, scene in scenes:
        for cond in CONDITIONS:
            pts, pids, masks, exact = make_case(scene, cond, cam, noise)
            scores = np.linspace(0.9, 0.5, len(masks))
            for mode in modes:
                groups = lift_masks(pts, cam, masks, scores, config=config, mode=mode)
                out.setdefault((cond, mode), []).extend(precision_recall(groups, pids, exact, pts, cam))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--noise', type=float, default=0.0, help='depth noise std factor (x depth^2)')
    args = p.parse_args()
    res = evaluate(standard_scenes(), noise=args.noise)
    print(f"{'condition':<16}{'mode':<11}{'min P':>7}{'mean P':>8}{'min R':>7}{'mean R':>8}")
    for (cond, mode), rows in res.items():
        prec = np.array([r['precision'] for r in rows])
        rec = np.array([r['recall'] for r in rows])
        print(f'{cond:<16}{mode:<11}{prec.min():7.3f}{prec.mean():8.3f}{rec.min():7.3f}{rec.mean():8.3f}')


if __name__ == '__main__':
    main()
