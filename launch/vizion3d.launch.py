"""Launch vizion3d_node (and optionally RViz).

Usage:
  ros2 launch vizion3d_ros vizion3d.launch.py model:=/path/to/yolov8n-seg.pt \
      image:=/camera/color/image_raw camera_info:=/camera/color/camera_info \
      points:=/camera/depth_registered/points rviz:=true

vizion3d_node is a managed (lifecycle) node; with autostart:=true (default) it configures and activates
itself. With autostart:=false drive it with a lifecycle manager or `ros2 lifecycle set /vizion3d_node
configure` / `activate`. Other parameters (cloud_to_camera, max_frame_age, ...) go in params_file.

The node runs with the Fast DDS profile config/fastdds_large_data.xml (shared memory sized for multi-MB
clouds, larger UDP buffers): dds_profile:=<file> uses another, dds_profile:=none no profile. A profile already named
in the environment (FASTDDS_DEFAULT_PROFILES_FILE, or FASTRTPS_DEFAULT_PROFILES_FILE of Fast DDS 2.x) wins.
The profile matters most for the camera driver that publishes the clouds: see README, "Transport".
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

#: Where Fast DDS looks for a profile: 3.x (Kilted and later) reads the first, 2.x (Humble, Jazzy) the second.
DDS_PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')


#: dds_profile values that mean "no profile" (ros2 launch refuses an empty `name:=`)
NO_PROFILE = ('', 'none', 'false', "''", '""')


def dds_profile_env(profile: str, environment) -> dict:
    """The node's extra environment for the Fast DDS profile ``profile`` (``none`` = no profile).

    Empty when ``profile`` is one of :data:`NO_PROFILE` or when ``environment`` already names a profile
    (the user's wins). Both variables are set, so the same launch file works with Fast DDS 2.x and 3.x.
    """
    if profile.strip().lower() in NO_PROFILE or any(environment.get(v) for v in DDS_PROFILE_VARIABLES):
        return {}
    return {v: profile for v in DDS_PROFILE_VARIABLES}


def _node(context):
    env = dds_profile_env(LaunchConfiguration('dds_profile').perform(context),
                          getattr(context, 'environment', os.environ))
    return [Node(
        package='vizion3d_ros',
        executable='vizion3d_node',
        name='vizion3d_node',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        emulate_tty=True,
        parameters=[LaunchConfiguration('params_file'), {
            'model': LaunchConfiguration('model'),
            'autostart': LaunchConfiguration('autostart'),
            'publish_debug_image': LaunchConfiguration('debug_image'),
        }],
        remappings=[
            ('image', LaunchConfiguration('image')),
            ('camera_info', LaunchConfiguration('camera_info')),
            ('points', LaunchConfiguration('points')),
        ],
        additional_env=env or None,
    )]


def generate_launch_description():
    share = get_package_share_directory('vizion3d_ros')
    default_params = os.path.join(share, 'config', 'vizion3d.yaml')
    default_rviz = os.path.join(share, 'config', 'vizion3d.rviz')
    default_dds_profile = os.path.join(share, 'config', 'fastdds_large_data.xml')
    args = [
        DeclareLaunchArgument('model', default_value='',
                              description='Checkpoint path or URL; empty = the vizion3D default yolo26l-seg.pt'),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='YAML file with vizion3d_node parameters'),
        DeclareLaunchArgument('image', default_value='/camera/color/image_raw', description='Colour image topic'),
        DeclareLaunchArgument('camera_info', default_value='/camera/color/camera_info',
                              description='CameraInfo topic of the colour image'),
        DeclareLaunchArgument('points', default_value='/camera/depth_registered/points',
                              description='PointCloud2 topic (in the camera optical frame)'),
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of the node and outputs'),
        DeclareLaunchArgument('rviz', default_value='false', description='Start RViz with config/vizion3d.rviz'),
        DeclareLaunchArgument('rviz_config', default_value=default_rviz, description='RViz config file'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='Configure and activate the (lifecycle) node at startup'),
        DeclareLaunchArgument('debug_image', default_value=LaunchConfiguration('rviz'),
                              description='Publish debug_image (masks drawn on the image); default: same as rviz'),
        DeclareLaunchArgument('dds_profile', default_value=default_dds_profile,
                              description='Fast DDS profile for the node (large clouds over shared memory); '
                                          'none = no profile. Ignored when FASTDDS_DEFAULT_PROFILES_FILE (or '
                                          'FASTRTPS_DEFAULT_PROFILES_FILE) is already set'),
    ]
    node = OpaqueFunction(function=_node)
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        name='rviz2',
        arguments=['-d', LaunchConfiguration('rviz_config')],
        condition=IfCondition(LaunchConfiguration('rviz')),
        output='screen',
    )
    return LaunchDescription(args + [node, rviz])
