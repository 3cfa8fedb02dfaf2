"""Camera models and frames.

Pinhole intrinsics and projection, intrinsics from what a user has, the ROS optical / OpenGL
conventions, rigid transforms and poses interpolated at a stamp.
"""
