"""pip-installable pure core of vizion3d_ros (no ROS needed): `pip install .`.

The ROS 2 package itself is built by colcon through CMakeLists.txt (ament_cmake, because it also
generates the message interfaces); this file serves Python-only users of the library and tools.
"""
from setuptools import setup

setup()
