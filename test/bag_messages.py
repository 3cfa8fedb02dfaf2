"""rosbag2 messages and bags written with rosbags' own writer, for the tests that read bags.

Builders of the sensor_msgs / tf2_msgs messages a camera driver records (stamps in nanoseconds), and
:func:`write_bag` for both storage formats. Not fakes: the same types and CDR bytes a ROS recorder writes.
"""
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from vizion3d_ros.core.io.rgbd import depth_to_points_optical

TS = get_typestore(Stores.ROS2_KILTED)
T = TS.types
NS = 1_000_000_000


def header(stamp: int, frame: str):
    return T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=stamp // NS, nanosec=stamp % NS),
                                    frame_id=frame)


def image_msg(stamp, frame, array, encoding, pad=0, bigendian=False):
    h, w = array.shape[:2]
    a = np.ascontiguousarray(array.reshape(h, w, -1), array.dtype.newbyteorder('>' if bigendian else '<'))
    row = a[0].nbytes
    buf = np.full((h, row + pad), 0xAB, np.uint8)  # padding bytes that must not be read
    buf[:, :row] = a.view(np.uint8).reshape(h, row)
    return T['sensor_msgs/msg/Image'](header=header(stamp, frame), height=h, width=w, encoding=encoding,
                                      is_bigendian=int(bigendian), step=row + pad, data=buf.reshape(-1))


def cloud_msg(stamp, frame, depth, cam, pad=0):
    """An organised cloud: x, y, z float32 and a packed rgb float, 16 bytes a point, ``pad`` bytes a row."""
    h, w = depth.shape
    pts = np.zeros((h, w, 4), np.float32)
    pts[..., :3] = depth_to_points_optical(depth, cam).reshape(h, w, 3)
    row = w * 16
    buf = np.zeros((h, row + pad), np.uint8)
    buf[:, :row] = pts.view(np.uint8).reshape(h, row)
    field = T['sensor_msgs/msg/PointField']
    fields = [field(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate(('x', 'y', 'z', 'rgb'))]
    return T['sensor_msgs/msg/PointCloud2'](header=header(stamp, frame), height=h, width=w, fields=fields,
                                            is_bigendian=False, point_step=16, row_step=row + pad,
                                            data=buf.reshape(-1), is_dense=False)


def info_msg(stamp, frame, cam, distortion=0.0):
    roi = T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    p = np.hstack([cam.matrix(), np.zeros((3, 1))]).reshape(-1)
    return T['sensor_msgs/msg/CameraInfo'](header=header(stamp, frame), height=cam.height, width=cam.width,
                                           distortion_model='plumb_bob', d=np.array([distortion, 0, 0, 0, 0.0]),
                                           k=cam.matrix().reshape(-1), r=np.eye(3).reshape(-1), p=p, binning_x=0,
                                           binning_y=0, roi=roi)


def tf_msg(stamp, links):
    out = []
    for parent, child, m in links:
        q = Rotation.from_matrix(m[:3, :3]).as_quat()
        tr = T['geometry_msgs/msg/Transform'](translation=T['geometry_msgs/msg/Vector3'](x=m[0, 3], y=m[1, 3],
                                                                                       z=m[2, 3]),
                                              rotation=T['geometry_msgs/msg/Quaternion'](x=q[0], y=q[1], z=q[2],
                                                                                         w=q[3]))
        out.append(T['geometry_msgs/msg/TransformStamped'](header=header(stamp, parent), child_frame_id=child,
                                                           transform=tr))
    return T['tf2_msgs/msg/TFMessage'](transforms=out)


def write_bag(path, msgs, storage=StoragePlugin.MCAP, raw=None):
    """Write ``msgs`` as a bag at ``path``; ``raw`` maps an index into ``msgs`` to the bytes written instead."""
    raw = raw or {}
    with Writer(path, version=9, storage_plugin=storage) as writer:
        conns = {}
        for k in sorted(range(len(msgs)), key=lambda k: msgs[k][2]):
            topic, msgtype, t, msg = msgs[k]
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=TS)
            writer.write(conns[topic], t, raw.get(k, TS.serialize_cdr(msg, msgtype)))
    return path
