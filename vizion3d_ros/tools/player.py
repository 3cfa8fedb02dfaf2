"""vizion3d_player: publish RGB-D frames as Image + CameraInfo + organised XYZRGB PointCloud2 (+ their poses).

Stands in for a camera driver: same stamps on all three, the optical frame as frame_id, and the cloud
back-projected from the registered depth like ``depth_image_proc/point_cloud_xyzrgb`` does. One frame is
published again and again (``--frame``); a posed sequence (``--frames`` posed RGB-D folder, ``--tum``,
``--bag``) is replayed in order at ``--rate``, each frame's camera pose published on ``/tf`` as
``world_frame -> frame_id`` with the frame's stamp, as a robot's localisation would (for the map node);
``--poses topic`` sends them as geometry_msgs/PoseStamped on ``pose`` instead. A bag of vizion3d_node's
recorded outputs (objects + the cloud + /tf) is replayed as ``objects`` and ``points`` for vizion3d_map_node.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from ..core.camera.pinhole import PinholeIntrinsics
from ..core.io.rgbd import RGBDFrame, depth_to_points_optical
from ..ros.conversions import rgb_to_image, xyzrgb_to_pointcloud2
from .scenes import load_scene


def camera_info_msg(frame: RGBDFrame | PinholeIntrinsics, header: Header) -> CameraInfo:
    """CameraInfo of an undistorted pinhole camera (a frame's, or the camera itself)."""
    c = frame if isinstance(frame, PinholeIntrinsics) else frame.camera
    return CameraInfo(header=header, width=c.width, height=c.height, distortion_model='plumb_bob',
                      d=[0.0] * 5, k=c.matrix().reshape(-1).tolist(),
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[c.fx, 0.0, c.cx, 0.0, 0.0, c.fy, c.cy, 0.0, 0.0, 0.0, 1.0, 0.0])


class FramePlayer(Node):
    """Publishes one RGB-D frame repeatedly with fresh stamps."""

    def __init__(self, frame: RGBDFrame, frame_id: str, rate_hz: float, count: int) -> None:
        super().__init__('vizion3d_player')
        self.frame, self.frame_id, self.count, self.sent = frame, frame_id, count, 0
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)  # a camera driver's default QoS
        self.image_pub = self.create_publisher(Image, 'camera/color/image_raw', qos)
        self.info_pub = self.create_publisher(CameraInfo, 'camera/color/camera_info', qos)
        self.cloud_pub = self.create_publisher(PointCloud2, 'camera/depth_registered/points', qos)
        self.image = rgb_to_image(frame.color)
        xyz = depth_to_points_optical(frame.depth, frame.camera)
        self.cloud = xyzrgb_to_pointcloud2(xyz, frame.color.reshape(-1, 3), width=frame.camera.width,
                                           height=frame.camera.height)
        self.timer = self.create_timer(1.0 / rate_hz, self.publish_once)
        self.get_logger().info(f'publishing {frame.name} ({frame.camera.width}x{frame.camera.height}, '
                               f'{int(np.isfinite(xyz[:, 2]).sum())} valid points) at {rate_hz} Hz')

    def publish_once(self) -> None:
        """Publish the frame once with the current time as stamp."""
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)
        self.image.header = header
        self.cloud.header = header
        self.image_pub.publish(self.image)
        self.info_pub.publish(camera_info_msg(self.frame, header))
        self.cloud_pub.publish(self.cloud)
        self.sent += 1
        if self.count and self.sent >= self.count:
            raise SystemExit(0)


def transform_msg(pose: np.ndarray, header: Header, child: str):
    """``geometry_msgs/TransformStamped`` of a 4x4 ``pose`` (child -> header.frame_id)."""
    from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(np.asarray(pose, np.float64)[:3, :3]).as_quat()
    t = np.asarray(pose, np.float64)[:3, 3]
    return TransformStamped(header=header, child_frame_id=child, transform=Transform(
        translation=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])),
        rotation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))))


