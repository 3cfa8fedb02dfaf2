"""Launch the live 3D map: vizion3d_node (per-frame objects) and vizion3d_map_node (the map), optionally RViz.

Usage:
  ros2 launch vizion3d_ros vizion3d_map.launch.py model:=/path/to/yolov8n-seg.pt \
      image:=/camera/color/image_raw camera_info:=/camera/color/camera_info \
      points:=/camera/depth_registered/points world_frame:=odom rviz:=true

The map node fuses vizion3d_node's ``objects`` with the cloud they were lifted onto (``points``, the same
topic vizion3d_node reads), placed by TF in ``world_frame``. Every argument of vizion3d.launch.py applies
to vizion3d_node; the map node's other parameters go in ``map_params_file`` (config/vizion3d_map.yaml).
RViz shows the map coloured by instance (config/vizion3d_map.rviz).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory('vizion3d_ros')
    names = ('model', 'params_file', 'image', 'camera_info', 'points', 'namespace', 'autostart', 'dds_profile')
    args = [
        DeclareLaunchArgument('model', default_value='', description='Checkpoint path or URL (vizion3d_node)'),
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, 'config', 'vizion3d.yaml'),
                              description='YAML file with vizion3d_node parameters'),
        DeclareLaunchArgument('map_params_file', default_value=os.path.join(share, 'config', 'vizion3d_map.yaml'),
                              description='YAML file with vizion3d_map_node parameters'),
        DeclareLaunchArgument('image', default_value='/camera/color/image_raw', description='Colour image topic'),
        DeclareLaunchArgument('camera_info', default_value='/camera/color/camera_info',
                              description='CameraInfo topic of the colour image'),
        DeclareLaunchArgument('points', default_value='/camera/depth_registered/points',
                              description='PointCloud2 topic (vizion3d_node input and the map node\'s cloud)'),
        DeclareLaunchArgument('world_frame', default_value='odom', description='Frame of the map'),
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of both nodes'),
        DeclareLaunchArgument('autostart', default_value='true', description='Activate vizion3d_node at startup'),
        DeclareLaunchArgument('dds_profile', default_value=os.path.join(share, 'config', 'fastdds_large_data.xml'),
                              description='Fast DDS profile of vizion3d_node; none = no profile'),
        DeclareLaunchArgument('rviz', default_value='false', description='Start RViz with config/vizion3d_map.rviz'),
    ]
    detector = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'vizion3d.launch.py')),
        launch_arguments={n: LaunchConfiguration(n) for n in names}.items())
    mapper = Node(
        package='vizion3d_ros',
        executable='vizion3d_map_node',
        name='vizion3d_map_node',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        emulate_tty=True,
        parameters=[LaunchConfiguration('map_params_file'), {'world_frame': LaunchConfiguration('world_frame')}],
        remappings=[('points', LaunchConfiguration('points'))],
    )
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        name='rviz2',
        arguments=['-d', os.path.join(share, 'config', 'vizion3d_map.rviz')],
        condition=IfCondition(LaunchConfiguration('rviz')),
        output='screen',
    )
    return LaunchDescription(args + [detector, mapper, rviz])
