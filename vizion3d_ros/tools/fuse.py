"""vizion3d-fuse: fuse posed RGB-D frames and their masks into one labelled 3D map, offline.

Frames come from a posed RGB-D folder (``--frames``: camera.json, color/, depth/, trajectory.log), a TUM
RGB-D sequence (``--tum``) or a rosbag2 (``--bag``: sqlite3 or MCAP, poses from /tf and /tf_static). A bag
that holds vizion3d_node's ``objects`` (with the cloud they index and /tf) is fused as vizion3d_map_node
fuses it live, with the node's code and parameters (``--map-params``: its YAML file), so the two maps
are the same.
Masks come from ``--masks DIR`` (``<stem>.png`` label images; instance masks with ``<stem>.json``, or
class images with ``--mask-kind semantic``), else the model segments every frame. Writes to ``--out``:
``map.ply`` (one vertex per voxel: x y z, rgb, instance_id, class_id, confidence, observations),
``objects/<id>_<label>.ply``, ``map.glb`` (points by instance, camera frustums), ``top_view.png`` and
``summary.json``. A frame that cannot be read is skipped, said and counted; the run goes on.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from ..core.segmentation.models import DEFAULT_MODEL_URL, print_progress
from .cli import UsageError, add_model_arguments, log, read_cloud, run_command

PROG = 'vizion3d-fuse'


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--frames', metavar='DIR', help='posed RGB-D folder (Redwood / Open3D layout)')
    src.add_argument('--tum', metavar='DIR', help='TUM RGB-D sequence folder (rgb.txt, depth.txt, groundtruth.txt)')
    src.add_argument('--bag', metavar='PATH', help='rosbag2 folder or file (sqlite3 or MCAP)')
    p.add_argument('--masks', metavar='DIR', default=None,
                   help='per-frame masks DIR/<stem>.png (+ <stem>.json for instance masks) instead of the model')
    p.add_argument('--mask-kind', choices=('instance', 'semantic'), default='instance',
                   help='instance: values are one frame\'s objects (default); semantic: values are classes')
    p.add_argument('--propagate', action='store_true',
                   help='label the voxels no mask covered from their labelled neighbours')
    p.add_argument('--propagate-radius', type=float, default=None,
                   help="propagation's ball radius in metres (default: SceneFusion.propagate's, 0.05)")
    p.add_argument('--propagate-iterations', type=int, default=None,
                   help="propagation passes (default: SceneFusion.propagate's)")
    p.add_argument('--label-cloud', metavar='FILE', default=None,
                   help='also label this cloud (.ply/.pcd, in the world frame) from the map: labelled_cloud.ply')
    p.add_argument('--voxel', type=float, default=None,
                   help='voxel size in metres (default 0.01; for recorded objects the map node\'s, 0.02)')
    p.add_argument('--map-params', metavar='YAML', default=None,
                   help='bag of recorded objects: vizion3d_map_node\'s parameters file (e.g. '
                        'config/vizion3d_map.yaml), so that the offline map is built as the live node builds it')
    p.add_argument('--max-voxels', type=int, default=None, help='bound the map (points in new voxels beyond it '
                                                                'are dropped and counted)')
    p.add_argument('--every', type=int, default=1, help='use every N-th frame (default 1)')
    p.add_argument('--max-frames', type=int, default=None, help='stop after this many frames')
    add_model_arguments(p)
    p.add_argument('--world-frame', default=None, help='bag: the map frame (default: the root of the tf tree)')
    p.add_argument('--camera-frame', default=None,
                   help="bag: the camera's optical frame (default: the images' header.frame_id)")
    p.add_argument('--image-topic', default=None, help='bag: colour image topic (default: the only one)')
    p.add_argument('--depth-topic', default=None, help='bag: depth image or organised cloud topic')
    p.add_argument('--info-topic', default=None, help='bag: CameraInfo topic (default: the only one)')
    p.add_argument('--out', required=True, help='output folder')
    return p


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (2 for unusable inputs)."""
    return run_command(PROG, build_parser(), run, argv)


def open_sequence(args: argparse.Namespace):
    """The frames named on the command line (a :class:`~vizion3d_ros.core.io.posed.PosedSequence`)."""
    from ..core.io.posed import open_posed_sequence

    if args.bag:
        return open_posed_sequence(bag=args.bag, image_topic=args.image_topic, depth_topic=args.depth_topic,
                                   info_topic=args.info_topic, world_frame=args.world_frame,
                                   camera_frame=args.camera_frame)
    return open_posed_sequence(frames=args.frames, tum=args.tum)