class PosePublisher:
    """A frame's camera pose, as a robot's localisation sends it: on /tf, or as a PoseStamped on ``pose``."""

    def __init__(self, node: Node, mode: str) -> None:
        from geometry_msgs.msg import PoseStamped
        from tf2_msgs.msg import TFMessage

        many = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.mode = mode
        self._tf_message, self._pose_message = TFMessage, PoseStamped
        if mode == 'tf':
            self.pub = node.create_publisher(TFMessage, '/tf', many)
        else:  # the pose of the camera's optical frame in world_frame, as a localiser without TF would send it
            self.pub = node.create_publisher(PoseStamped, 'pose', many)

    def where(self, world_frame: str, child: str) -> str:
        """Where the poses go, for the start-up line."""
        return f'on /tf as {world_frame} -> {child}' if self.mode == 'tf' else f'on pose (PoseStamped in {world_frame})'

    def publish(self, pose: np.ndarray, world: Header, child: str) -> None:
        """The pose world <- ``child`` at ``world.stamp``."""
        tf = transform_msg(pose, world, child)
        if self.mode == 'tf':
            self.pub.publish(self._tf_message(transforms=[tf]))
            return
        t, q = tf.transform.translation, tf.transform.rotation
        msg = self._pose_message(header=world)
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = t.x, t.y, t.z
        msg.pose.orientation = q
        self.pub.publish(msg)


class SequencePlayer(Node):
    """Replays a posed sequence: each frame's images and cloud, and its pose on /tf, with a fresh stamp."""

    def __init__(self, sequence, frame_id: str, world_frame: str, rate_hz: float, loops: int,
                 wait_s: float = 10.0, poses: str = 'tf') -> None:
        super().__init__('vizion3d_player')
        # a short sequence must not be spent before anyone listens: wait (up to wait_s) for a subscriber
        self.wait_until = time.monotonic() + wait_s
        self.sequence, self.frame_id, self.world_frame, self.loops = sequence, frame_id, world_frame, loops
        self.index, self.loop, self.sent, self.skipped = 0, 0, 0, 0
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.create_publisher(Image, 'camera/color/image_raw', qos)
        self.info_pub = self.create_publisher(CameraInfo, 'camera/color/camera_info', qos)
        self.cloud_pub = self.create_publisher(PointCloud2, 'camera/depth_registered/points', qos)
        self.poses = PosePublisher(self, poses)
        self.timer = self.create_timer(1.0 / rate_hz, self.publish_next)
        self.get_logger().info(f'replaying {len(sequence)} posed frames at {rate_hz} Hz, poses '
                               f'{self.poses.where(world_frame, frame_id)}'
                               + (f', {loops} time(s)' if loops else ', looping'))

    def publish_next(self) -> None:
        """Publish the next frame (its pose first, so that a listener has it when the cloud arrives)."""
        from ..core.io.posed import FrameError

        if self.sent == 0 and self.cloud_pub.get_subscription_count() == 0 and time.monotonic() < self.wait_until:
            return
        if self.index >= len(self.sequence):
            self.index, self.loop = 0, self.loop + 1
            if self.loops and self.loop >= self.loops:
                raise SystemExit(0)
        try:
            f = self.sequence[self.index]
        except FrameError as exc:
            self.skipped += 1
            self.get_logger().warning(f'skipping a frame: {exc}')
            self.index += 1
            return
        self.index += 1
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)
        world = Header(stamp=header.stamp, frame_id=self.world_frame)
        self.poses.publish(f.pose, world, self.frame_id)
        image = rgb_to_image(f.frame.color)
        image.header = header
        xyz = depth_to_points_optical(f.frame.depth, f.frame.camera)
        cloud = xyzrgb_to_pointcloud2(xyz, f.frame.color.reshape(-1, 3), width=f.frame.camera.width,
                                      height=f.frame.camera.height)
        cloud.header = header
        self.image_pub.publish(image)
        self.info_pub.publish(camera_info_msg(f.frame.camera, header))
        self.cloud_pub.publish(cloud)
        self.sent += 1


