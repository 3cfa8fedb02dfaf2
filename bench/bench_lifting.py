"""Timing benchmark of the lifting modes (``lift_masks``, projection included); not a test.

Cases: a VGA organised depth cloud of a ray-cast scene with 10 objects (masks 4 px too wide, as real
masks are), without and with Kinect-like noise; the real TUM RGB-D frame with YOLOv8n-seg masks
(segmented once, before timing); the cloud of a sensor 0.5 m beside the camera (``offset_exact`` of
``bench/eval_lifting.py``); unorganised clouds of 100k, 500k and 2M points resampled from a sensor
cloud. Modes run interleaved (naive, exclusive, visible, naive, ...) so that all three see the same
machine load; the visible/naive ratio compares medians of the same run.

    python bench/bench_lifting.py [--repeats 30] [--out docs/bench_lifting.json] [--cases a,b]
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vizion3d_ros.core.camera.pinhole import PinholeIntrinsics, project_gl
from vizion3d_ros.core.lifting.lift import lift_masks
from vizion3d_ros.core.lifting.zbuffer import depth_map
from vizion3d_ros.core.synthetic.scenes import (
    DEFAULT_CAMERA,
    camera_cloud,
    dilate_masks,
    instance_masks,
    random_scene,
    render_camera,
    sensor_cloud,
    standard_scenes,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _machine  # noqa: E402
from eval_lifting import make_case, offset_pose  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('VIZION3D_SHARED', ROOT.parent / 'shared'))
TUM = SHARED / 'data' / 'rgbd' / 'tum_desk'
MODEL = SHARED / 'models' / 'yolov8n-seg-coco.pt'

MODES = ('naive', 'exclusive', 'visible')
SCENE_SEED = 0  # random_scene(default_rng(0), num_objects=10): all 10 objects visible
NUM_OBJECTS = 10
KINECT_NOISE = 0.0015
JITTER_M = 0.002  # std of the jitter added to resampled unorganised clouds
UNORGANISED_SIZES = (100_000, 500_000, 2_000_000)


@dataclass
class Case:
    """One lifting input: points in OpenGL camera space, camera and masks."""

    name: str
    description: str
    points: np.ndarray
    cam: PinholeIntrinsics
    masks: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray | None = None


def _scores(k: int) -> np.ndarray:
    return np.linspace(0.9, 0.5, k)


def ten_object_scene():
    """The 10-object ray-cast scene and its exact camera masks (every mask non-empty)."""
    scene = random_scene(np.random.default_rng(SCENE_SEED), num_objects=NUM_OBJECTS)
    _, ids = render_camera(scene, DEFAULT_CAMERA)
    exact = instance_masks(ids, scene.num_objects)
    filled = int((exact.reshape(len(exact), -1).sum(axis=1) > 0).sum())
    if filled != NUM_OBJECTS:
        raise RuntimeError(f'scene seed {SCENE_SEED}: only {filled} of {NUM_OBJECTS} masks are non-empty')
    return scene, exact


def depth_cases(scene, exact: np.ndarray) -> list[Case]:
    """Case a: the camera's organised VGA depth cloud, noise-free and with Kinect-like noise."""
    cam = DEFAULT_CAMERA
    wide = dilate_masks(exact, 4)
    out = []
    for noise in (0.0, KINECT_NOISE):
        pts, _ = camera_cloud(scene, cam, noise_std=noise, rng=np.random.default_rng(1))
        tag = 'noise-free' if noise == 0 else f'noise {noise:g} z^2'
        out.append(Case(f'depth_vga_{"clean" if noise == 0 else "noisy"}',
                        f'a: VGA depth cloud, 10 objects, masks +4 px, {tag}', pts, cam, wide, _scores(len(wide))))
    return out


def offset_case() -> Case:
    """Case c: eval_lifting's 'offset_exact' cloud (sensor 0.5 m beside the camera) of a standard scene."""
    name, scene = standard_scenes()[0]
    pts, _, masks, _ = make_case(scene, 'offset_exact', DEFAULT_CAMERA)
    return Case('offset_exact', f"c: offset sensor cloud (eval_lifting 'offset_exact', scene {name})",
                pts, DEFAULT_CAMERA, masks, _scores(len(masks)))