class ModelMasks:
    """Masks of a frame from the model: one label value per detection (highest score on top)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from ..core.segmentation.base import parse_class_filter
        from ..core.segmentation.models import resolve_model
        from ..core.segmentation.ultralytics_backend import UltralyticsBackend

        path = resolve_model(args.model, progress=print_progress(args.model or DEFAULT_MODEL_URL))
        self.backend = UltralyticsBackend(path, device=args.device, imgsz=args.imgsz, conf_threshold=args.conf,
                                          iou_threshold=args.iou)
        if args.classes:
            self.backend.classes = parse_class_filter(args.classes, self.backend.class_names)
        self.name = self.backend.name

    def __call__(self, stem: str, color: np.ndarray) -> tuple[np.ndarray, dict[int, dict]]:
        seg = self.backend.segment(color)
        labels = np.zeros(color.shape[:2], np.uint16)
        for k in range(len(seg) - 1, -1, -1):  # lowest score first: the best detection keeps shared pixels
            labels[seg.masks[k]] = k + 1
        meta = {k + 1: {'class_id': int(seg.class_ids[k]), 'label': seg.labels[k],
                        'confidence': float(seg.scores[k])} for k in range(len(seg))}
        return labels, meta


class FolderMasks:
    """Masks of a frame from ``--masks DIR``; None for a frame without a file."""

    def __init__(self, folder: str, kind: str) -> None:
        from ..core.io.masks import MaskFolder

        self.folder = MaskFolder(folder, kind)
        self.name = f'{kind} masks from {folder}'

    def __call__(self, stem: str, color: np.ndarray) -> tuple[np.ndarray, dict[int, dict]] | None:
        return self.folder.read(stem, color.shape[:2])


def run(args: argparse.Namespace) -> int:
    """Fuse, export and print the table."""
    from ..core.fusion.export import export_scene
    from ..core.fusion.scene import SceneFusion
    from ..core.io.masks import MaskError
    from ..core.io.posed import FrameError, PosedFolderError

    if args.bag and _holds_objects(args.bag):
        return run_recorded(args)
    if args.map_params:
        raise UsageError('--map-params is for a bag of recorded objects (vizion3d_node\'s output)')
    args.voxel = 0.01 if args.voxel is None else args.voxel
    if args.every < 1:
        raise UsageError(f'--every must be >= 1, got {args.every}')
    if args.voxel <= 0:
        raise UsageError(f'--voxel must be a positive size in metres, got {args.voxel}')
    if args.mask_kind == 'semantic' and not args.masks:
        raise UsageError('--mask-kind semantic needs --masks DIR (class images); the model gives instances')
    if args.masks and args.model:
        raise UsageError('--masks and --model exclude each other: the masks replace the model')
    started = time.perf_counter()
    try:
        seq = open_sequence(args)
    except PosedFolderError as exc:
        raise UsageError(str(exc)) from exc
    skipped: list[dict] = [{'frame': name, 'reason': why} for name, why in getattr(seq, 'skipped', [])]
    for s in skipped:
        log(f"skipping {s['frame']}: {s['reason']}")
    source = FolderMasks(args.masks, args.mask_kind) if args.masks else ModelMasks(args)
    fusion = SceneFusion(voxel_size=args.voxel, mode=args.mask_kind, max_voxels=args.max_voxels)
    chosen = list(range(0, len(seq), args.every))[:args.max_frames]
    if not chosen:
        raise UsageError('no frames to fuse' + (f" ({len(skipped)} skipped)" if skipped else ''))
    log(f'{len(chosen)} frames from {args.frames or args.tum or args.bag}; masks: {source.name}')
    integrate_ms, segment_ms, used, without_masks = [], [], [], 0
    dropped_full = 0
    for i in _progress(chosen):
        try:
            f = seq[i]
            t0 = time.perf_counter()
            masks = source(f.stem, f.frame.color)
            segment_ms.append((time.perf_counter() - t0) * 1e3)
        except (FrameError, MaskError) as exc:
            skipped.append({'frame': seq.frames[i].stem, 'reason': str(exc)})
            log(f'skipping frame {seq.frames[i].stem}: {exc}')
            continue
        if masks is None:
            without_masks += 1
            masks = (np.zeros(f.frame.depth.shape, np.uint16), {})
        t0 = time.perf_counter()
        report = fusion.add_frame(f.frame.depth, f.frame.camera, f.pose, masks[0], masks[1], f.frame.color)
        integrate_ms.append((time.perf_counter() - t0) * 1e3)
        dropped_full += report.dropped_full
        used.append(f.stem)
    if not used:
        raise UsageError(f'none of the {len(chosen)} frames could be read (see above)')
    merges = fusion.consolidate()
    propagation, propagate_s = None, None
    if args.propagate:
        t0 = time.perf_counter()
        options = {'max_distance': args.propagate_radius, 'iterations': args.propagate_iterations}
        propagation = fusion.propagate(**{k: v for k, v in options.items() if v is not None})
        propagate_s = time.perf_counter() - t0
    out = Path(args.out)
    log(f'writing {out}/')
    t0 = time.perf_counter()
    class_names = source.folder.class_names if isinstance(source, FolderMasks) else None
    tables = export_scene(fusion, out, propagation, class_names)
    if args.label_cloud:
        tables['labelled_cloud'] = write_labelled_cloud(fusion, propagation, args.label_cloud, out)
    export_s = time.perf_counter() - t0
    summary = {
        'source': {'frames': args.frames, 'tum': args.tum, 'bag': args.bag, 'masks': args.masks,
                   'mask_kind': args.mask_kind, 'segmentation': source.name},
        'frames': {'used': len(used), 'skipped': len(skipped), 'without_masks': without_masks,
                   'stems': used, 'skipped_frames': skipped},
        'merged': {str(k): v for k, v in sorted(merges.items())},
        'dropped_points_map_full': dropped_full,
        **tables,
        'timings': {'integrate_ms_median': _pct(integrate_ms, 50), 'integrate_ms_p90': _pct(integrate_ms, 90),
                    'segment_ms_median': _pct(segment_ms, 50), 'propagate_s': _round(propagate_s),
                    'export_s': _round(export_s), 'total_s': _round(time.perf_counter() - started)},
        'peak_memory_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    print_table(summary)
    return 0


def _holds_objects(path: str) -> bool:
    try:
        from ..ros.mapping.recorded import holds_objects
    except ImportError:  # no ROS here: such a bag cannot be read anyway
        return False
    return holds_objects(path)


def map_settings(args: argparse.Namespace):
    """vizion3d_map_node's settings: its defaults, then ``--map-params``, then ``--voxel``/``--max-voxels``."""
    from dataclasses import fields

    import yaml

    from ..ros.mapping.params import MAP_PARAMS

    values: dict = {}
    if args.map_params:
        try:
            doc = yaml.safe_load(Path(args.map_params).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f'--map-params {args.map_params}: {exc}') from exc
        nodes = [v for v in doc.values() if isinstance(v, dict) and 'ros__parameters' in v] if isinstance(doc, dict) \
            else []
        if not nodes:
            raise UsageError(f'--map-params {args.map_params}: no "<node>: ros__parameters:" section')
        values = dict(nodes[0]['ros__parameters'])
    if args.voxel is not None:
        values['voxel_size'] = args.voxel
    if args.max_voxels is not None:
        values['max_voxels'] = args.max_voxels
    unknown = set(values) - {f.name for f in fields(MAP_PARAMS.settings_type)}
    if unknown:
        raise UsageError(f'--map-params: unknown parameters {sorted(unknown)}')
    settings = MAP_PARAMS.from_values(values)
    problem = MAP_PARAMS.check_values({k: getattr(settings, k) for k in MAP_PARAMS.specs})
    if problem:
        raise UsageError(f'map parameters: {problem}')
    return settings


