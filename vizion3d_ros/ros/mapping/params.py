"""vizion3d_map_node's parameters: one spec per parameter, validated by the shared :class:`ParamTable`."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...core.camera.transforms import parse_extrinsic
from ..params import CONFIGURE, FRAME, INPUT_RELIABILITY, STARTUP, ParamSpec, ParamTable

POSE_SOURCES = ('auto', 'tf', 'topic')


@dataclass
class MapSettings:
    """Everything the map node reads from its parameters (defaults = the declared defaults)."""

    autostart: bool = True
    world_frame: str = 'odom'
    pose_source: str = 'auto'
    cloud_to_pose: str | Sequence[float] = ''
    pose_history: float = 10.0
    pose_max_gap: float = 0.5
    tf_timeout: float = 0.5
    voxel_size: float = 0.02
    max_voxels: int = 2_000_000
    map_radius: float = 0.0
    integration_stride: int = 1
    confirm_frames: int = 2
    forget_tentative_after: int = 30
    consolidate_every: int = 10
    dynamic_classes: str = 'person'
    dynamic_lifetime: float = 1.0
    dynamic_match_distance: float = 0.5
    pair_queue_size: int = 10
    input_reliability: str = 'auto'
    map_publish_period: float = 1.0
    diagnostics_period: float = 1.0


MAP_SPECS: dict[str, ParamSpec] = {
    'autostart': ParamSpec('Configure and activate at startup, so a plain `vizion3d_map_node` just runs; false = '
                           'wait for lifecycle transitions (ChangeState).', STARTUP, read_only=True),
    'world_frame': ParamSpec('Fixed frame the map is kept and published in (`odom`, `map`, ...): every frame is '
                             'placed in it by its pose at the frame\'s stamp.', CONFIGURE),
    'pose_source': ParamSpec(
        "Where a frame's pose world_frame <- cloud frame comes from: 'tf' (tf2_ros, looked up at the frame's "
        "stamp, waiting up to tf_timeout without blocking), 'topic' (the `pose` (geometry_msgs/PoseStamped) "
        'or `odom` (nav_msgs/Odometry) topic, interpolated to the stamp) or \'auto\' (tf where tf2_ros is '
        'installed, else topic).', CONFIGURE, choices=POSE_SOURCES),
    'cloud_to_pose': ParamSpec(
        'pose_source topic: the transform taking cloud-frame points into the frame the pose topic describes '
        '(the Odometry child frame, e.g. base_link), as 7 numbers "x y z qx qy qz qw" or 16 (row-major 4x4). '
        'Empty = identity (the pose is the cloud frame\'s own).', CONFIGURE, dynamic_typing=True),
    'pose_history': ParamSpec('pose_source topic: seconds of poses kept for interpolation.', CONFIGURE,
                              bounds=(0.1, 3600.0)),
    'pose_max_gap': ParamSpec('pose_source topic: a frame between two poses further apart than this (seconds) '
                              'is dropped (no_pose) instead of interpolated across the dropout.', FRAME,
                              bounds=(0.001, 60.0)),
    'tf_timeout': ParamSpec("Seconds a frame waits for its pose (TF or the pose topic) to arrive; then it is "
                            "dropped (no_transform / no_pose).", FRAME, bounds=(0.0, 10.0)),
    'voxel_size': ParamSpec('Edge of a map voxel in metres. Not much smaller than a pixel\'s footprint at the '
                            'objects\' distance, or the same object in two views shares too few voxels to keep '
                            'one id.', CONFIGURE, bounds=(0.001, 1.0)),
    'max_voxels': ParamSpec('Voxels the map may hold (72 bytes each plus the hash table); points that would '
                            'open a voxel beyond it are not integrated. 0 = unbounded.', CONFIGURE,
                            bounds=(0, 1_000_000_000)),
    'map_radius': ParamSpec('Voxels farther than this (metres) from the camera are dropped (checked every 5 frames), '
                            'bounding the map around the robot. 0 = keep everything.', FRAME,
                            bounds=(0.0, 100_000.0)),
    'integration_stride': ParamSpec(
        'Every how many rows and columns of an organised cloud are integrated: 1 = every point (default); N = '
        'every N-th (about N*N times less integration work, and fewer voxels: at 2 on a VGA room 4 m deep, 79 % '
        'of the voxels and 1.8x faster); 0 = auto, as sparse as still puts two points along each voxel edge, '
        'from the cloud\'s own point spacing. Unorganised clouds: every point.', FRAME, bounds=(0, 16)),
    'confirm_frames': ParamSpec('Frames an object must be matched in before it is confirmed.', CONFIGURE,
                                bounds=(1, 1000)),
    'forget_tentative_after': ParamSpec(
        'A tentative object not matched again within this many frames is removed (a spurious detection), so '
        'ids do not pile up on a long run. 0 = never.', FRAME, bounds=(0, 1_000_000)),
    'consolidate_every': ParamSpec('Frames between passes that merge objects found to be one (merges are '
                                   'reported in map_objects). 0 = never.', FRAME, bounds=(0, 1_000_000)),
    'dynamic_classes': ParamSpec(
        "Comma-separated class labels (or ids) that move: their points are kept out of the map and they are "
        "reported in map_objects as short-lived tracks (STATE_DYNAMIC). Empty = none.", FRAME),
    'dynamic_lifetime': ParamSpec('Seconds a dynamic track lives after its last detection.', FRAME,
                                  bounds=(0.0, 3600.0)),
    'dynamic_match_distance': ParamSpec('Largest centroid move (metres) between two detections of one dynamic '
                                        'track.', FRAME, bounds=(0.0, 100.0)),
    'pair_queue_size': ParamSpec('Objects messages (and clouds) kept per input while waiting for their partner '
                                 'with the same stamp.', CONFIGURE, bounds=(1, 1000)),
    'input_reliability': ParamSpec("QoS reliability of the objects and points subscriptions, as vizion3d_node's "
                                   'input_reliability.', CONFIGURE, choices=INPUT_RELIABILITY),
    'map_publish_period': ParamSpec('Seconds between map_points clouds (only while somebody subscribes).',
                                    CONFIGURE, bounds=(0.05, 3600.0)),
    'diagnostics_period': ParamSpec('Seconds between map status reports on /diagnostics.', CONFIGURE,
                                    bounds=(0.1, 60.0)),
}


def _special(name: str, value: Any) -> str | None:
    if name == 'cloud_to_pose':
        try:
            parse_extrinsic(value)
        except ValueError as exc:
            return f'cloud_to_pose: {exc}'
    if name == 'world_frame' and not str(value).strip('/ '):
        return 'world_frame must name a frame, got an empty string'
    return None


MAP_PARAMS = ParamTable(MAP_SPECS, MapSettings, _special)
#: Parameters a failed configuration may be waiting for (all but the startup-only ones).
USED_BY_CONFIGURE = frozenset(n for n, s in MAP_SPECS.items() if s.applies != STARTUP)
