"""How the per-frame costs grow with instances, points and image size (fits and plots); not a test.

The lifting against the naive method by instances, points and image size, and segmentation by input size.

* Instances: a "shelf" scene (ray-cast boxes and spheres on a grid in front of the wall, at random
  depths, so every instance has its own depth edges and neighbours overlap a little) with 1 to 50
  objects, seen as the camera's organised VGA depth cloud, masks 4 px too wide as real ones are.
* Points: the same scenes seen by a sensor 0.5 m beside the camera, resampled (with 2 mm jitter) to
  unorganised clouds of 100k, 500k and 2M points.
* Image size: the 10-object shelf as organised depth clouds of 320x240, 640x480 and 1280x960 (same field
  of view).
* Segmentation: YOLOv8n-seg on the real TUM frame at imgsz 160 to 640 on this machine's CPU.

Every lifting case times naive, exclusive and visible interleaved (``bench_lifting.time_case``), so the
ratios compare medians from the same run. Straight lines ``t = a + b x`` are fitted by least squares.

    python bench/bench_scaling.py [--out docs/bench] [--quick]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info  # noqa: E402
from bench_lifting import MODEL, MODES, TUM, Case, _scores, time_case, unorganised_cases  # noqa: E402

from vizion3d_ros.core.synthetic.scenes import (  # noqa: E402
    DEFAULT_CAMERA,
    Box,
    Scene,
    Sphere,
    camera_cloud,
    dilate_masks,
    instance_masks,
    render_camera,
    room,
    scaled_camera,
)

NAME = 'scaling'
WALL = 4.0


def shelf_scene(k: int, rng: np.random.Generator, cam=DEFAULT_CAMERA) -> Scene:
    """``k`` boxes and spheres on a grid of image cells, each at a random depth of 1.5-3.5 m.

    An object spans 45-80 % of its cell's smaller side and sits up to 15 % off the cell's centre, so
    objects cover about a third of the image and some neighbours overlap (with a depth edge between
    them), as in cluttered scenes.
    """
    cols = max(1, math.ceil(math.sqrt(k * cam.width / cam.height)))
    rows = math.ceil(k / cols)
    cell_w, cell_h = cam.width / cols, cam.height / rows
    objects: list[Box | Sphere] = []
    for j in range(k):
        r, c = divmod(j, cols)
        u = (c + 0.5 + rng.uniform(-0.15, 0.15)) * cell_w
        v = (r + 0.5 + rng.uniform(-0.15, 0.15)) * cell_h
        z = rng.uniform(1.5, 3.5)
        centre = ((u - cam.cx) / cam.fx * z, -(v - cam.cy) / cam.fy * z, -z)
        size = rng.uniform(0.45, 0.8) * min(cell_w / cam.fx, cell_h / cam.fy) * z
        if j % 2:
            objects.append(Sphere(centre, 0.5 * size))
        else:
            objects.append(Box(centre, (size, size, rng.uniform(0.5, 1.0) * size), float(rng.uniform(-0.6, 0.6))))
    return Scene(objects, room(WALL))


def shelf_masks(scene: Scene, cam) -> tuple[np.ndarray, np.ndarray]:
    """Exact and 4 px-dilated masks of the scene's visible objects (hidden ones dropped)."""
    _, ids = render_camera(scene, cam)
    exact = instance_masks(ids, len(scene.objects))
    seen = exact.reshape(len(exact), -1).any(axis=1)
    exact = exact[seen]
    return exact, dilate_masks(exact, max(1, round(4 * cam.width / DEFAULT_CAMERA.width)))


def instance_cases(counts: list[int]) -> list[Case]:
    """VGA organised depth clouds of shelves with ``counts`` objects."""
    out = []
    for k in counts:
        scene = shelf_scene(k, np.random.default_rng(k))
        pts, _ = camera_cloud(scene, DEFAULT_CAMERA)
        _, wide = shelf_masks(scene, DEFAULT_CAMERA)
        out.append(Case(f'vga_k{len(wide)}', f'VGA depth cloud, shelf of {k} objects ({len(wide)} visible)',
                        pts, DEFAULT_CAMERA, wide, _scores(len(wide))))
    return out


