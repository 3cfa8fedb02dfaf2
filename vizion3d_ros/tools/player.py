"""vizion3d_player: publish an RGB-D frame as Image + CameraInfo + organised XYZRGB PointCloud2.

Stands in for a camera driver: same stamps on all three, the optical frame as frame_id, and the cloud
back-projected from the registered depth like ``depth_image_proc/point_cloud_xyzrgb`` does.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from ..core.io.rgbd import RGBDFrame, depth_to_points_optical
from ..ros.conversions import rgb_to_image, xyzrgb_to_pointcloud2
from .scenes import load_scene


def camera_info_msg(frame: RGBDFrame, header: Header) -> CameraInfo:
    """CameraInfo of an undistorted pinhole camera."""
    c = frame.camera
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


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    argv = sys.argv if argv is None else argv
    ros_args = rclpy.utilities.remove_ros_args(argv)
    p = argparse.ArgumentParser(prog='vizion3d_player', description=__doc__.splitlines()[0])
    p.add_argument('--frame', help="RGB-D folder (camera.json + color/depth), or 'bus'; "
                                   'default: ../shared TUM frame, else bus')
    p.add_argument('--rate', type=float, default=2.0, help='publish rate in Hz (default 2)')
    p.add_argument('--count', type=int, default=0, help='stop after this many frames (0 = forever)')
    p.add_argument('--frame-id', default='camera_color_optical_frame')
    args = p.parse_args(ros_args[1:])
    rclpy.init(args=argv)
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
