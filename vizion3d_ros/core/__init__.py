"""Pure core of vizion3d_ros: camera models, frames, lifting, segmentation and the Python API.

Nothing under this package imports rclpy, so it runs (and is tested) without ROS.
"""
