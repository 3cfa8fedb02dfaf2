"""The node's parameters: one table of specs, one typed settings object, one validation function.

Everything about a parameter lives here: its default (:class:`NodeSettings`), its description, range
or choices, and *when* a change takes effect (``applies``). The node declares the parameters from this
table (:func:`declare_parameters`), validates every change with :func:`check_values` (pure Python, so
it is unit-tested without spinning anything) and reads them into a :class:`NodeSettings`.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from ..core.camera.transforms import parse_extrinsic
from ..core.lifting.lift import LIFT_MODES
from ..core.segmentation.base import parse_class_filter

INPUT_RELIABILITY = ('auto', 'best_effort', 'reliable')
INTRINSICS_SOURCES = ('auto', 'K', 'P')

#: When a changed value is used (appended to each description, and used to decide what a change needs).
NOW, FRAME, ACTIVATE, CONFIGURE, STARTUP = 'now', 'frame', 'activate', 'configure', 'startup'
_APPLIES_TEXT = {
    NOW: 'Changes apply at once.',
    FRAME: 'Changes apply to the next frame.',
    ACTIVATE: 'Changes take effect at the next activation (deactivate + activate).',
    CONFIGURE: 'Changes take effect at the next configure (deactivate, cleanup, configure, activate).',
    STARTUP: 'Read at startup only.',
}
_DEVICE = re.compile(r'^(auto|cpu|mps|cuda(:\d+)?|\d+(,\d+)*)$')


@dataclass
class NodeSettings:
    """Everything the node reads from its parameters (defaults = the declared defaults)."""

    autostart: bool = True
    model: str = ''
    device: str = 'auto'
    imgsz: int = 640
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    classes: str = ''
    cpu_threads: int = 0
    warmup: bool = True
    lift_mode: str = 'visible'
    edge_band: int = 5
    min_points: int = 1
    sync_slop: float = 0.05
    sync_queue_size: int = 10
    input_reliability: str = 'auto'
    cloud_to_camera: str | Sequence[float] = ''
    tf_timeout: float = 0.1
    intrinsics_source: str = 'auto'
    max_frame_age: float = 0.0
    publish_annotated_cloud: bool = True
    publish_object_clouds: bool = False
    publish_debug_image: bool = False
    marker_lifetime: float = 1.0
    diagnostics_period: float = 1.0


@dataclass(frozen=True)
class ParamSpec:
    """How one parameter is described, bounded and applied."""

    description: str
    applies: str
    #: Inclusive numeric bounds (and the integer step), enforced by rclpy and by :func:`check_values`.
    bounds: tuple[float, float] | None = None
    step: int = 1
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    #: Accepts several types (``cloud_to_camera``: a string or a list of numbers).
    dynamic_typing: bool = False


SPECS: dict[str, ParamSpec] = {
    'autostart': ParamSpec(
        'Configure and activate at startup, so a plain `vizion3d_node` just runs. While such an automatic '
        'start has failed (e.g. missing model), setting a parameter that the failed transition uses '
        '(e.g. `model`) retries it. false = wait for lifecycle transitions (ChangeState).', STARTUP,
        read_only=True),
    'model': ParamSpec(
        'Segmentation checkpoint: local path or http(s) URL (downloaded once to $VIZION3D_MODEL_CACHE or '
        '~/.cache/vizion3d/models). Empty = the vizion3D default (yolo26l-seg.pt). Loaded on activate.',
        ACTIVATE),
    'device': ParamSpec("Inference device: 'auto' (cuda > mps > cpu), 'cpu', 'cuda', 'cuda:N', 'mps' or "
                        "a CUDA index such as '0'.", ACTIVATE),
    'imgsz': ParamSpec('Inference image size in pixels (longest side, multiple of 32).', ACTIVATE,
                       bounds=(32, 4096), step=32),
    'conf_threshold': ParamSpec('Minimum detection confidence.', FRAME, bounds=(0.0, 1.0)),
    'iou_threshold': ParamSpec('IoU threshold of non-maximum suppression.', FRAME, bounds=(0.0, 1.0)),
    'classes': ParamSpec("Comma-separated class names or ids to keep, e.g. 'chair,cup' or '56,41'. Empty = "
                         "all classes. Names are checked against the loaded model's classes.", FRAME),
    'cpu_threads': ParamSpec('Torch CPU threads for inference; 0 = all cores.', ACTIVATE, bounds=(0, 256)),
    'warmup': ParamSpec('Run one inference on a blank image while activating, so the first real frame '
                        'is not slow.', ACTIVATE),
    'lift_mode': ParamSpec(
        "How masks become point sets: 'visible' (occlusion-aware: only points on the surface the camera "
        'sees, or linked in 3D to it; mask spill across depth jumps and creases trimmed; each point in at '
        "most one object), 'exclusive' (every point projecting into a mask, the most confident mask wins) "
        "or 'naive' (every point projecting into a mask; objects may share points).", FRAME,
        choices=LIFT_MODES),
    'edge_band': ParamSpec('visible mode: width (pixels) of the mask border checked for spill onto the '
                           'background; 0 skips that check (about 2.5x faster lifting, looser borders).',
                           FRAME, bounds=(0, 50)),
    'min_points': ParamSpec('Objects with fewer 3D points are not published.', FRAME, bounds=(0, 1_000_000)),
    'sync_slop': ParamSpec('Largest stamp difference (seconds) between image, camera_info and cloud of one '
                           'frame.', CONFIGURE, bounds=(0.0, 10.0)),
    'sync_queue_size': ParamSpec('Messages kept per input while waiting for a match.', CONFIGURE,
                                 bounds=(1, 1000)),
    'input_reliability': ParamSpec(
        "QoS reliability of the three input subscriptions: 'auto' (per input, what the discovered publishers "
        'offer: all reliable -> reliable, any best effort -> best effort; best effort until a publisher shows '
        'up; re-checked every second, switching without losing or repeating a message), \'best_effort\' '
        "(sensor-data QoS, matches every publisher, but a reliable publisher's multi-megabyte clouds rarely "
        "arrive whole) or 'reliable' (only matches reliable publishers).", ACTIVATE, choices=INPUT_RELIABILITY),
    'cloud_to_camera': ParamSpec(
        'Static extrinsic used when the cloud\'s frame_id differs from the image\'s: the transform taking '
        'cloud-frame points into the camera optical frame, as 7 numbers "x y z qx qy qz qw" (metres, unit '
        'quaternion) or 16 numbers (row-major 4x4), given as a list of doubles or a string of numbers. '
        'Overrides TF. Empty = unset (TF is looked up when tf2_ros is installed, else such frames are '
        'dropped as frame_mismatch).', FRAME, dynamic_typing=True),
    'tf_timeout': ParamSpec('Seconds to wait for the cloud->camera TF at the cloud\'s stamp (in the worker '
                            'thread, never the executor).', FRAME, bounds=(0.0, 10.0)),
    'intrinsics_source': ParamSpec(
        "Which CameraInfo matrix gives fx, fy, cx, cy: 'auto' (P when the image is rectified, i.e. P is set "
        "and the distortion is zero or empty, else K), 'K' (raw image) or 'P' (rectified image). Binning "
        'and ROI are applied to either.', FRAME, choices=INTRINSICS_SOURCES),
    'max_frame_age': ParamSpec('Frames whose stamp is older than this (seconds, against the node\'s clock) '
                               'are dropped as stale; 0 = off.', FRAME, bounds=(0.0, 3600.0)),
    'publish_annotated_cloud': ParamSpec('Publish annotated_points (the input cloud recoloured by object).',
                                         FRAME),
    'publish_object_clouds': ParamSpec('Fill ObjectMask3D.object_cloud with each object\'s points.', FRAME),
    'publish_debug_image': ParamSpec('Publish debug_image (sensor_msgs/Image rgb8): the camera image with each '
                                     'object\'s mask, box and label drawn in its annotated-cloud colour.', FRAME),
    'marker_lifetime': ParamSpec('Lifetime (seconds) of the RViz box and label markers on `markers`; 0 = until '
                                 'replaced or deleted.', FRAME, bounds=(0.0, 3600.0)),
    'diagnostics_period': ParamSpec('Seconds between pipeline status reports on /diagnostics (state, model, '
                                    'rates, drops per reason, latencies).', NOW, bounds=(0.1, 60.0)),
}

#: Parameters a failed activation (resp. configuration) may be waiting for.
USED_BY_ACTIVATE = frozenset(n for n, s in SPECS.items() if s.applies == ACTIVATE) | {'classes'}
USED_BY_CONFIGURE = frozenset(n for n, s in SPECS.items() if s.applies != STARTUP)


class SettingsError(ValueError):
    """Parameters that cannot be used; the message lists every problem."""


class ParamTable:
    """A node's parameters: their specs, the settings dataclass holding them, and the checks of both.

    One table per node (:data:`NODE_PARAMS` here, the map node's in ``mapping/params.py``), so declaring,
    describing, validating and reading parameters is written once. ``special(name, value, **context)``
    checks what a spec cannot say (a transform, a device string); it returns a problem or None.
    """

    def __init__(self, specs: Mapping[str, ParamSpec], settings_type: type,
                 special: Callable[..., str | None] | None = None) -> None:
        self.specs = specs
        self.settings_type = settings_type
        self.special = special
        self.defaults = settings_type()
        missing = {f.name for f in fields(settings_type)} ^ set(specs)
        if missing:
            raise ValueError(f'parameters without a spec or a setting: {sorted(missing)}')

    def descriptor(self, name: str) -> ParameterDescriptor:
        """The ParameterDescriptor of ``name`` (description with when it applies, range, read-only)."""
        spec = self.specs[name]
        text = spec.description
        if spec.choices:
            text += f' One of: {", ".join(spec.choices)}.'
        desc = ParameterDescriptor(name=name, description=f'{text} {_APPLIES_TEXT[spec.applies]}',
                                   read_only=spec.read_only, dynamic_typing=spec.dynamic_typing)
        if spec.bounds is not None:
            default = getattr(self.defaults, name)
            lo, hi = spec.bounds
            if isinstance(default, float):
                desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi))]
            else:
                desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=spec.step)]
        if spec.choices:
            desc.additional_constraints = f'one of: {", ".join(spec.choices)}'
        return desc

    def check_value(self, name: str, value: Any, **context: Any) -> str | None:
        """Why ``value`` is not acceptable for parameter ``name`` (None when it is)."""
        spec = self.specs.get(name)
        if spec is None:
            return None
        if spec.dynamic_typing:
            return self.special(name, value, **context) if self.special else None
        default = getattr(self.defaults, name)
        if isinstance(default, bool) != isinstance(value, bool) or not isinstance(value, type(default)):
            if not (isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)):
                return f'{name} must be a {type(default).__name__}, got {value!r}'
        if spec.bounds is not None:
            lo, hi = spec.bounds
            if isinstance(value, float) and not math.isfinite(value):
                return f'{name} must be finite, got {value!r}'
            if not lo <= value <= hi:
                return f'{name} must be in [{lo}, {hi}], got {value!r}'
            if isinstance(default, int) and spec.step > 1 and (value - lo) % spec.step:
                return f'{name} must be a multiple of {spec.step}, got {value!r}'
        if spec.choices is not None and value not in spec.choices:
            return f'{name} must be one of {", ".join(spec.choices)}; got {value!r}'
        return self.special(name, value, **context) if self.special else None

    def check_values(self, values: Mapping[str, Any], **context: Any) -> str | None:
        """The problems of a set of parameter values, joined into one reason (None when all are fine)."""
        problems = [p for name, value in values.items() if (p := self.check_value(name, value, **context))]
        return '; '.join(problems) or None

    def validate(self, settings: Any, **context: Any) -> Any:
        """Return ``settings`` if every value is acceptable, else raise :class:`SettingsError`."""
        problem = self.check_values({f.name: getattr(settings, f.name) for f in fields(settings)}, **context)
        if problem:
            raise SettingsError(problem)
        return settings

    def from_values(self, values: Mapping[str, Any]) -> Any:
        """Settings from parameter values; a value of None (NOT_SET) keeps the default."""
        known = {f.name for f in fields(self.settings_type)}
        kwargs = {k: (getattr(self.defaults, k) if v is None else _plain(v)) for k, v in values.items() if k in known}
        return self.settings_type(**kwargs)

    def declare(self, node) -> dict[str, str]:
        """Declare every parameter on ``node``; return ``{name: problem}`` for rejected startup overrides.

        rclpy raises when a ``-p``/params-file override breaks the declared range or type. Instead of
        dying at startup the parameter keeps its default and the problem is returned, so configuring fails
        with a reason and the node stays up for the user to fix it.
        """
        from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

        problems: dict[str, str] = {}
        for f in fields(self.settings_type):
            default = getattr(self.defaults, f.name)
            try:
                node.declare_parameter(f.name, default, self.descriptor(f.name))
            except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
                problems[f.name] = (f'the value given at startup was rejected ({exc}); it keeps its default '
                                    f'{default!r}')
                node.declare_parameter(f.name, default, self.descriptor(f.name), ignore_override=True)
        return problems

    def read(self, node) -> Any:
        """Current parameter values of ``node`` as settings (not validated)."""
        return self.from_values({f.name: node.get_parameter(f.name).value for f in fields(self.settings_type)})


def _node_special(name: str, value: Any, class_names: Mapping[int, str] | None = None) -> str | None:
    """vizion3d_node's checks beyond the specs; ``class_names`` (the loaded model's) lets ``classes`` be checked."""
    if name == 'cloud_to_camera':
        try:
            parse_extrinsic(value)
        except ValueError as exc:
            return f'cloud_to_camera: {exc}'
        return None
    if name == 'device' and not _DEVICE.match(value):
        return f"device must be 'auto', 'cpu', 'mps', 'cuda', 'cuda:N' or CUDA indices like '0'; got {value!r}"
    if name == 'classes' and class_names is not None:
        try:
            ids = parse_class_filter(value, dict(class_names)) or []
        except ValueError as exc:
            return f'classes: {exc}'
        bad = [i for i in ids if i not in class_names]
        if bad:
            return f'classes: the model has no class id {bad[0]} (it has {len(class_names)} classes)'
    return None


def _plain(value: Any) -> Any:
    # rclpy hands arrays over as array.array; settings hold plain lists
    return list(value) if not isinstance(value, (str, bytes, bool, int, float)) else value


#: vizion3d_node's table; the module-level functions below are its methods, kept for their callers.
NODE_PARAMS = ParamTable(SPECS, NodeSettings, _node_special)


def descriptor(name: str) -> ParameterDescriptor:
    """The ParameterDescriptor of vizion3d_node's parameter ``name``."""
    return NODE_PARAMS.descriptor(name)


