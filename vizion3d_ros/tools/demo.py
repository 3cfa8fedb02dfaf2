"""vizion3d_demo: the whole product on a real frame, over real DDS, in one command.

Starts ``vizion3d_node`` and ``vizion3d_player`` as separate processes, receives the node's
ObjectMask3DArray and annotated cloud, prints one line per object and writes an output folder:
``annotated.ply``, ``objects/<id>_<label>.ply``, ``overlay.png`` and ``summary.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..core.io.plyio import write_ply
from ..core.render.overlay import overlay
from .scenes import default_model, load_scene

TOPICS = {'image': 'camera/color/image_raw', 'camera_info': 'camera/color/camera_info',
          'points': 'camera/depth_registered/points'}


def node_command(model: str, extra_params: dict[str, str] | None = None) -> list[str]:
    """Command line starting vizion3d_node with the demo's topic remaps."""
    cmd = ['vizion3d_node', '--ros-args', '-p', f'model:={model}']
    for k, v in (extra_params or {}).items():
        cmd += ['-p', f'{k}:={v}']
    for name, topic in TOPICS.items():
        cmd += ['-r', f'{name}:={topic}']
    return cmd


def mask_from_msg(obj, height: int, width: int) -> np.ndarray:
    """Full-image bool mask of an ObjectMask3D (crop pasted at its ROI)."""
    full = np.zeros((height, width), bool)
    roi = obj.mask_roi
    if roi.width and roi.height:
        crop = np.frombuffer(obj.mask.data, np.uint8).reshape(roi.height, obj.mask.step)[:, :roi.width]
        full[roi.y_offset:roi.y_offset + roi.height, roi.x_offset:roi.x_offset + roi.width] = crop > 0
    return full


def receive(timeout_s: float):
    """Spin a listener until one ObjectMask3DArray and one annotated cloud arrived (or time out)."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    from vizion3d_ros.msg import ObjectMask3DArray

    rclpy.init()
    node = Node('vizion3d_demo')
    got: dict[str, object] = {}
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(ObjectMask3DArray, 'objects', lambda m: got.setdefault('objects', m), qos)
    node.create_subscription(PointCloud2, 'annotated_points', lambda m: got.setdefault('cloud', m), qos)
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < 2 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.2)
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return got.get('objects'), got.get('cloud')


def write_outputs(out: Path, frame, objects_msg, cloud_msg) -> dict:
    """Write PLYs, overlay and summary; return the summary."""
    import cv2

    from ..ros.conversions import pointcloud2_to_arrays

    out.mkdir(parents=True, exist_ok=True)
    (out / 'objects').mkdir(exist_ok=True)
    cloud = pointcloud2_to_arrays(cloud_msg)
    xyz, rgb = cloud.xyz, cloud.rgb
    instance = np.zeros(len(xyz), np.int32)
    class_id = np.full(len(xyz), -1, np.int32)
    h, w = objects_msg.image_height, objects_msg.image_width
    shown, summary_objects = [], []
    for o in objects_msg.objects:
        idx = np.asarray(o.point_indices, dtype=np.int64)
        instance[idx], class_id[idx] = o.id, o.class_id
        write_ply(out / 'objects' / f'{o.id:02d}_{o.label.replace(" ", "_")}.ply', xyz[idx], rgb[idx])
        shown.append(SimpleNamespace(mask=mask_from_msg(o, h, w), bbox_2d=np.asarray(o.bbox_2d), label=o.label,
                                     confidence=o.confidence, point_indices=idx))
        c = o.centroid
        summary_objects.append({
            'id': o.id, 'label': o.label, 'class_id': o.class_id, 'confidence': round(float(o.confidence), 4),
            'bbox_2d': [round(float(v), 1) for v in o.bbox_2d], 'point_count': len(idx),
            'centroid': [c.x, c.y, c.z], 'distance_m': float(np.linalg.norm([c.x, c.y, c.z])),
            'bbox_3d_center': [o.bbox_3d_center.position.x, o.bbox_3d_center.position.y,
                               o.bbox_3d_center.position.z],
            'bbox_3d_size': [o.bbox_3d_size.x, o.bbox_3d_size.y, o.bbox_3d_size.z]})
    finite = np.isfinite(xyz).all(axis=1)
    write_ply(out / 'annotated.ply', xyz[finite], rgb[finite],
              extra={'instance_id': instance[finite], 'class_id': class_id[finite]})
    cv2.imwrite(str(out / 'overlay.png'), overlay(frame.color, shown)[:, :, ::-1])
    summary = {'scene': frame.name, 'model': objects_msg.model, 'frame_id': objects_msg.header.frame_id,
               'cloud_points': len(xyz), 'cloud_width': objects_msg.cloud_width,
               'cloud_height': objects_msg.cloud_height, 'objects': summary_objects}
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    return summary


def print_table(summary: dict) -> None:
    """One line per object, most confident first."""
    print(f"\n{len(summary['objects'])} objects in {summary['scene']} "
          f"({summary['cloud_points']} cloud points, model {summary['model']}):")
    for o in summary['objects']:
        print(f"  {o['label']:<14} conf={o['confidence']:.2f}  3D points={o['point_count']:<7d} "
              f"centroid distance={o['distance_m']:.2f} m")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    p = argparse.ArgumentParser(prog='vizion3d_demo', description=__doc__.splitlines()[0])
    p.add_argument('--model', default=None, help='checkpoint path or URL (default: ../shared model, '
                                                 'else the vizion3D default download)')
    p.add_argument('--frame', default=None, help="RGB-D folder or 'bus' (default: ../shared TUM frame)")
    p.add_argument('--out', default='out/demo', help='output folder (default out/demo)')
    p.add_argument('--timeout', type=float, default=300.0, help='seconds to wait for results')
    args = p.parse_args(argv)
    model = args.model if args.model is not None else default_model()
    frame = load_scene(args.frame)
    print(f'scene: {frame.name}; model: {model or "default (download)"}')
    env = dict(os.environ)
    logs = Path(args.out)
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / 'node.log', 'w') as node_log, open(logs / 'player.log', 'w') as player_log:
        # the node's default QoS: input_reliability auto subscribes reliably once it sees the player's
        # reliable publishers, as it would next to a camera driver
        node = subprocess.Popen(node_command(model, {}), env=env,
                                stdout=node_log, stderr=subprocess.STDOUT)
        player_cmd = ['vizion3d_player', '--rate', '1'] + (['--frame', args.frame] if args.frame else [])
        player = subprocess.Popen(player_cmd, env=env, stdout=player_log, stderr=subprocess.STDOUT)
        try:
            objects_msg, cloud_msg = receive(args.timeout)
        finally:
            _stop(player)
            _stop(node)
    if objects_msg is None or cloud_msg is None:
        print(f'no result within {args.timeout:.0f} s; node log:\n' + (logs / 'node.log').read_text()[-3000:],
              file=sys.stderr)
        return 1
    summary = write_outputs(Path(args.out), frame, objects_msg, cloud_msg)
    print_table(summary)
    print(f'\nwrote {args.out}/annotated.ply, {args.out}/objects/*.ply, {args.out}/overlay.png, '
          f'{args.out}/summary.json')
    return 0
