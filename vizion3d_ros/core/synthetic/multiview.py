"""A room seen from many posed cameras, with exact per-pixel object ids and imperfect per-frame masks.

The test bed of multi-view fusion: every pixel of every view knows which object it shows, so a fused
map can be scored point by point, and the masks handed to the fusion can be made as bad as a real
detector's (grown or shrunk borders, missed detections, spurious masks, wrong classes) while the truth
stays known. Instance numbering is per frame and random, as a detector's is.

World frame: the ray-cast frame of :mod:`.scenes` (Y up; floor at ``y = -1``). Camera poses are
camera-to-world in the ROS *optical* convention (X right, Y down, Z forward), as a posed RGB-D folder's
``trajectory.log`` holds them, and depth is along the optical Z axis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..camera.pinhole import PinholeIntrinsics
from .scenes import FLOOR_Y, SMALL_CAMERA, Box, Plane, Scene, Sphere, look_at, raycast

#: (COCO class id, label, kind, size range in metres) of the objects a room is furnished with.
FURNITURE = (
    (56, 'chair', 'box', (0.40, 0.55)),
    (57, 'couch', 'box', (0.70, 1.00)),
    (58, 'potted plant', 'sphere', (0.30, 0.45)),
    (60, 'dining table', 'box', (0.60, 0.90)),
    (62, 'tv', 'box', (0.45, 0.65)),
    (32, 'sports ball', 'sphere', (0.20, 0.30)),
    (74, 'clock', 'sphere', (0.20, 0.30)),
    (73, 'book', 'box', (0.20, 0.30)),
)
#: Optical (X right, Y down, Z forward) from OpenGL (X right, Y up, Z backward) camera axes.
_GL_TO_OPTICAL = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class MultiViewScene:
    """Objects (id k + 1 = ``scene.objects[k]``) with their classes, and the room they stand in."""

    scene: Scene
    class_ids: np.ndarray  # (K,) int COCO ids
    labels: list[str]
    colors: np.ndarray  # (K + 1, 3) uint8: background (row 0) and each object's colour
    room_half: tuple[float, float]  # half extents (x, z) of the room's floor


@dataclass
class View:
    """What one posed camera sees: depth (optical Z, metres, NaN = nothing), ids (-1 nothing, 0 background)."""

    pose: np.ndarray  # (4, 4) camera (optical) -> world
    camera: PinholeIntrinsics
    depth: np.ndarray  # (H, W) float32
    ids: np.ndarray  # (H, W) int32
    color: np.ndarray  # (H, W, 3) uint8


@dataclass
class FrameMasks:
    """One frame's detections as a detector would give them: a label image and its values' meaning.

    ``labels`` holds 0 (none) or a per-frame instance value; ``meta[value]`` its class id, label and
    confidence; ``truth[value]`` the object id it was made from (0: a spurious mask).
    """

    labels: np.ndarray  # (H, W) uint16
    meta: dict[int, dict] = field(default_factory=dict)
    truth: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MaskErrors:
    """How a frame's masks differ from the truth (all zero: exact masks)."""

    grow: int = 0  # pixels added (> 0) or removed (< 0) around each mask
    miss: float = 0.0  # probability that a visible object is not detected in a frame
    spurious: float = 0.0  # expected number of spurious masks per frame
    wrong_class: float = 0.0  # probability that a detection has another class
    min_pixels: int = 30  # objects showing fewer pixels are not detected


#: Every visible object detected with its exact mask and class.
EXACT_MASKS = MaskErrors()


def furnished_room(rng: np.random.Generator, num_objects: int = 6, half_x: float = 2.5,
                   half_z: float = 2.5, max_tries: int = 500) -> MultiViewScene:
    """A room (floor and four walls) with ``num_objects`` objects of :data:`FURNITURE` classes on the floor.

    Objects keep 0.5 m from the walls and never touch each other (disjoint floor footprints with a
    10 cm gap); each class is used at most twice.
    """
    objects: list[Box | Sphere] = []
    class_ids: list[int] = []
    labels: list[str] = []
    uses: dict[int, int] = {}
    tries = 0
    while len(objects) < num_objects:
        tries += 1
        if tries > max_tries:
            raise RuntimeError(f'could not place {num_objects} objects in {max_tries} tries')
        cls, label, kind, (lo, hi) = FURNITURE[rng.integers(len(FURNITURE))]
        if uses.get(cls, 0) >= 2:
            continue
        size = rng.uniform(lo, hi)
        x = rng.uniform(-half_x + 0.5 + size / 2, half_x - 0.5 - size / 2)
        z = rng.uniform(-half_z + 0.5 + size / 2, half_z - 0.5 - size / 2)
        if kind == 'sphere':
            obj: Box | Sphere = Sphere((x, FLOOR_Y + size / 2, z), size / 2)
        else:
            dims = (size, size * rng.uniform(0.6, 1.2), size * rng.uniform(0.6, 1.0))
            obj = Box((x, FLOOR_Y + dims[1] / 2, z), dims, float(rng.uniform(0, math.pi)))
        if any(math.hypot(x - o.center[0], z - o.center[2]) < obj.footprint_radius() + o.footprint_radius() + 0.1
               for o in objects):
            continue
        objects.append(obj)
        class_ids.append(cls)
        labels.append(label)
        uses[cls] = uses.get(cls, 0) + 1
    walls = [Plane((0.0, FLOOR_Y, 0.0), (0.0, 1.0, 0.0)),
             Plane((half_x, 0.0, 0.0), (1.0, 0.0, 0.0)), Plane((-half_x, 0.0, 0.0), (1.0, 0.0, 0.0)),
             Plane((0.0, 0.0, half_z), (0.0, 0.0, 1.0)), Plane((0.0, 0.0, -half_z), (0.0, 0.0, 1.0))]
    colors = np.vstack([[150, 150, 150], rng.integers(40, 256, (len(objects), 3))]).astype(np.uint8)
    return MultiViewScene(Scene(objects, walls), np.array(class_ids, np.int64), labels, colors, (half_x, half_z))