def run_recorded(args: argparse.Namespace) -> int:
    """A bag of vizion3d_node's objects: the map node's integration, frame by frame, and its save_map files."""
    from ..core.io.posed import PosedFolderError
    from ..ros.drops import FrameRejectedError
    from ..ros.mapping.integrator import MapIntegrator
    from ..ros.mapping.recorded import RecordedMap

    for flag, value in (('--masks', args.masks), ('--model', args.model), ('--propagate', args.propagate),
                        ('--label-cloud', args.label_cloud)):
        if value:
            raise UsageError(f'{flag} does not apply to a bag of recorded objects (the masks are in the bag)')
    settings = map_settings(args)
    world = args.world_frame or settings.world_frame
    started = time.perf_counter()
    try:
        bag = RecordedMap(args.bag, world, points_topic=args.depth_topic)
    except PosedFolderError as exc:
        raise UsageError(str(exc)) from exc
    log(f'{len(bag)} recorded frames in {args.bag} (objects {bag.objects_topic}, cloud {bag.points_topic}, '
        f'{bag.unpaired} objects messages without their cloud); world frame {world!r}')
    integrator = MapIntegrator(settings, world)
    used, skipped, times = [], [], []
    for k, frame in enumerate(_progress(bag, total=len(bag))):
        if k % args.every or (args.max_frames is not None and len(used) >= args.max_frames):
            continue
        if frame.pose is None:
            skipped.append({'frame': frame.stamp, 'reason': frame.reason})
            log(f'skipping the frame stamped {frame.stamp}: {frame.reason}')
            continue
        try:
            integrator.integrate(frame.stamp, frame.objects, frame.cloud, frame.pose)
        except FrameRejectedError as exc:
            skipped.append({'frame': frame.stamp, 'reason': f'{exc.reason}: {exc}'})
            log(f'skipping the frame stamped {frame.stamp}: {exc.reason}: {exc}')
            continue
        times.append(integrator.last_ms)
        used.append(frame.stamp)
    if not used:
        raise UsageError(f'none of the {len(bag)} recorded frames could be fused (see above)')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tables = integrator.save(out)
    summary = {
        **tables,
        'source': {'bag': args.bag, 'recorded_objects': bag.objects_topic, 'points': bag.points_topic,
                   'map_params': args.map_params, 'segmentation': 'recorded vizion3d_node objects'},
        'frames': {'used': len(used), 'skipped': len(skipped), 'unpaired': bag.unpaired, 'stamps': used,
                   'skipped_frames': skipped},
        'map_settings': {f: getattr(settings, f) for f in ('voxel_size', 'max_voxels', 'confirm_frames',
                                                          'consolidate_every', 'forget_tentative_after',
                                                          'dynamic_classes', 'map_radius')},
        'timings': {'integrate_ms_median': _pct(times, 50), 'integrate_ms_p90': _pct(times, 90),
                    'export_s': _round(time.perf_counter() - t0), 'total_s': _round(time.perf_counter() - started)},
        'peak_memory_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    print_table(summary)
    return 0


def write_labelled_cloud(fusion, propagation, path: str, out: Path) -> dict:
    """``out/labelled_cloud.ply``: the cloud at ``path`` in its order with the map's instance and class."""
    from ..core.fusion.export import label_cloud
    from ..core.io.plyio import write_ply

    points, colors = read_cloud(path, '--label-cloud')
    instance, cls = label_cloud(fusion, points, propagation)
    write_ply(out / 'labelled_cloud.ply', points, colors, {'instance_id': instance, 'class_id': cls})
    return {'file': str(path), 'points': len(points), 'labelled': int((cls >= 0).sum())}


def _progress(items, total: int | None = None):
    """A frame progress bar on a terminal (tqdm), the plain iterable elsewhere."""
    if not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc='frames', unit='frame', file=sys.stderr, total=total)


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def print_table(summary: dict) -> None:
    """One screen: frames, coverage, then one line per object."""
    fr, cov, t = summary['frames'], summary['coverage'], summary['timings']
    after = '' if cov['after_propagation'] is None else f", after propagation {cov['after_propagation']:.0%}"
    print(f"\n{fr['used']} frames fused ({fr['skipped']} skipped), {summary['voxels']} voxels of "
          f"{summary['voxel_size'] * 100:g} cm, labelled {cov['direct']:.0%}{after}; "
          f"integration {t['integrate_ms_median']} ms/frame (median), peak memory {summary['peak_memory_mb']} MB")
    rows = summary['instances']
    if rows:
        print(f"{len(rows)} objects:")
        for o in rows[:30]:
            merged = f"  merged {o['merged_ids']}" if o['merged_ids'] else ''
            print(f"  {o['id']:>4}  {o['label']:<16} conf={o['confidence']:.2f}  voxels={o['points']:<7d} "
                  f"frames={o['frames_seen']:<4d} centroid=({', '.join(f'{c:.2f}' for c in o['centroid'])}){merged}")
        if len(rows) > 30:
            print(f'  ... {len(rows) - 30} more in summary.json')
    elif summary['classes']:
        print('classes:')
        for c in summary['classes']:
            print(f"  {c['class_id']:>4}  {c['label']:<16} voxels={c['points']}")