def unorganised_cases(scene, exact: np.ndarray, sizes: tuple[int, ...] = UNORGANISED_SIZES,
                      scene_name: str = 'the 10-object scene') -> list[Case]:
    """Case d: unorganised clouds resampled (subset or repeats, with jitter) from an offset sensor cloud."""
    wide = dilate_masks(exact, 4)
    base, _ = sensor_cloud(scene, offset_pose(), 70.0, 55.0, 640, 240)
    rng = np.random.default_rng(2)
    out = []
    for n in sizes:
        idx = rng.choice(len(base), n, replace=False) if n <= len(base) else rng.integers(0, len(base), n)
        pts = (base[idx] + rng.normal(0.0, JITTER_M, (n, 3))).astype(np.float32)
        out.append(Case(f'unorganised_{_short(n)}',
                        f'd: unorganised {n:,} pts (offset sensor cloud of {scene_name} resampled, '
                        f'{JITTER_M * 1e3:g} mm jitter), {len(wide)} masks +4 px', pts, DEFAULT_CAMERA, wide,
                        _scores(len(wide))))
    return out


def build_cases(wanted: set[str]) -> list[Case]:
    """The cases asked for, in the order a, b, c, d."""
    cases: list[Case] = []
    scene, exact = ten_object_scene() if wanted & {'a', 'd'} else (None, None)
    if 'a' in wanted:
        cases += depth_cases(scene, exact)
    if 'b' in wanted:
        case = tum_case()
        if case is not None:
            cases.append(case)
    if 'c' in wanted:
        cases.append(offset_case())
    if 'd' in wanted:
        cases += unorganised_cases(scene, exact)
    return cases


def tum_case() -> Case | None:
    """Case b: the real TUM frame, segmented once by the real checkpoint (on the CPU)."""
    from vizion3d_ros.core.camera.frames import optical_to_gl
    from vizion3d_ros.core.io.rgbd import depth_to_points_optical, load_rgbd_folder
    from vizion3d_ros.core.segmentation.ultralytics_backend import UltralyticsBackend

    if not (TUM / 'camera.json').is_file() or not MODEL.is_file():
        print(f'skipping case b: {TUM} or {MODEL} is missing (set VIZION3D_SHARED)', file=sys.stderr)
        return None
    frame = load_rgbd_folder(TUM)
    pts = optical_to_gl(depth_to_points_optical(frame.depth, frame.camera))
    t0 = time.perf_counter()
    seg = UltralyticsBackend(MODEL, device='cpu').segment(frame.color)
    print(f'case b: {len(seg)} instances from {MODEL.name} in {time.perf_counter() - t0:.1f} s '
          '(model load + one inference; not timed below)', file=sys.stderr)
    return Case('tum_desk', f'b: real TUM frame, {len(seg)} {MODEL.stem} masks (segmented once)', pts,
                frame.camera, seg.masks, seg.scores, seg.boxes)


def _short(n: int) -> str:
    return f'{n // 1_000_000}M' if n % 1_000_000 == 0 else f'{n // 1000}k'


def _digest(groups: list[np.ndarray]) -> str:
    """Short hash of a lifting result, to see whether a change of code changed the output."""
    h = hashlib.sha1()
    for g in groups:
        h.update(np.asarray(g, np.uint32).tobytes())
        h.update(b'|')
    return h.hexdigest()[:12]


def time_case(case: Case, repeats: int, warmup: int, budget_s: float) -> dict:
    """Time every mode on ``case``, interleaved; stop early (at least 5 runs) past ``budget_s``."""
    proj = project_gl(case.points, case.cam)  # only to describe the case, never passed to lift_masks
    pix = proj.pixels
    splat = depth_map(pix, proj.depth, case.cam.height, case.cam.width).splat_radius
    times: dict[str, list[float]] = {m: [] for m in MODES}
    results: dict[str, list[np.ndarray]] = {}
    gc.collect()
    gc.disable()
    try:
        start = None
        for r in range(warmup + repeats):
            if r == warmup:
                start = time.perf_counter()
            elif start is not None and r - warmup >= 5 and time.perf_counter() - start > budget_s:
                break
            for mode in MODES:
                t0 = time.perf_counter()
                groups = lift_masks(case.points, case.cam, case.masks, case.scores, case.boxes, mode=mode)
                dt = time.perf_counter() - t0
                if r >= warmup:
                    times[mode].append(dt * 1e3)
                results[mode] = groups
    finally:
        gc.enable()
    out = {'name': case.name, 'description': case.description, 'points': int(len(case.points)),
           'valid_points': int(proj.valid.sum()), 'instances': int(len(case.masks)), 'auto_splat_radius': splat,
           'modes': {}}
    for mode in MODES:
        t = np.array(times[mode])
        out['modes'][mode] = {
            'runs': int(t.size), 'median_ms': float(np.median(t)), 'p10_ms': float(np.percentile(t, 10)),
            'p90_ms': float(np.percentile(t, 90)), 'lifted_points': int(sum(len(g) for g in results[mode])),
            'digest': _digest(results[mode])}
    out['visible_over_naive'] = out['modes']['visible']['median_ms'] / out['modes']['naive']['median_ms']
    return out


