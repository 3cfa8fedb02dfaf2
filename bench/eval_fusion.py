"""Accuracy of multi-view fusion on ray-cast rooms with exact ids (issue 13's targets); pictures of the maps.

For each seed: a ``furnished_room`` seen by 20 orbit views (320 x 240, 2 cm voxels), fused with exact masks
and with spoilt ones (grown 3 px, 15 % missed, 0.5 spurious per frame, 8 % wrong classes). Per true object:
the map instance holding most of its voxels, precision and recall over the map voxels, and whether the
class is right; per run: instances, spurious instances (confirmed, no object's majority), objects at the
target. Semantic mode: class images painted on 3 of the 20 views, coverage and accuracy before and after
``propagate``. Writes ``fusion_eval.json``, ``fusion_eval.md`` and top views (instances vs truth) into
``--out``; nothing is asserted (the tests do that on fewer seeds).

    python bench/eval_fusion.py [--seeds 3,5,7,11,13,17] [--out docs/fusion]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from vizion3d_ros.core.fusion.scene import SceneFusion
from vizion3d_ros.core.fusion.voxel_map import VoxelMap
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.render.topview import top_view
from vizion3d_ros.core.synthetic.multiview import (
    EXACT_MASKS,
    MaskErrors,
    frame_masks,
    furnished_room,
    orbit_poses,
    render_view,
)

SPOILT = MaskErrors(grow=3, miss=0.15, spurious=0.5, wrong_class=0.08)
TARGETS = {'exact': (0.98, 0.95), 'spoilt': (0.95, 0.90)}
VOXEL = 0.02
PAINTED = (0, 7, 14)


def fuse(seed: int, errors: MaskErrors, mode: str = 'instance'):
    """The room of ``seed`` fused from its 20 views; each map voxel's true object (0 room, -1 unknown)."""
    room = furnished_room(np.random.default_rng(seed))
    views = [render_view(room, p) for p in orbit_poses(room, rng=np.random.default_rng(1))]
    fusion = SceneFusion(voxel_size=VOXEL, mode=mode)
    truth = VoxelMap(VOXEL)
    rng = np.random.default_rng(2)
    semantic = np.r_[255, room.class_ids + 1]  # the room's surfaces one class, objects their COCO id + 1
    times = []
    for k, v in enumerate(views):
        if mode == 'instance':
            fm = frame_masks(room, v, rng, errors)
            labels, meta = fm.labels, fm.meta
        else:
            classes = np.where(v.ids >= 0, semantic[np.maximum(v.ids, 0)], 0)
            labels, meta = (classes if k in PAINTED else np.zeros_like(classes)), {}
        t = time.perf_counter()
        fusion.add_frame(v.depth, v.camera, v.pose, labels, meta, v.color)
        times.append(time.perf_counter() - t)
        pts = depth_to_points_optical(v.depth, v.camera).astype(np.float64)
        truth.integrate(pts @ v.pose[:3, :3].T + v.pose[:3, 3], labels=v.ids.reshape(-1) + 1)  # 0 = unknown
    order = np.argsort(truth.keys)
    true_object = truth.best_labels()[0][order[np.searchsorted(truth.keys[order], fusion.map.keys)]] - 1
    return room, fusion, true_object, float(np.median(times) * 1e3), semantic


def score_instances(seed: int, kind: str) -> dict:
    room, fusion, true_object, ms, _ = fuse(seed, EXACT_MASKS if kind == 'exact' else SPOILT)
    fusion.consolidate()
    voxel_instance = fusion.voxel_instances()
    instances = {i.id: i for i in fusion.confirmed()}
    p_min, r_min = TARGETS[kind]
    objects, claimed = [], set()
    for obj in range(1, room.scene.num_objects + 1):
        mine = true_object == obj
        ids, counts = np.unique(voxel_instance[mine], return_counts=True)
        inst = int(ids[np.argmax(counts)]) if mine.any() else 0
        precision = float((true_object[voxel_instance == inst] == obj).mean()) if inst else 0.0
        recall = float((voxel_instance[mine] == inst).mean()) if inst else 0.0
        cls_ok = inst in instances and instances[inst].class_id == room.class_ids[obj - 1]
        claimed.add(inst)
        objects.append({'object': obj, 'label': room.labels[obj - 1], 'voxels': int(mine.sum()), 'instance': inst,
                        'precision': round(precision, 3), 'recall': round(recall, 3), 'class_right': bool(cls_ok),
                        'met': bool(inst and cls_ok and precision >= p_min and recall >= r_min)})
    split = len(claimed - {0}) < len(objects)
    return {'seed': seed, 'masks': kind, 'objects': objects, 'instances': len(instances),
            'spurious': len(set(instances) - claimed), 'one_instance_per_object': not split,
            'met': sum(o['met'] for o in objects), 'add_frame_ms': round(ms, 1),
            '_pictures': (room, fusion, true_object, voxel_instance)}


