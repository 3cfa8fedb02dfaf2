"""What the map node's DDS tests share: the node as a child process and a client playing vizion3d_node.

The client publishes what vizion3d_node would (objects with exact point_indices on organised optical-frame
clouds) and what the robot's localisation would (world <- camera optical on /tf, or as PoseStamped on
``pose``, at each frame's stamp), and records every output of the map node.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.synthetic.multiview import EXACT_MASKS, frame_masks, furnished_room, orbit_poses, render_view
from vizion3d_ros.msg import MapObject3D, MapObject3DArray, ObjectMask3D, ObjectMask3DArray
from vizion3d_ros.ros.conversions import xyzrgb_to_pointcloud2
from vizion3d_ros.ros.detections import vision_msgs_available
from vizion3d_ros.ros.messages import uint32_array
from vizion3d_ros.ros.stamps import stamp_ns

from node_harness import NodeRun, spin_until

WORLD, CAMERA = 'odom', 'camera_optical'
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class MapNodeProcess(NodeRun):
    """``vizion3d_map_node`` as a child process (the harness vizion3d_node's tests use)."""

    def __init__(self, log_path: Path, namespace: str = '', **params: str) -> None:
        super().__init__(log_path, namespace, params=params, executable='vizion3d_map_node')



class MapClient:
    """Plays vizion3d_node and the localisation; records map_objects, map_points, markers, detections."""

    def __init__(self) -> None:
        from tf2_ros import TransformBroadcaster

        self.node = Node('vizion3d_map_test_client')
        self.objects_pub = self.node.create_publisher(ObjectMask3DArray, 'objects', RELIABLE)
        self.cloud_pub = self.node.create_publisher(PointCloud2, 'points', RELIABLE)
        self.tf = TransformBroadcaster(self.node)
        self.pose_pub = self.node.create_publisher(PoseStamped, 'pose', RELIABLE)
        self.maps: list[MapObject3DArray] = []
        self.clouds: list[PointCloud2] = []
        self.diags: list = []
        self.node.create_subscription(MapObject3DArray, 'map_objects', self.maps.append, RELIABLE)
        self.node.create_subscription(PointCloud2, 'map_points', self.clouds.append, RELIABLE)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, QoSProfile(depth=20))
        self.markers: list[MarkerArray] = []
        self.node.create_subscription(MarkerArray, 'map_markers', self.markers.append, RELIABLE)
        self.detections: list = []
        if vision_msgs_available():
            from vision_msgs.msg import Detection3DArray
            self.node.create_subscription(Detection3DArray, 'detections_3d', self.detections.append, RELIABLE)
        self._t = 2_000

    def _on_diag(self, msg: DiagnosticArray) -> None:
        self.diags.extend(s for s in msg.status if s.name.endswith('vizion3d_map_node: map'))

    def spin_until(self, predicate, timeout: float) -> bool:
        return spin_until(self.node, predicate, timeout)

    def call(self, srv_type, name: str, request):
        cli = self.node.create_client(srv_type, name)
        assert cli.wait_for_service(timeout_sec=20.0), f'{name} did not appear'
        future = cli.call_async(request)
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=60.0)
        assert future.done(), f'no answer from {name}'
        return future.result()

    def send_tf(self, pose: np.ndarray, stamp) -> None:
        from geometry_msgs.msg import TransformStamped

        t = TransformStamped()
        t.header.frame_id, t.child_frame_id, t.header.stamp = WORLD, CAMERA, stamp
        tr = t.transform.translation
        tr.x, tr.y, tr.z = pose[:3, 3].tolist()
        q = t.transform.rotation
        q.x, q.y, q.z, q.w = Rotation.from_matrix(pose[:3, :3]).as_quat().tolist()
        self.tf.sendTransform(t)

    def send_pose(self, pose: np.ndarray, stamp) -> None:
        msg = PoseStamped(header=Header(frame_id=WORLD, stamp=stamp))
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = pose[:3, 3].tolist()
        q = msg.pose.orientation
        q.x, q.y, q.z, q.w = Rotation.from_matrix(pose[:3, :3]).as_quat().tolist()
        self.pose_pub.publish(msg)

    def send(self, view, masks, with_tf: bool = True, stamp_s: float | None = None, people: set[int] = frozenset(),
             with_pose: bool = False) -> Header:
        """One frame (cloud + objects, and its pose on /tf); mask values in ``people`` are sent as persons."""
        if stamp_s is None:
            self._t += 1
        seconds = self._t if stamp_s is None else stamp_s
        header = Header(frame_id=CAMERA, stamp=rclpy.time.Time(seconds=seconds).to_msg())
        if with_tf:
            self.send_tf(view.pose, header.stamp)
        if with_pose:
            self.send_pose(view.pose, header.stamp)
        cam = view.camera
        xyz = depth_to_points_optical(view.depth, cam)
        cloud = xyzrgb_to_pointcloud2(xyz, view.color.reshape(-1, 3), header, width=cam.width, height=cam.height)
        has_depth = np.isfinite(view.depth.reshape(-1))
        flat = masks.labels.reshape(-1)
        objs = []
        for value, meta in sorted(masks.meta.items()):
            idx = np.flatnonzero((flat == value) & has_depth)
            cls, label = (0, 'person') if value in people else (int(meta['class_id']), meta['label'])
            o = ObjectMask3D(header=header, id=int(value), class_id=cls, label=label,
                             confidence=float(meta['confidence']))
            o.point_indices = uint32_array(idx)
            objs.append(o)
        msg = ObjectMask3DArray(header=header, cloud_width=cam.width, cloud_height=cam.height,
                                image_width=cam.width, image_height=cam.height, model='truth', objects=objs)
        self.cloud_pub.publish(cloud)
        self.objects_pub.publish(msg)
        return header

    def map_at(self, header: Header, timeout: float = 30.0) -> MapObject3DArray:
        key = stamp_ns(header)
        ok = self.spin_until(lambda: any(stamp_ns(m.header) == key for m in self.maps), timeout)
        assert ok, f'no map_objects for the frame stamped {key}'
        return next(m for m in self.maps if stamp_ns(m.header) == key)

    def drop_count(self, reason: str) -> int:
        for st in reversed(self.diags):
            for kv in st.values:
                if kv.key == f'dropped/{reason}':
                    return int(kv.value)
            return 0
        return 0


def ns(t) -> int:
    return t.sec * 1_000_000_000 + t.nanosec


def nearest(msg: MapObject3DArray, center, class_id: int) -> MapObject3D | None:
    same = [o for o in msg.objects if o.class_id == class_id and o.point_count > 0]
    if not same:
        return None
    d = [np.linalg.norm(np.array([o.centroid.x, o.centroid.y, o.centroid.z]) - center) for o in same]
    return same[int(np.argmin(d))] if min(d) < 0.6 else None



def orbit_frames(seed: int, num_objects: int, num_views: int):
    """A furnished room seen from an orbit, each view with its exact masks: ``(room, [(view, masks), ...])``."""
    rng = np.random.default_rng(seed)
    room = furnished_room(rng, num_objects=num_objects)
    frames = []
    for pose in orbit_poses(room, num_views=num_views):
        view = render_view(room, pose)
        frames.append((view, frame_masks(room, view, rng, EXACT_MASKS)))
    return room, frames