def size_cases(factors: list[float]) -> list[Case]:
    """The 10-object shelf as organised depth clouds at ``factors`` times VGA."""
    scene = shelf_scene(10, np.random.default_rng(10))
    out = []
    for f in factors:
        cam = scaled_camera(DEFAULT_CAMERA, f)
        pts, _ = camera_cloud(scene, cam)
        _, wide = shelf_masks(scene, cam)
        out.append(Case(f'depth_{cam.width}x{cam.height}', f'{cam.width}x{cam.height} depth cloud, 10-object shelf',
                        pts, cam, wide, _scores(len(wide))))
    return out


def point_cases(counts: list[int], sizes: tuple[int, ...]) -> list[Case]:
    """Unorganised clouds of ``sizes`` points of shelves with ``counts`` objects."""
    out = []
    for k in counts:
        scene = shelf_scene(k, np.random.default_rng(k))
        exact, _ = shelf_masks(scene, DEFAULT_CAMERA)
        for case in unorganised_cases(scene, exact, sizes, f'a {k}-object shelf'):
            case.name = f'{case.name}_k{len(exact)}'
            out.append(case)
    return out


def segmentation_times(sizes: list[int], runs: int) -> list[dict]:
    """Median time of one YOLOv8n-seg inference on the TUM frame's colour image per imgsz (CPU)."""
    from vizion3d_ros.core.io.rgbd import load_rgbd_folder
    from vizion3d_ros.core.segmentation.ultralytics_backend import UltralyticsBackend

    if not MODEL.is_file() or not (TUM / 'camera.json').is_file():
        print(f'skipping segmentation: {MODEL} or {TUM} is missing', file=sys.stderr)
        return []
    image = load_rgbd_folder(TUM).color
    out = []
    for imgsz in sizes:
        backend = UltralyticsBackend(MODEL, device='cpu', imgsz=imgsz)
        backend.segment(image)  # warm-up
        t = []
        for _ in range(runs):
            t0 = time.perf_counter()
            seg = backend.segment(image)
            t.append((time.perf_counter() - t0) * 1e3)
        out.append({'imgsz': imgsz, 'pixels': imgsz * imgsz, 'runs': runs, 'median_ms': float(np.median(t)),
                    'p10_ms': float(np.percentile(t, 10)), 'p90_ms': float(np.percentile(t, 90)),
                    'instances': len(seg)})
        print(f'segmentation imgsz {imgsz}: {np.median(t):.0f} ms', file=sys.stderr)
    return out