def score_semantic(seed: int) -> dict:
    room, fusion, true_object, ms, semantic = fuse(seed, EXACT_MASKS, mode='semantic')
    true_class = np.where(true_object >= 0, semantic[np.maximum(true_object, 0)], 0)
    direct = fusion.map.best_labels()[0]
    out = {'seed': seed, 'voxels': len(direct), 'painted': len(PAINTED), 'views': 20,
           'coverage_direct': round(float((direct > 0).mean()), 3),
           'accuracy_direct': round(float((direct[direct > 0] == true_class[direct > 0]).mean()), 4)}
    t = time.perf_counter()
    r = fusion.propagate()
    out['propagate_s'] = round(time.perf_counter() - t, 2)
    ok = r.labels > 0
    out['coverage_after'] = round(r.coverage_after, 3)
    out['accuracy_after'] = round(float((r.labels[ok] == true_class[ok]).mean()), 4)
    return out


def picture(room, fusion, true_object, voxel_instance, path: Path) -> None:
    """The fused instances beside the truth, from above."""
    poses = np.array(fusion.camera_poses)
    ours = top_view(fusion.map.positions, fusion.map.colors, voxel_instance, poses, max_size=420,
                    point_size=VOXEL)
    # the truth coloured by the instance that holds most of each object, so that matching colours agree
    remap = np.zeros(room.scene.num_objects + 1, np.int64)
    for obj in range(1, room.scene.num_objects + 1):
        ids, counts = np.unique(voxel_instance[true_object == obj], return_counts=True)
        remap[obj] = ids[np.argmax(counts)] if len(ids) and ids[np.argmax(counts)] else 100 + obj
    truth = top_view(fusion.map.positions, fusion.map.colors, remap[np.maximum(true_object, 0)], poses,
                     max_size=420, point_size=VOXEL)
    h = max(ours.shape[0], truth.shape[0])
    pad = [np.pad(x, ((0, h - x.shape[0]), (0, 8), (0, 0)), constant_values=255) for x in (ours, truth)]
    cv2.imwrite(str(path), cv2.cvtColor(np.hstack(pad), cv2.COLOR_RGB2BGR))


def markdown(result: dict) -> str:
    lines = ['| seed | masks | objects at target | instances | spurious | one per object | worst (P / R) |',
             '|---|---|---:|---:|---:|---|---|']
    for r in result['instance']:
        worst = min(r['objects'], key=lambda o: min(o['precision'], o['recall']))
        lines.append(f"| {r['seed']} | {r['masks']} | {r['met']} of {len(r['objects'])} | {r['instances']} | "
                     f"{r['spurious']} | {'yes' if r['one_instance_per_object'] else 'no'} | {worst['label']} "
                     f"{worst['precision']:.3f} / {worst['recall']:.3f} |")
    lines += ['', '| seed | voxels | painted views | coverage direct | after propagate | accuracy direct / after |'
              ' propagate s |', '|---|---:|---:|---:|---:|---|---:|']
    for s in result['semantic']:
        lines.append(f"| {s['seed']} | {s['voxels']:,} | {s['painted']} of {s['views']} | {s['coverage_direct']:.3f} "
                     f"| {s['coverage_after']:.3f} | {s['accuracy_direct']:.4f} / {s['accuracy_after']:.4f} | "
                     f"{s['propagate_s']} |")
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', default='3,5,7,11,13,17')
    p.add_argument('--out', default='docs/fusion')
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(',')]
    result = {'voxel_size': VOXEL, 'targets': TARGETS, 'instance': [], 'semantic': []}
    for seed in seeds:
        for kind in ('exact', 'spoilt'):
            r = score_instances(seed, kind)
            pictures = r.pop('_pictures')
            if seed == seeds[0]:
                picture(*pictures, out / f'room{seed}_{kind}.png')
            result['instance'].append(r)
            print(f"seed {seed} {kind}: {r['met']}/{len(r['objects'])} at target, {r['instances']} instances, "
                  f"{r['spurious']} spurious, add_frame {r['add_frame_ms']} ms", flush=True)
        result['semantic'].append(score_semantic(seed))
        print(f"seed {seed} semantic: {result['semantic'][-1]}", flush=True)
    (out / 'fusion_eval.json').write_text(json.dumps(result, indent=1))
    (out / 'fusion_eval.md').write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