def check_value(name: str, value: Any, class_names: Mapping[int, str] | None = None) -> str | None:
    """Why ``value`` is not acceptable for vizion3d_node's parameter ``name`` (None when it is)."""
    return NODE_PARAMS.check_value(name, value, class_names=class_names)


def check_values(values: Mapping[str, Any], class_names: Mapping[int, str] | None = None) -> str | None:
    """The problems of a set of vizion3d_node parameter values, joined into one reason (None when all are fine)."""
    return NODE_PARAMS.check_values(values, class_names=class_names)


def validate_settings(settings: NodeSettings, class_names: Mapping[int, str] | None = None) -> NodeSettings:
    """Return ``settings`` if every value is acceptable, else raise :class:`SettingsError`."""
    return NODE_PARAMS.validate(settings, class_names=class_names)


def settings_from_values(values: Mapping[str, Any]) -> NodeSettings:
    """A :class:`NodeSettings` from parameter values; a value of None (NOT_SET) keeps the default."""
    return NODE_PARAMS.from_values(values)


def declare_parameters(node) -> dict[str, str]:
    """Declare vizion3d_node's parameters on ``node`` (:meth:`ParamTable.declare`)."""
    return NODE_PARAMS.declare(node)


def read_settings(node) -> NodeSettings:
    """Current parameter values of ``node`` as a :class:`NodeSettings` (not validated)."""
    return NODE_PARAMS.read(node)