def fit_line(x, y) -> dict:
    """Least-squares ``y = a + b x`` and its R^2."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return {'a': float(y.mean()) if len(y) else float('nan'), 'b': 0.0, 'r2': float('nan')}
    b, a = np.polyfit(x, y, 1)
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - (a + b * x)) ** 2).sum()) / ss if ss > 0 else 1.0
    return {'a': float(a), 'b': float(b), 'r2': r2}


def _fits(rows: list[dict], x_of) -> dict:
    return {m: fit_line([x_of(r) for r in rows], [r['modes'][m]['median_ms'] for r in rows]) for m in MODES}


def _row_line(r: dict, label: str) -> str:
    m = r['modes']
    cells = ' | '.join(f"{m[mode]['median_ms']:.1f} ({m[mode]['p10_ms']:.1f}-{m[mode]['p90_ms']:.1f})"
                       for mode in MODES)
    return f"| {label} | {r['points']:,} | {r['instances']} | {cells} | {r['visible_over_naive']:.1f}x |"


def _table(rows: list[dict], label_of) -> list[str]:
    head = ['| case | points | instances | ' + ' | '.join(f'{m} ms, median (p10-p90)' for m in MODES)
            + ' | visible / naive |', '|---|---:|---:|' + '---:|' * len(MODES) + '---:|']
    return head + [_row_line(r, label_of(r)) for r in rows]


def _fit_lines(fits: dict, unit: str, scale: float) -> list[str]:
    return [f"- {m}: {f['a']:.2f} ms + {f['b'] * scale:.3g} {unit} (R^2 {f['r2']:.3f})" for m, f in fits.items()]


def markdown(result: dict) -> str:
    """The section for docs/BENCHMARKS.md."""
    inst, pts, size, seg = result['instances'], result['points'], result['image_size'], result['segmentation']
    lines = [
        '## Scaling: lifting vs naive by instances, points and image size; segmentation by input size', '',
        '`bench/bench_scaling.py`. Lifting cases time `lift_masks` (projection included) in the three modes, '
        'interleaved in one run, after 3 warm-up runs; median and p10-p90 of the timed runs, and the '
        'visible / naive ratio of the medians. Instances: a ray-cast "shelf" (boxes and spheres on a grid in '
        'front of a wall, random depths, neighbours overlapping a little), masks 4 px too wide. Points: the same '
        'shelves seen by a sensor 0.5 m beside the camera, resampled to unorganised clouds. '
        f"Repeats: {result['repeats']} (fewer on the biggest clouds, see `runs` in the JSON).", '',
        '### Instances (VGA organised depth cloud, 307,200 points)', '', *_table(inst, lambda r: f"{r['instances']}"),
        '', 'Fit over instance count K:', '', *_fit_lines(result['fits']['instances'], 'ms per instance', 1.0), '',
        '![lifting time vs instances](bench/scaling_instances.png)', '',
        '### Points (unorganised clouds from a sensor beside the camera)', '',
        *_table(pts, lambda r: r['name']), '',
        'Fit over points N (the 10-instance rows):', '',
        *_fit_lines(result['fits']['points'], 'ns per point', 1e6), '',
        '![lifting time vs points](bench/scaling_points.png)', '',
        '### Image size (organised depth clouds, 10-object shelf)', '', *_table(size, lambda r: r['name']), '',
        'Fit over pixels:', '', *_fit_lines(result['fits']['image_size'], 'ns per pixel', 1e6), '']
    if seg:
        f = result['fits']['segmentation']
        lines += ['### Segmentation (YOLOv8n-seg on the TUM frame, CPU)', '',
                  '| imgsz | median ms | p10-p90 ms | runs | instances |', '|---:|---:|---:|---:|---:|',
                  *[f"| {s['imgsz']} | {s['median_ms']:.0f} | {s['p10_ms']:.0f}-{s['p90_ms']:.0f} | {s['runs']} "
                    f"| {s['instances']} |" for s in seg], '',
                  f"Fit over input pixels (imgsz^2): {f['a']:.1f} ms + {f['b'] * 1e3:.3g} ms per 1000 pixels "
                  f"(R^2 {f['r2']:.3f}). Inference dominates a CPU frame; the lifting is linear in points and "
                  'instances and stays a small share of it.', '']
    lines += ['![lifting time vs image size and segmentation vs imgsz](bench/scaling_size.png)', '']
    return '\n'.join(lines)


def plots(result: dict, out: Path) -> list[str]:
    """PNG plots (matplotlib, Agg)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    written = []
    colours = {'naive': 'tab:gray', 'exclusive': 'tab:blue', 'visible': 'tab:red'}

    def panel(ax, rows, x_of, fits, xlabel, scale_x=1.0, log=False):
        x = np.array([x_of(r) for r in rows], float)
        for m in MODES:
            y = np.array([r['modes'][m]['median_ms'] for r in rows])
            lo = y - np.array([r['modes'][m]['p10_ms'] for r in rows])
            hi = np.array([r['modes'][m]['p90_ms'] for r in rows]) - y
            ax.errorbar(x * scale_x, y, yerr=[lo, hi], fmt='o', color=colours[m], label=m, capsize=3)
            if fits:
                xs = np.linspace(x.min(), x.max(), 50)
                ax.plot(xs * scale_x, fits[m]['a'] + fits[m]['b'] * xs, '-', color=colours[m], alpha=0.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel('ms (median, p10-p90)')
        if log:
            ax.set_xscale('log')
            ax.set_yscale('log')
        ax.grid(alpha=0.3)
        ax.legend()

    fig, ax = plt.subplots(figsize=(6.5, 4))
    panel(ax, result['instances'], lambda r: r['instances'], result['fits']['instances'], 'instances (VGA depth cloud)')
    ax.axhline(10.0, color='k', ls=':', lw=1)
    ax.set_title('lift_masks vs instance count')
    fig.tight_layout()
    fig.savefig(out / f'{NAME}_instances.png', dpi=110)
    plt.close(fig)
    written.append(f'{NAME}_instances.png')

    fig, ax = plt.subplots(figsize=(6.5, 4))
    panel(ax, result['points'], lambda r: r['points'], None, 'points (unorganised)', log=True)
    ax.set_title('lift_masks vs cloud size')
    fig.tight_layout()
    fig.savefig(out / f'{NAME}_points.png', dpi=110)
    plt.close(fig)
    written.append(f'{NAME}_points.png')

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    panel(axes[0], result['image_size'], lambda r: r['points'], result['fits']['image_size'],
          'pixels (organised depth cloud)', 1e-6)
    axes[0].set_xlabel('megapixels (organised depth cloud)')
    axes[0].set_title('lift_masks vs image size')
    seg = result['segmentation']
    if seg:
        x = np.array([s['pixels'] for s in seg], float)
        y = np.array([s['median_ms'] for s in seg])
        axes[1].errorbar(x / 1e3, y, yerr=[y - [s['p10_ms'] for s in seg], np.array([s['p90_ms'] for s in seg]) - y],
                         fmt='o', capsize=3)
        f = result['fits']['segmentation']
        axes[1].plot(x / 1e3, f['a'] + f['b'] * x, '-', alpha=0.6)
        for s in seg:
            axes[1].annotate(str(s['imgsz']), (s['pixels'] / 1e3, s['median_ms']), textcoords='offset points',
                             xytext=(4, -10))
    axes[1].set_xlabel('input pixels / 1000 (imgsz^2)')
    axes[1].set_ylabel('ms per inference (median)')
    axes[1].set_title('YOLOv8n-seg on the CPU vs imgsz')
    axes[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / f'{NAME}_size.png', dpi=110)
    plt.close(fig)
    written.append(f'{NAME}_size.png')
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default='docs/bench', help='output folder (default docs/bench)')
    p.add_argument('--quick', action='store_true', help='a small, fast version (smoke test)')
    p.add_argument('--repeats', type=int, default=None, help='timed runs per case (default 20, quick 3)')
    p.add_argument('--budget', type=float, default=None,
                   help='seconds of timed runs per case before stopping early (default 20, quick 2)')
    args = p.parse_args()
    quick = args.quick
    repeats = args.repeats or (3 if quick else 20)
    budget = args.budget or (2.0 if quick else 20.0)
    warmup = 1 if quick else 3
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    t_start = time.perf_counter()

    def run(cases: list[Case]) -> list[dict]:
        rows = []
        for case in cases:
            rows.append(time_case(case, repeats, warmup, budget))
            m = rows[-1]['modes']
            print(f"{case.name:<26} " + '  '.join(f"{mode} {m[mode]['median_ms']:7.1f}" for mode in MODES),
                  file=sys.stderr)
        return rows

    counts = [1, 10] if quick else [1, 5, 10, 20, 50]
    inst = run(instance_cases(counts))
    pts = run(point_cases([10] if quick else [1, 10, 50], (100_000,) if quick else (100_000, 500_000, 2_000_000)))
    size = run(size_cases([0.5, 1.0] if quick else [0.5, 1.0, 2.0]))
    seg = segmentation_times([160, 320] if quick else [160, 320, 480, 640], 2 if quick else 10)
    ten = [r for r in pts if r['name'].endswith('_k10')] or pts
    result = {
        'name': NAME, 'machine': info, 'quick': quick, 'repeats': repeats, 'warmup': warmup, 'modes': list(MODES),
        'instances': inst, 'points': pts, 'image_size': size, 'segmentation': seg,
        'fits': {'instances': _fits(inst, lambda r: r['instances']), 'points': _fits(ten, lambda r: r['points']),
                 'image_size': _fits(size, lambda r: r['points']),
                 'segmentation': fit_line([s['pixels'] for s in seg], [s['median_ms'] for s in seg])},
    }
    result['plots'] = plots(result, out)
    result['machine']['total_seconds'] = round(time.perf_counter() - t_start, 1)
    (out / f'{NAME}.json').write_text(json.dumps(result, indent=2) + '\n')
    (out / f'{NAME}.md').write_text(markdown(result))
    print(f'wrote {out / NAME}.json, .md and {len(result["plots"])} plots', file=sys.stderr)


if __name__ == '__main__':
    main()