def machine_info() -> dict:
    """Where and when the numbers were taken: ``_machine.machine_info`` plus OpenCV and the usable CPUs."""
    import cv2

    info = _machine.machine_info()
    try:
        dirty = bool(subprocess.run(['git', 'status', '--porcelain', '--', 'vizion3d_ros'], cwd=ROOT,
                                    capture_output=True, text=True, check=False).stdout.strip())
    except OSError:
        dirty = False
    info.update({
        'machine': platform.machine(),
        'cpus_usable': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(),
        'load_average_at_start': info['load_average'], 'cv2': cv2.__version__,
        'cv2_threads': cv2.getNumThreads(), 'core_modified_since_commit': dirty,
    })
    return info


def markdown_table(rows: list[dict]) -> str:
    """One line per case and mode: median, p10, p90 (ms), and visible / naive per case."""
    lines = ['| case | points | masks | splat r | mode | median ms | p10 ms | p90 ms | runs | visible/naive |',
             '|---|---:|---:|---:|---|---:|---:|---:|---:|---:|']
    for row in rows:
        for mode in MODES:
            m = row['modes'][mode]
            ratio = f"{row['visible_over_naive']:.1f}x" if mode == 'visible' else ''
            lines.append(f"| {row['name']} | {row['points']:,} | {row['instances']} | {row['auto_splat_radius']} "
                         f"| {mode} | {m['median_ms']:.1f} | {m['p10_ms']:.1f} | {m['p90_ms']:.1f} | {m['runs']} "
                         f'| {ratio} |')
    return '\n'.join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=30, help='timed runs per case and mode (default 30)')
    p.add_argument('--warmup', type=int, default=3, help='untimed runs first (default 3)')
    p.add_argument('--budget', type=float, default=45.0,
                   help='seconds of timed runs per case (all modes) before stopping early, at least 5 runs '
                        '(default 45)')
    p.add_argument('--cases', default='a,b,c,d',
                   help='comma-separated: a (VGA depth clouds), b (TUM frame), c (offset sensor), '
                        'd (unorganised 100k/500k/2M); default all')
    p.add_argument('--out', default='docs/bench_lifting.json', help='JSON output ("" = none)')
    args = p.parse_args()
    wanted = {c.strip() for c in args.cases.split(',') if c.strip()}
    t_start = time.perf_counter()
    info = machine_info()
    cases = build_cases(wanted)
    rows = []
    for case in cases:
        row = time_case(case, args.repeats, args.warmup, args.budget)
        rows.append(row)
        m = row['modes']
        print(f"{case.name:<20} naive {m['naive']['median_ms']:7.1f}  exclusive {m['exclusive']['median_ms']:7.1f}"
              f"  visible {m['visible']['median_ms']:7.1f} ms  ({row['visible_over_naive']:.1f}x)", file=sys.stderr)
    info['total_seconds'] = round(time.perf_counter() - t_start, 1)
    print(f"\nlift_masks timings ({info['cpu']}, {info['cpus_usable']} CPUs, numpy {info['numpy']}, "
          f"cv2 {info['cv2']}, {info['date']}; commit {info['git_commit']}"
          f"{' + local changes' if info['core_modified_since_commit'] else ''}):\n")
    print(markdown_table(rows))
    print('\n' + '\n'.join(f"- {r['name']}: {r['description']}" for r in rows))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({'machine': info, 'repeats': args.repeats, 'warmup': args.warmup,
                                   'modes': list(MODES), 'cases': rows}, indent=2) + '\n')
        print(f'\nwrote {out}')


if __name__ == '__main__':
    main()
