"""The live 3D map (``vizion3d_map_node``): the ROS face of :mod:`vizion3d_ros.core.fusion`.

``node`` is the managed node; ``params`` its parameter table; ``pairing`` matches each objects message
with its cloud; ``poses`` places a frame in the world (TF or a pose topic); ``dynamic`` tracks the
moving classes kept out of the map; ``messages`` turns the map into ROS messages.
"""