def orbit_poses(room: MultiViewScene, num_views: int = 20, height: float = 0.4,
                rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Camera-to-world (optical) poses on a loop inside the room, each looking across it.

    The cameras walk a circle at 70 % of the room's half size, ``1 + height`` m above the floor, each
    looking at a point just past the room's centre near the floor (so a view sees the middle of the room
    and the objects in front of the far walls); ``rng`` jitters positions and targets by a few centimetres.
    """
    hx, hz = room.room_half
    out = []
    for i in range(num_views):
        a = 2 * math.pi * i / num_views
        eye = np.array([0.7 * hx * math.cos(a), FLOOR_Y + 1.0 + height, 0.7 * hz * math.sin(a)])
        target = np.array([-0.2 * hx * math.cos(a + 0.3), FLOOR_Y + 0.2, -0.2 * hz * math.sin(a + 0.3)])
        if rng is not None:
            eye = eye + rng.normal(0, 0.03, 3)
            target = target + rng.normal(0, 0.05, 3)
        out.append(look_at(eye, target) @ _GL_TO_OPTICAL)
    return out


def render_view(room: MultiViewScene, pose: np.ndarray, cam: PinholeIntrinsics = SMALL_CAMERA,
                noise_std: float = 0.0, rng: np.random.Generator | None = None) -> View:
    """Ray-cast the room from ``pose``: depth along the optical axis, exact ids and a shaded colour image.

    ``noise_std > 0`` adds Kinect-like noise to the depth (std ``noise_std * z**2``); ids stay exact.
    """
    u = (np.arange(cam.width, dtype=np.float64) - cam.cx) / cam.fx
    v = (np.arange(cam.height, dtype=np.float64) - cam.cy) / cam.fy
    d = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), axis=-1).reshape(-1, 3)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    t, ids = raycast(room.scene, pose[:3, 3], d @ pose[:3, :3].T)
    with np.errstate(invalid='ignore'):
        z = np.where(np.isfinite(t), t * d[:, 2], np.nan)
    if noise_std > 0:
        rng = rng or np.random.default_rng()
        z = z * (1.0 + rng.standard_normal(z.shape) * noise_std * np.nan_to_num(z))
    # colour: the object's own, darker with distance (a shading cue that differs between objects)
    shade = np.clip(1.2 - 0.12 * np.nan_to_num(z, nan=10.0), 0.3, 1.0)
    color = (room.colors[np.maximum(ids, 0)] * shade[:, None]).astype(np.uint8)
    color[ids < 0] = 0
    shape = (cam.height, cam.width)
    return View(pose=np.asarray(pose, np.float64), camera=cam, depth=z.astype(np.float32).reshape(shape),
                ids=ids.reshape(shape), color=color.reshape(*shape, 3))


def frame_masks(room: MultiViewScene, view: View, rng: np.random.Generator,
                errors: MaskErrors = EXACT_MASKS) -> FrameMasks:
    """The frame's detections made from its exact ids, spoiled as ``errors`` says, numbered at random."""
    import cv2

    ids = view.ids
    h, w = ids.shape
    counts = np.bincount(ids[ids > 0].ravel(), minlength=room.scene.num_objects + 1)
    seen = [k for k in range(1, len(counts)) if counts[k] >= errors.min_pixels and rng.random() >= errors.miss]
    masks: list[tuple[np.ndarray, int, int]] = []  # (mask, class id, true id)
    for k in seen:
        m = (ids == k).astype(np.uint8)
        if errors.grow:
            r = abs(errors.grow)
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            m = cv2.dilate(m, kernel) if errors.grow > 0 else cv2.erode(m, kernel)
        if not m.any():
            continue
        cls = int(room.class_ids[k - 1])
        if rng.random() < errors.wrong_class:
            cls = int(rng.choice([c for c, *_ in FURNITURE if c != cls]))
        masks.append((m.astype(bool), cls, k))
    for _ in range(rng.poisson(errors.spurious) if errors.spurious > 0 else 0):
        blob = np.zeros((h, w), np.uint8)
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(w // 20, w // 6)), int(rng.integers(h // 20, h // 6)))
        cv2.ellipse(blob, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        masks.append((blob.astype(bool), int(FURNITURE[rng.integers(len(FURNITURE))][0]), 0))
    values = rng.permutation(np.arange(1, len(masks) + 1))
    out = FrameMasks(labels=np.zeros((h, w), np.uint16))
    names = {c: name for c, name, *_ in FURNITURE}
    # spurious masks are painted first: where they overlap an object's mask, the object's detection shows
    order = sorted(range(len(masks)), key=lambda i: masks[i][2] != 0)
    for i in order:
        (m, cls, truth), value = masks[i], values[i]
        out.labels[m] = value
        out.meta[int(value)] = {'class_id': cls, 'label': names.get(cls, str(cls)),
                                'confidence': float(rng.uniform(0.5, 0.95))}
        out.truth[int(value)] = truth
    # a later mask may cover an earlier one entirely: only values still in the image are detections
    present = set(np.unique(out.labels).tolist()) - {0}
    out.meta = {v: m for v, m in out.meta.items() if v in present}
    out.truth = {v: t for v, t in out.truth.items() if v in present}
    return out
