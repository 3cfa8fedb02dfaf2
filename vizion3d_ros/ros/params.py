"""The node's parameters: declared once with descriptions, read into one typed settings object."""
from __future__ import annotations

from dataclasses import dataclass, fields

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from ..core.lifting import LIFT_MODES

INPUT_RELIABILITY = ('best_effort', 'reliable')


@dataclass
class NodeSettings:
    """Everything the node reads from its parameters (defaults = the declared defaults)."""

    model: str = ''
    device: str = 'auto'
    imgsz: int = 640
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    classes: str = ''
    cpu_threads: int = 0
    lift_mode: str = 'visible'
    edge_band: int = 5
    min_points: int = 1
    sync_slop: float = 0.05
    sync_queue_size: int = 10
    input_reliability: str = 'best_effort'
    publish_annotated_cloud: bool = True
    publish_object_clouds: bool = False
    require_same_frame: bool = True
    warmup: bool = True


_DESCRIPTIONS: dict[str, tuple[str, object | None]] = {
    'model': ('Segmentation checkpoint: local path or http(s) URL (downloaded once to '
              '$VIZION3D_MODEL_CACHE or ~/.cache/vizion3d/models). Empty = the vizion3D default '
              '(yolo26l-seg.pt).', None),
    'device': ("Inference device: 'auto' (cuda > mps > cpu), 'cpu', 'cuda:0', 'mps'.", None),
    'imgsz': ('Inference image size in pixels (longest side, multiple of 32).', IntegerRange(
        from_value=32, to_value=4096, step=32)),
    'conf_threshold': ('Minimum detection confidence.', FloatingPointRange(from_value=0.0, to_value=1.0)),
    'iou_threshold': ('IoU threshold of non-maximum suppression.', FloatingPointRange(
        from_value=0.0, to_value=1.0)),
    'classes': ("Comma-separated class names or ids to keep, e.g. 'chair,cup' or '56,41'. "
                'Empty = all classes.', None),
    'cpu_threads': ('Torch CPU threads for inference; 0 = all cores.', IntegerRange(
        from_value=0, to_value=256, step=1)),
    'lift_mode': ("How masks become point sets: 'visible' (occlusion-aware: only points on the surface the "
                  'camera sees, or linked in 3D to it; mask spill across depth jumps and creases trimmed; '
                  "each point in at most one object), 'exclusive' (every point projecting into a mask, the "
                  "most confident mask wins) or 'naive' (every point projecting into a mask; objects may "
                  'share points).', None),
    'edge_band': ('visible mode: width (pixels) of the mask border checked for spill onto the background; '
                  '0 skips that check (about 2.5x faster lifting, looser borders).', IntegerRange(
                      from_value=0, to_value=50, step=1)),
    'min_points': ('Objects with fewer 3D points are not published.', IntegerRange(
        from_value=0, to_value=1_000_000, step=1)),
    'sync_slop': ('Largest stamp difference (seconds) between image, camera_info and cloud of one frame.',
                  FloatingPointRange(from_value=0.0, to_value=10.0)),
    'sync_queue_size': ('Messages kept per input while waiting for a match.', IntegerRange(
        from_value=1, to_value=1000, step=1)),
    'input_reliability': ("QoS reliability of the three input subscriptions: 'best_effort' (sensor data "
                          "QoS, matches every publisher) or 'reliable' (only matches reliable publishers, "
                          'but multi-megabyte clouds survive lossy transports).', None),
    'publish_annotated_cloud': ('Publish annotated_points (the input cloud recoloured by object).', None),
    'publish_object_clouds': ('Fill ObjectMask3D.object_cloud with each object\'s points.', None),
    'require_same_frame': ('Reject clouds whose frame_id differs from the image\'s (no TF yet).', None),
    'warmup': ('Run one inference on a blank image after loading the model.', None),
}


def declare_parameters(node) -> None:
    """Declare every parameter of :class:`NodeSettings` on ``node`` with its description and range."""
    defaults = NodeSettings()
    for f in fields(NodeSettings):
        text, rng = _DESCRIPTIONS[f.name]
        desc = ParameterDescriptor(name=f.name, description=text)
        if isinstance(rng, IntegerRange):
            desc.integer_range = [rng]
        elif isinstance(rng, FloatingPointRange):
            desc.floating_point_range = [rng]
        node.declare_parameter(f.name, getattr(defaults, f.name), desc)


def read_settings(node) -> NodeSettings:
    """Current parameter values as a :class:`NodeSettings`, validated."""
    values = {f.name: node.get_parameter(f.name).value for f in fields(NodeSettings)}
    settings = NodeSettings(**values)
    if settings.input_reliability not in INPUT_RELIABILITY:
        raise ValueError(f'input_reliability must be one of {INPUT_RELIABILITY}, got {settings.input_reliability!r}')
    if settings.lift_mode not in LIFT_MODES:
        raise ValueError(f'lift_mode must be one of {LIFT_MODES}, got {settings.lift_mode!r}')
    return settings

