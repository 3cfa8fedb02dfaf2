"""vizion3d-annotate: segment the objects of a point cloud (with or without a photo) and save them in 3D.

Reads a PLY/PCD cloud (OpenGL/viewer camera space by default, ROS optical frame with --optical), an
optional image (without one a front view is rendered from the cloud's colours) and either a model or a
label image of masks, and writes to --out: ``annotated.ply`` (the input points in their order, with
instance colours, ``instance_id`` and ``class_id``), ``objects/<id>_<label>.ply``, ``summary.json`` and
``overlay.png``.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from ..core.segmentation.models import DEFAULT_MODEL_URL, print_progress
from .cli import UsageError, add_model_arguments, log, read_cloud, run_command

PROG = 'vizion3d-annotate'


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument('--cloud', required=True, help='point cloud (.ply or .pcd; colours optional)')
    p.add_argument('--image', default=None, help='image to segment (default: a front view rendered from the cloud)')
    p.add_argument('--masks', default=None,
                   help='single-channel 8/16-bit label image (each non-zero value one instance) used instead '
                        'of a model')
    for name in ('fx', 'fy', 'cx', 'cy'):
        p.add_argument(f'--{name}', type=float, default=None,
                       help=f'camera {name} in pixels (default: derived from the image size or the cloud)')
    p.add_argument('--width', type=int, default=None, help='front-view width without --image (default 640)')
    p.add_argument('--height', type=int, default=None, help='front-view height without --image (default: aspect)')
    p.add_argument('--optical', action='store_true',
                   help='the cloud is in the ROS optical frame (X right, Y down, Z forward), not OpenGL')
    p.add_argument('--mode', choices=('visible', 'exclusive', 'naive'), default=None,
                   help='how masks become points (default visible: occlusion-aware)')
    p.add_argument('--naive', action='store_true', help='same as --mode naive (every point projecting into a mask)')
    add_model_arguments(p)
    p.add_argument('--out', required=True, help='output folder')
    return p


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (2 for unusable inputs)."""
    return run_command(PROG, build_parser(), run, argv)


def run(args: argparse.Namespace) -> int:
    """Annotate the cloud, write the outputs and print the table."""
    from ..core.api import (
        EXTERNAL,
        ObjectMaskAnnotation3D,
        ObjectMaskAnnotation3DCommand,
        ObjectMaskAnnotation3DConfig,
    )

    if args.masks is not None and args.model is not None:
        raise UsageError('--masks and --model exclude each other: the masks replace the model')
    for opt in ('image', 'masks'):
        value = getattr(args, opt)
        if value is not None and not Path(value).is_file():
            raise UsageError(f'--{opt} file {value!r} does not exist')
    mode = 'naive' if args.naive else (args.mode or 'visible')
    if args.naive and args.mode not in (None, 'naive'):
        raise UsageError(f'--naive contradicts --mode {args.mode}')
    points, colors = read_cloud(args.cloud)
    config = ObjectMaskAnnotation3DConfig(
        fx=args.fx, fy=args.fy, cx=args.cx, cy=args.cy, conf_threshold=args.conf, iou_threshold=args.iou,
        imgsz=args.imgsz, device=args.device, classes=args.classes, lift_mode=mode, render_width=args.width,
        render_height=args.height)
    command = ObjectMaskAnnotation3DCommand(
        point_cloud=points, colors=colors, image_input=args.image,
        model_backend=EXTERNAL if args.masks else (args.model or DEFAULT_MODEL_URL), masks=args.masks,
        cloud_frame='optical' if args.optical else 'opengl', advanced_config=config, output_format='numpy',
        return_object_clouds=False, return_annotated_cloud=False)
    task = ObjectMaskAnnotation3D(log=log, download_progress=print_progress(args.model or DEFAULT_MODEL_URL))
    result = task.run(command)
    for warning in result.warnings:
        log(f'warning: {warning}')
    out = Path(args.out)
    log(f'writing {out}/')
    summary = write_outputs(out, points, colors, result, args)
    print_table(summary)
    return 0


def _safe(label: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', label).strip('_') or 'object'


def write_outputs(out: Path, points: np.ndarray, colors: np.ndarray | None, result, args) -> dict:
    """Write the PLYs, overlay and summary; return the summary."""
    import cv2

    from ..core.io.plyio import write_ply
    from ..core.render.overlay import overlay

    out.mkdir(parents=True, exist_ok=True)
    objects_dir = out / 'objects'
    objects_dir.mkdir(exist_ok=True)
    for old in objects_dir.glob('*.ply'):  # a previous run's objects would mix with these
        old.unlink()
    class_of = np.full(len(result.annotations) + 1, -1, np.int32)
    for ann in result.annotations:
        class_of[ann.id] = ann.class_id
    write_ply(out / 'annotated.ply', points, result.annotated_colors,
              extra={'instance_id': result.instance_ids, 'class_id': class_of[result.instance_ids]})
    summary_objects = []
    for ann in result.annotations:
        idx = ann.point_indices
        name = f'{ann.id:02d}_{_safe(ann.label)}.ply'
        write_ply(objects_dir / name, points[idx], colors[idx] if colors is not None else None)
        summary_objects.append({
            'id': ann.id, 'label': ann.label, 'class_id': ann.class_id,
            'confidence': round(float(ann.confidence), 4), 'bbox_2d': [round(v, 1) for v in ann.bbox_2d],
            'point_count': ann.point_count, 'file': f'objects/{name}',
            'centroid': _floats(ann.centroid), 'distance_m': round(ann.distance_m, 4),
            'aabb': {'min': _floats(ann.aabb_min), 'max': _floats(ann.aabb_max),
                     'center': _floats(ann.aabb_center), 'size': _floats(ann.aabb_size)},
            'obb': {'center': _floats(ann.obb.center), 'rotation': [_floats(r) for r in ann.obb.rotation],
                    'extents': _floats(ann.obb.extents)}})
    cv2.imwrite(str(out / 'overlay.png'), overlay(result.image, result.annotations)[:, :, ::-1])
    cam = result.camera
    summary = {
        'cloud': str(args.cloud), 'image': args.image, 'masks': args.masks,
        'synthesized_image': result.synthesized_image, 'backend': result.backend_used,
        'cloud_frame': 'optical' if args.optical else 'opengl', 'cloud_points': int(len(points)),
        'camera': {'fx': cam.fx, 'fy': cam.fy, 'cx': cam.cx, 'cy': cam.cy, 'width': cam.width,
                   'height': cam.height},
        'warnings': result.warnings, 'timings_ms': {k: round(v, 1) for k, v in result.timings_ms.items()},
        'objects': summary_objects}
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    return summary


def _floats(values) -> list[float]:
    return [round(float(v), 6) for v in np.asarray(values).reshape(-1)]


def print_table(summary: dict) -> None:
    """One line per object, most confident first (the demo's format)."""
    source = 'rendered front view' if summary['synthesized_image'] else 'image'
    print(f"\n{len(summary['objects'])} objects ({summary['cloud_points']} cloud points, {source}, "
          f"backend {summary['backend']}):")
    for o in summary['objects']:
        print(f"  {o['label']:<14} conf={o['confidence']:.2f}  3D points={o['point_count']:<7d} "
              f"centroid distance={o['distance_m']:.2f} m")
