"""The live map's interfaces (msg/MapObject3D*.msg, srv/*Map.srv): generated, and carried over the wire.

The node that publishes and serves them (issue 14) comes next; these check the definitions it will fill.
"""
from __future__ import annotations

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Vector3
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header

from vizion3d_ros.msg import MapObject3D, MapObject3DArray
from vizion3d_ros.srv import ClearMap, LoadMap, SaveMap


def _plain(value):
    """A message as nested dicts and lists (uint32[] come back as array('I'), which == a list does not)."""
    if hasattr(value, 'get_fields_and_field_types'):
        return {name: _plain(getattr(value, name)) for name in value.get_fields_and_field_types()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == 'array':
        return [_plain(v) for v in value]
    return value


def test_map_objects_round_trip_with_states_merges_and_stamps():
    chair = MapObject3D(id=7, class_id=56, label='chair', confidence=0.75, state=MapObject3D.STATE_CONFIRMED,
                        centroid=Point(x=1.0, y=2.0, z=0.4), bbox_3d_size=Vector3(x=0.5, y=0.5, z=0.9),
                        point_count=12000, first_seen=Time(sec=10), last_seen=Time(sec=42, nanosec=5),
                        frames_seen=31, merged_ids=[9, 12])
    ghost = MapObject3D(id=8, state=MapObject3D.STATE_MISSING)
    msg = MapObject3DArray(header=Header(frame_id='map', stamp=Time(sec=42, nanosec=5)), objects=[chair, ghost],
                           merged_from=[12], merged_into=[7], frames_integrated=300, map_voxels=1_000_000)
    back = deserialize_message(serialize_message(msg), MapObject3DArray)
    assert _plain(back) == _plain(msg)  # (bytes cannot be compared: CDR's padding is not initialised)
    assert back.header.frame_id == 'map' and back.objects[0].label == 'chair' and back.map_voxels == 1_000_000
    assert back.objects[0].last_seen.nanosec == 5 and back.objects[0].centroid.y == 2.0
    assert [o.state for o in back.objects] == [MapObject3D.STATE_CONFIRMED, MapObject3D.STATE_MISSING]
    assert (MapObject3D.STATE_TENTATIVE, MapObject3D.STATE_CONFIRMED, MapObject3D.STATE_MISSING) == (0, 1, 2)
    assert list(back.objects[0].merged_ids) == [9, 12] and list(back.merged_into) == [7]


def test_map_services_carry_paths_files_and_counts():
    for srv, request, response in (
            (SaveMap, SaveMap.Request(path='/tmp/m'), SaveMap.Response(success=True, files=['map.ply', 'map.glb'])),
            (LoadMap, LoadMap.Request(path='/tmp/m'), LoadMap.Response(success=True, map_voxels=5, objects=2)),
            (ClearMap, ClearMap.Request(), ClearMap.Response(success=True, voxels_cleared=5, objects_cleared=2))):
        for m, kind in ((request, srv.Request), (response, srv.Response)):
            assert _plain(deserialize_message(serialize_message(m), kind)) == _plain(m)
    assert list(deserialize_message(serialize_message(SaveMap.Response(files=['a', 'b'])), SaveMap.Response).files) \
        == ['a', 'b']