class RecordedPlayer(Node):
    """Replays a bag of vizion3d_node's recorded outputs into a map node: ``objects``, ``points``, the poses.

    Each frame is re-stamped (now), its objects and cloud with the same stamp, its pose (from the bag's
    tf) published first; frames without a pose in the bag are skipped, as vizion3d-fuse skips them.
    """

    def __init__(self, recorded, world_frame: str, rate_hz: float, loops: int, wait_s: float = 10.0,
                 poses: str = 'tf') -> None:
        super().__init__('vizion3d_player')
        from vizion3d_ros.msg import ObjectMask3DArray

        self.wait_until = time.monotonic() + wait_s  # as SequencePlayer: wait for the map node to listen
        self.world_frame, self.loops = world_frame, loops
        self.loop, self.sent, self.skipped = 0, 0, 0
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self.objects_pub = self.create_publisher(ObjectMask3DArray, 'objects', qos)
        self.cloud_pub = self.create_publisher(PointCloud2, 'points', qos)
        self.poses = PosePublisher(self, poses)
        self.recorded = recorded
        self._frames = iter(recorded)
        self.timer = self.create_timer(1.0 / rate_hz, self.publish_next)
        self.get_logger().info(f'replaying {len(recorded)} recorded frames (objects + points) of {recorded.path} '
                               f'at {rate_hz} Hz' + (f', {loops} time(s)' if loops else ', looping'))

    def publish_next(self) -> None:
        """Publish the next recorded frame: pose, then cloud and objects under one fresh stamp."""
        ready = self.objects_pub.get_subscription_count() and self.cloud_pub.get_subscription_count()
        if self.sent == 0 and not ready and time.monotonic() < self.wait_until:
            return
        frame = next(self._frames, None)
        if frame is None:
            self.loop += 1
            if self.loops and self.loop >= self.loops:
                raise SystemExit(0)
            self._frames = iter(self.recorded)
            return
        if frame.pose is None:
            self.skipped += 1
            self.get_logger().warning(f'skipping a recorded frame: {frame.reason}')
            return
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=frame.cloud.header.frame_id)
        self.poses.publish(frame.pose, Header(stamp=header.stamp, frame_id=self.world_frame), header.frame_id)
        frame.cloud.header = header
        frame.objects.header = header
        for obj in frame.objects.objects:
            obj.header = header
        self.cloud_pub.publish(frame.cloud)
        self.objects_pub.publish(frame.objects)
        self.sent += 1


def open_sequence(args: argparse.Namespace):
    """The posed sequence the arguments name, or None for a single frame."""
    from ..core.io.posed import open_posed_sequence

    if not (args.frames or args.tum or args.bag):
        return None
    return open_posed_sequence(frames=args.frames or None, tum=args.tum or None, bag=args.bag or None)


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    argv = sys.argv if argv is None else argv
    ros_args = rclpy.utilities.remove_ros_args(argv)
    p = argparse.ArgumentParser(prog='vizion3d_player', description=__doc__.splitlines()[0])
    p.add_argument('--frame', help="RGB-D folder (camera.json + color/depth), or 'bus'; "
                                   'default: ../shared TUM frame, else bus')
    p.add_argument('--frames', metavar='DIR', help='replay a posed RGB-D folder (camera.json, color/, depth/, '
                                                   'trajectory.log) with its poses on /tf')
    p.add_argument('--tum', metavar='DIR', help='replay a TUM RGB-D sequence with its poses on /tf')
    p.add_argument('--bag', metavar='PATH', help='replay the frames and poses of a rosbag2 (re-stamped)')
    p.add_argument('--world-frame', default='odom', help='parent frame of the replayed poses (default odom)')
    p.add_argument('--poses', choices=('tf', 'topic'), default='tf',
                   help='a sequence\'s poses on /tf (default) or as geometry_msgs/PoseStamped on `pose` (for '
                        'vizion3d_map_node pose_source:=topic)')
    p.add_argument('--loops', type=int, default=1, help='replays of a sequence (0 = forever; default 1)')
    p.add_argument('--wait', type=float, default=10.0,
                   help='seconds a sequence waits for a subscriber to its cloud before starting (default 10)')
    p.add_argument('--rate', type=float, default=2.0, help='publish rate in Hz (default 2)')
    p.add_argument('--count', type=int, default=0, help='stop after this many frames (0 = forever)')
    p.add_argument('--frame-id', default='camera_color_optical_frame')
    args = p.parse_args(ros_args[1:])
    if sum(bool(x) for x in (args.frame, args.frames, args.tum, args.bag)) > 1:
        p.error('--frame, --frames, --tum and --bag exclude each other')
    recorded = None
    if args.bag:
        from ..ros.mapping.recorded import RecordedMap, holds_objects

        if holds_objects(args.bag):
            recorded = RecordedMap(args.bag, args.world_frame)
    sequence = None if recorded is not None else open_sequence(args)
    rclpy.init(args=argv)
    if recorded is not None:
        node = RecordedPlayer(recorded, args.world_frame, args.rate, args.loops, args.wait, args.poses)
    elif sequence is not None:
        node = SequencePlayer(sequence, args.frame_id, args.world_frame, args.rate, args.loops, args.wait, args.poses)
    else:
        node = FramePlayer(load_scene(args.frame), args.frame_id, args.rate, args.count)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException, SystemExit):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
