"""Ray-cast synthetic scenes with exact per-point object ids, for measuring 3D lifting.

A :class:`Scene` holds a few solid objects (boxes and spheres, ids ``1..K`` in list order) and
infinite background planes (floor, walls; id ``0``). Rays that hit nothing get id ``-1``.

The world frame is the OpenGL camera space of the *main* camera (X right, Y up, Z backward; the
camera sits at the origin and looks down -Z), so objects in front of it have negative ``z``.
:func:`render_camera` and :func:`camera_cloud` give what that camera sees (one ray through each pixel
centre, as :func:`~vizion3d_ros.core.io.rgbd.depth_to_points_optical` back-projects), and
:func:`sensor_cloud` gives the cloud of a second sensor (a LiDAR-like angular grid) placed anywhere,
expressed in the world frame. :func:`precision_recall` scores a lifting result against the exact ids.

Everything is vectorised over rays; only the (few) primitives are looped over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..camera.pinhole import PinholeIntrinsics, project_gl

#: A VGA Kinect-like camera (the TUM / ROS default intrinsics).
DEFAULT_CAMERA = PinholeIntrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)
#: The same field of view at half the resolution, for faster tests.
SMALL_CAMERA = PinholeIntrinsics(fx=262.5, fy=262.5, cx=159.5, cy=119.5, width=320, height=240)

#: Hits closer than this along a ray are ignored (self-intersection guard).
T_MIN = 1e-6
#: Height of the floor plane of :func:`room` / :func:`random_scene` (the camera is 1 m above it).
FLOOR_Y = -1.0


@dataclass(frozen=True)
class Box:
    """A solid box: ``size`` (x, y, z extents in metres) about ``center``, turned by ``yaw`` about +Y.

    ``yaw`` (radians) is a right-handed rotation about the world up axis: seen from above, positive
    yaw turns the box counter-clockwise (its local +X towards world -Z).
    """

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if len(self.center) != 3 or len(self.size) != 3:
            raise ValueError(f'center and size need 3 values, got {self.center} and {self.size}')
        if not all(float(s) > 0 for s in self.size):
            raise ValueError(f'box size must be positive, got {self.size}')

    def rotation(self) -> np.ndarray:
        """The 3x3 rotation taking box-local directions to world directions."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])

    def corners(self) -> np.ndarray:
        """The 8 corners in world coordinates, ``(8, 3)`` float64."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
        local = signs * (0.5 * np.asarray(self.size, np.float64))
        return local @ self.rotation().T + np.asarray(self.center, np.float64)

    def footprint_radius(self) -> float:
        """Radius of the circle (in the floor plane) that holds the box whatever its yaw."""
        return 0.5 * math.hypot(self.size[0], self.size[2])


@dataclass(frozen=True)
class Sphere:
    """A solid sphere."""

    center: tuple[float, float, float]
    radius: float

    def __post_init__(self) -> None:
        if len(self.center) != 3:
            raise ValueError(f'center needs 3 values, got {self.center}')
        if not float(self.radius) > 0:
            raise ValueError(f'sphere radius must be positive, got {self.radius}')

    def footprint_radius(self) -> float:
        """Radius of the sphere's footprint circle in the floor plane."""
        return float(self.radius)


@dataclass(frozen=True)
class Plane:
    """An infinite plane through ``point`` with (not necessarily unit) ``normal``; hit from either side."""

    point: tuple[float, float, float]
    normal: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.point) != 3 or len(self.normal) != 3:
            raise ValueError(f'point and normal need 3 values, got {self.point} and {self.normal}')
        if not np.linalg.norm(np.asarray(self.normal, np.float64)) > 0:
            raise ValueError('plane normal must be non-zero')


@dataclass
class Scene:
    """Objects (ids ``1..len(objects)`` in this order) in front of background planes (id 0)."""

    objects: list[Box | Sphere]
    background: list[Plane] = field(default_factory=list)

    @property
    def num_objects(self) -> int:
        """Number of objects (the largest object id)."""
        return len(self.objects)


def room(wall_distance: float = 4.0, floor_y: float = FLOOR_Y) -> list[Plane]:
    """Background planes: the floor ``y = floor_y`` (normal +Y) and a back wall ``z = -wall_distance``."""
    return [Plane((0.0, floor_y, 0.0), (0.0, 1.0, 0.0)), Plane((0.0, 0.0, -float(wall_distance)), (0.0, 0.0, 1.0))]


# --------------------------------------------------------------------------------------------------
# Ray casting


def _dot(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise dot product of ``(N, 3)`` arrays, either of which may be a single ``(3,)`` vector."""
    if v.ndim == 1:
        return w @ v
    if w.ndim == 1:
        return v @ w
    return np.einsum('ij,ij->i', v, w)


def _ray_plane(o: np.ndarray, d: np.ndarray, plane: Plane) -> np.ndarray:
    n = np.asarray(plane.normal, np.float64)
    denom = d @ n
    num = _dot(np.asarray(plane.point, np.float64) - o, n)
    with np.errstate(divide='ignore', invalid='ignore'):
        t = num / denom
    return np.where((np.abs(denom) > 1e-12) & (t > T_MIN), t, np.inf)


def _sphere_interval(o: np.ndarray, d: np.ndarray, a: np.ndarray, center, radius: float):
    """Entry and exit ``t`` of rays through a sphere (NaN where they miss it)."""
    oc = o - np.asarray(center, np.float64)
    b = _dot(d, oc)
    c = _dot(oc, oc) - float(radius) ** 2
    disc = b * b - a * c
    with np.errstate(invalid='ignore'):
        root = np.sqrt(disc)  # NaN where the ray misses
    return (-b - root) / a, (-b + root) / a


def _ray_sphere(o: np.ndarray, d: np.ndarray, a: np.ndarray, sphere: Sphere) -> np.ndarray:
    t_near, t_far = _sphere_interval(o, d, a, sphere.center, sphere.radius)
    t = np.where(t_near > T_MIN, t_near, t_far)  # origin inside the sphere: the exit point
    return np.where(t > T_MIN, t, np.inf)  # False for NaN


def _ray_box(o: np.ndarray, d: np.ndarray, a: np.ndarray, box: Box) -> np.ndarray:
    rot = box.rotation()
    # world -> local is rot.T, applied to row vectors as @ rot
    ol = (o - np.asarray(box.center, np.float64)) @ rot
    dl = d @ rot
    half = 0.5 * np.asarray(box.size, np.float64)
    zero = dl == 0.0
    with np.errstate(divide='ignore', invalid='ignore'):
        inv = 1.0 / np.where(zero, 1.0, dl)
        t1 = (-half - ol) * inv
        t2 = (half - ol) * inv
    lo = np.minimum(t1, t2)
    hi = np.maximum(t1, t2)
    if zero.any():  # a ray parallel to a slab is inside it for all t or for none
        inside = np.broadcast_to(np.abs(ol) <= half, dl.shape)
        lo = np.where(zero, np.where(inside, -np.inf, np.inf), lo)
        hi = np.where(zero, np.where(inside, np.inf, -np.inf), hi)
    t_near = lo.max(axis=1)
    t_far = hi.min(axis=1)
    t = np.where(t_near > T_MIN, t_near, t_far)  # origin inside the box: the exit point
    return np.where((t_near <= t_far) & (t > T_MIN), t, np.inf)


def _bounding_sphere(obj: Box | Sphere) -> tuple[tuple, float]:
    if isinstance(obj, Sphere):
        return obj.center, float(obj.radius)
    return obj.center, 0.5 * float(np.linalg.norm(obj.size)) * (1 + 1e-9)


def raycast(scene: Scene, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit of each ray: ``(t, ids)``.

    ``origins`` is ``(N, 3)`` or a single ``(3,)`` origin shared by all rays; ``directions`` is
    ``(N, 3)``, normally unit (``t`` is in multiples of the direction's length). ``t`` is float64,
    ``inf`` where nothing is hit; ``ids`` is int32: object ``k`` has id ``k + 1``, background planes 0,
    and -1 where nothing is hit. Hits closer than :data:`T_MIN` are ignored.
    """
    d = np.asarray(directions, np.float64)
    if d.ndim != 2 or d.shape[1] != 3:
        raise ValueError(f'directions must be (N, 3), got shape {d.shape}')
    o = np.asarray(origins, np.float64)
    if o.shape != (3,) and o.shape != d.shape:
        raise ValueError(f'origins must be (3,) or {d.shape}, got shape {o.shape}')
    a = np.einsum('ij,ij->i', d, d)
    t_best = np.full(d.shape[0], np.inf)
    ids = np.full(d.shape[0], -1, np.int32)
    for plane in scene.background:
        if not isinstance(plane, Plane):
            raise TypeError(f'background must hold planes, got {type(plane).__name__}')
        t = _ray_plane(o, d, plane)
        closer = t < t_best
        t_best[closer] = t[closer]
        ids[closer] = 0
    for k, obj in enumerate(scene.objects):
        if not isinstance(obj, (Box, Sphere)):
            raise TypeError(f'unsupported object {type(obj).__name__}')
        # only the rays that pass through the bounding sphere before their current hit
        t0, t1 = _sphere_interval(o, d, a, *_bounding_sphere(obj))
        idx = np.flatnonzero((t1 > T_MIN) & (t0 < t_best))
        if idx.size == 0:
            continue
        o_sub = o if o.ndim == 1 else o[idx]
        exact = _ray_sphere if isinstance(obj, Sphere) else _ray_box
        t = exact(o_sub, d[idx], a[idx], obj)
        closer = t < t_best[idx]
        t_best[idx[closer]] = t[closer]
        ids[idx[closer]] = k + 1
    return t_best, ids


# --------------------------------------------------------------------------------------------------
# Main camera


def pixel_rays(cam: PinholeIntrinsics) -> np.ndarray:
    """Unit ray directions through every pixel centre, ``(H*W, 3)`` float64, row-major, GL space."""
    u = (np.arange(cam.width, dtype=np.float64) - cam.cx) / cam.fx
    v = -(np.arange(cam.height, dtype=np.float64) - cam.cy) / cam.fy
    d = np.empty((cam.height, cam.width, 3), np.float64)
    d[..., 0] = u[None, :]
    d[..., 1] = v[:, None]
    d[..., 2] = -1.0
    d = d.reshape(-1, 3)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def render_camera(scene: Scene, cam: PinholeIntrinsics = DEFAULT_CAMERA) -> tuple[np.ndarray, np.ndarray]:
    """Depth (``(H, W)`` float32 metres along -Z, NaN where nothing is hit) and ids (``(H, W)`` int32)."""
    d = pixel_rays(cam)
    t, ids = raycast(scene, np.zeros(3), d)
    with np.errstate(invalid='ignore'):
        depth = np.where(np.isfinite(t), t * -d[:, 2], np.nan)
    return depth.astype(np.float32).reshape(cam.height, cam.width), ids.reshape(cam.height, cam.width)


def _noise_factor(rng: np.random.Generator | None, noise_std: float, r: np.ndarray) -> np.ndarray:
    """Multiplicative factor ``1 + N(0, 1) * noise_std * r`` (so ``r`` moves by ``noise_std * r^2``)."""
    rng = np.random.default_rng() if rng is None else rng
    factor = 1.0 + rng.standard_normal(r.shape) * noise_std * np.nan_to_num(r)
    return np.maximum(factor, 1e-3)  # never behind the sensor


def camera_cloud(scene: Scene, cam: PinholeIntrinsics = DEFAULT_CAMERA, noise_std: float = 0.0,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Organised cloud of the main camera: ``(H*W, 3)`` float32 GL points and ``(H*W,)`` int32 ids.

    Row-major, one point per pixel, on the ray through the pixel centre (so every point projects back
    onto its own pixel). Pixels that hit nothing give NaN points and id -1. ``noise_std > 0`` adds
    Kinect-like depth noise: the depth ``z`` gets Gaussian noise of std ``noise_std * z**2`` and the
    point moves along its ray (it stays on its pixel; its id stays the true one).
    """
    depth, ids = render_camera(scene, cam)
    z = depth.astype(np.float64)
    if noise_std > 0:
        z = z * _noise_factor(rng, noise_std, z)
    xn = (np.arange(cam.width, dtype=np.float64) - cam.cx) / cam.fx
    yn = (np.arange(cam.height, dtype=np.float64) - cam.cy) / cam.fy
    pts = np.empty((cam.height, cam.width, 3), np.float32)
    pts[..., 0] = z * xn[None, :]
    pts[..., 1] = -z * yn[:, None]
    pts[..., 2] = -z
    return pts.reshape(-1, 3), ids.reshape(-1)


# --------------------------------------------------------------------------------------------------
# Other sensors


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """World<-sensor pose (4x4) at ``eye`` whose -Z axis points at ``target`` and +Y is as close to ``up``."""
    eye = np.asarray(eye, np.float64)
    fwd = np.asarray(target, np.float64) - eye
    n = np.linalg.norm(fwd)
    if not n > 0:
        raise ValueError('eye and target must differ')
    fwd /= n
    x = np.cross(fwd, np.asarray(up, np.float64))
    nx = np.linalg.norm(x)
    if nx < 1e-9:
        raise ValueError('up must not be parallel to the viewing direction')
    x /= nx
    y = np.cross(-fwd, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, -fwd, eye
    return pose


def sensor_rays(h_fov_deg: float, v_fov_deg: float, h_res: int, v_res: int) -> np.ndarray:
    """Unit directions of an angular grid in the sensor frame (-Z forward, Y up), ``(v_res*h_res, 3)``.

    Rows go from the highest elevation down, columns from left to right; the samples are the centres
    of ``h_res x v_res`` equal angular cells covering the field of view (so a 360 degree sweep has no
    duplicated column).
    """
    if h_res < 1 or v_res < 1:
        raise ValueError(f'resolution must be positive, got {h_res}x{v_res}')
    if not (0 < h_fov_deg <= 360 and 0 < v_fov_deg < 180):
        raise ValueError(f'bad field of view {h_fov_deg}x{v_fov_deg} degrees')
    h = np.radians(h_fov_deg)
    v = np.radians(v_fov_deg)
    az = -h / 2 + (np.arange(h_res) + 0.5) * (h / h_res)  # + = to the right
    el = v / 2 - (np.arange(v_res) + 0.5) * (v / v_res)  # + = up
    ce = np.cos(el)[:, None]
    d = np.empty((v_res, h_res, 3), np.float64)
    d[..., 0] = ce * np.sin(az)[None, :]
    d[..., 1] = np.sin(el)[:, None]
    d[..., 2] = -ce * np.cos(az)[None, :]
    return d.reshape(-1, 3)


def sensor_cloud(scene: Scene, sensor_pose: np.ndarray, h_fov_deg: float, v_fov_deg: float, h_res: int,
                 v_res: int, noise_std: float = 0.0,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cloud of a ranging sensor at ``sensor_pose`` (4x4 world<-sensor), in the world (main GL) frame.

    The sensor casts the rays of :func:`sensor_rays` (its own -Z forward, Y up). Only rays that hit
    something are returned: ``(M, 3)`` float32 points and ``(M,)`` int32 ids, in ray order.
    ``noise_std > 0`` moves each point along its ray by Gaussian noise of std ``noise_std * range**2``.
    """
    pose = np.asarray(sensor_pose, np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f'sensor_pose must be 4x4, got shape {pose.shape}')
    d = sensor_rays(h_fov_deg, v_fov_deg, h_res, v_res) @ pose[:3, :3].T
    origin = pose[:3, 3]
    t, ids = raycast(scene, origin, d)
    hit = np.isfinite(t)
    t, ids, d = t[hit], ids[hit], d[hit]
    if noise_std > 0:
        t = t * _noise_factor(rng, noise_std, t)
    return (origin + t[:, None] * d).astype(np.float32), ids


# --------------------------------------------------------------------------------------------------
# Masks and scoring


def instance_masks(ids: np.ndarray, num_objects: int) -> np.ndarray:
    """Exact visible masks ``(K, H, W)`` bool of objects ``1..K`` in an id image."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f'ids must be (H, W), got shape {ids.shape}')
    return ids[None, :, :] == np.arange(1, num_objects + 1, dtype=ids.dtype)[:, None, None]


def dilate_masks(masks: np.ndarray, pixels: int, shape: str = 'ellipse') -> np.ndarray:
    """Grow each mask by ``pixels`` with a ``(2p+1)`` square or ellipse (disc) kernel (``cv2.dilate``)."""
    import cv2
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f'masks must be (K, H, W), got shape {masks.shape}')
    if pixels <= 0:
        return masks.copy()
    shapes = {'ellipse': cv2.MORPH_ELLIPSE, 'square': cv2.MORPH_RECT}
    if shape not in shapes:
        raise ValueError(f'shape must be one of {sorted(shapes)}, got {shape!r}')
    kernel = cv2.getStructuringElement(shapes[shape], (2 * pixels + 1, 2 * pixels + 1))
    out = np.empty_like(masks)
    for k in range(masks.shape[0]):
        out[k] = cv2.dilate(np.ascontiguousarray(masks[k], dtype=np.uint8), kernel) > 0
    return out


def precision_recall(pred_indices: list[np.ndarray], point_ids: np.ndarray, masks: np.ndarray,
                     points_gl: np.ndarray, cam: PinholeIntrinsics) -> list[dict]:
    """Score lifted objects against the exact ids: one dict per object ``k`` (id ``k + 1``).

    ``pred_indices[k]`` are the point indices given to object ``k``. With ``correct`` = points of id
    ``k + 1`` and ``relevant`` = those of them that project (:func:`project_gl`) into ``masks[k]``:

    * ``precision = |pred & correct| / |pred|`` (1 when ``pred`` is empty),
    * ``recall = |pred & relevant| / |relevant|`` (1 when nothing is relevant),
    * ``tp = |pred & correct|``, ``fp = |pred| - tp``, ``fn = |relevant - pred|``, and ``relevant``.

    So a correct point outside the mask counts for precision but is never missed.
    """
    point_ids = np.asarray(point_ids)
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3 or masks.shape[1:] != (cam.height, cam.width):
        raise ValueError(f'masks must be (K, {cam.height}, {cam.width}), got shape {masks.shape}')
    if len(pred_indices) != masks.shape[0]:
        raise ValueError(f'{len(pred_indices)} predictions for {masks.shape[0]} masks')
    n = point_ids.shape[0]
    proj = project_gl(points_gl, cam)
    if proj.valid.shape[0] != n:
        raise ValueError(f'{proj.valid.shape[0]} points but {n} ids')
    pix = np.full(n, -1, np.int64)
    pix[proj.valid] = proj.pixels
    on_image = pix >= 0
    flat = masks.reshape(masks.shape[0], -1)
    results = []
    for k, pred in enumerate(pred_indices):
        pred = np.asarray(pred)
        sel = np.zeros(n, bool)
        if pred.dtype == bool:
            sel[:] = pred
        else:
            sel[pred.astype(np.int64)] = True
        correct = point_ids == k + 1
        relevant = correct & on_image
        relevant[relevant] = flat[k][pix[relevant]]
        n_pred = int(sel.sum())
        tp = int((sel & correct).sum())
        n_rel = int(relevant.sum())
        found = int((sel & relevant).sum())
        results.append({
            'precision': tp / n_pred if n_pred else 1.0,
            'recall': found / n_rel if n_rel else 1.0,
            'tp': tp, 'fp': n_pred - tp, 'fn': n_rel - found, 'relevant': n_rel,
        })
    return results


# --------------------------------------------------------------------------------------------------
# Scenes


def scaled_camera(cam: PinholeIntrinsics, factor: float) -> PinholeIntrinsics:
    """The camera with the same field of view at ``factor`` times the resolution."""
    return PinholeIntrinsics(fx=cam.fx * factor, fy=cam.fy * factor, cx=(cam.cx + 0.5) * factor - 0.5,
                             cy=(cam.cy + 0.5) * factor - 0.5, width=max(1, round(cam.width * factor)),
                             height=max(1, round(cam.height * factor)))


def _z_extent(obj: Box | Sphere) -> float:
    """Half extent of an object along world Z."""
    if isinstance(obj, Sphere):
        return float(obj.radius)
    c, s = abs(math.cos(obj.yaw)), abs(math.sin(obj.yaw))
    return 0.5 * (s * obj.size[0] + c * obj.size[2])


def _x_extent(obj: Box | Sphere) -> float:
    """Half extent of an object along world X."""
    if isinstance(obj, Sphere):
        return float(obj.radius)
    c, s = abs(math.cos(obj.yaw)), abs(math.sin(obj.yaw))
    return 0.5 * (c * obj.size[0] + s * obj.size[2])


def _top(obj: Box | Sphere) -> float:
    return obj.center[1] + (obj.radius if isinstance(obj, Sphere) else 0.5 * obj.size[1])


def _make_object(x: float, z: float, dims: np.ndarray, is_box: bool,
                 yaw: float) -> Box | Sphere:
    x, z = float(x), float(z)
    if is_box:
        return Box((x, FLOOR_Y + 0.5 * float(dims[1]), z), (float(dims[0]), float(dims[1]), float(dims[2])), yaw)
    r = 0.5 * float(dims[0])
    return Sphere((x, FLOOR_Y + r, z), r)


def _in_view(obj: Box | Sphere, cam: PinholeIntrinsics, margin: float = 0.05) -> bool:
    """Whether the object's top front centre and its left/right extremes fall inside the image."""
    x, z = obj.center[0], obj.center[2]
    front = z + _z_extent(obj)
    pts = np.array([[x, _top(obj) - 0.02, front], [x - _x_extent(obj), obj.center[1], front],
                    [x + _x_extent(obj), obj.center[1], front]], np.float32)
    proj = project_gl(pts, cam)
    if not proj.valid.all():
        return False
    mu, mv = margin * cam.width, margin * cam.height
    return bool((proj.u >= mu).all() and (proj.u < cam.width - mu).all() and (proj.v < cam.height - mv).all())


def _scene_ok(scene: Scene, cam: PinholeIntrinsics, min_fraction: float = 0.002) -> bool:
    """Every object visible on at least ``min_fraction`` of the image; with 2+ objects, some overlap."""
    small = scaled_camera(cam, 80.0 / cam.width) if cam.width > 80 else cam
    _, ids = render_camera(scene, small)
    counts = np.bincount(ids[ids > 0].ravel(), minlength=scene.num_objects + 1)[1:]
    if (counts < min_fraction * ids.size).any():
        return False
    if scene.num_objects < 2:
        return True
    solo = np.stack([render_camera(Scene([obj]), small)[1] > 0 for obj in scene.objects])
    overlap = solo.reshape(len(solo), -1).astype(np.int32)
    pair_counts = overlap @ overlap.T
    np.fill_diagonal(pair_counts, 0)
    return bool((pair_counts > 0).any())


def random_scene(rng: np.random.Generator, num_objects: int = 4, wall_distance: float = 4.0,
                 near_wall: bool = False, cam: PinholeIntrinsics = DEFAULT_CAMERA,
                 max_tries: int = 200) -> Scene:
    """A random room scene: boxes and spheres on the floor in front of a back wall.

    Floor ``y = -1`` and back wall ``z = -wall_distance`` (:func:`room`). Objects are boxes (random
    yaw) or spheres with sizes 0.2-0.7 m, resting on the floor at depths 1.5-3.5 m and in view of
    ``cam``. Objects are often placed behind one another, and the scene is redrawn until at least two
    objects overlap in the image (when there are two or more) and every object is visible on at
    least 0.2 % of the image. With ``near_wall`` the last object stands 0.05-0.15 m in front of the
    wall. Objects never intersect each other or the wall (their floor footprints are disjoint).
    """
    if num_objects < 0:
        raise ValueError(f'num_objects must be >= 0, got {num_objects}')
    if wall_distance < 2.5:
        raise ValueError(f'wall_distance must be at least 2.5 m, got {wall_distance}')
    background = room(wall_distance)
    for _ in range(max_tries):
        objects: list[Box | Sphere] = []
        for i in range(num_objects):
            wall_obj = near_wall and i == num_objects - 1
            obj = _place_object(rng, objects, wall_distance, wall_obj, cam)
            if obj is None:
                break
            objects.append(obj)
        else:
            scene = Scene(objects, background)
            if _scene_ok(scene, cam):
                return scene
    raise RuntimeError(f'could not place {num_objects} objects in {max_tries} tries')


def _place_object(rng: np.random.Generator, placed: list[Box | Sphere], wall_distance: float, wall_obj: bool,
                  cam: PinholeIntrinsics, tries: int = 200) -> Box | Sphere | None:
    half_tan = min(cam.cx + 0.5, cam.width - 0.5 - cam.cx) / cam.fx
    for _ in range(tries):
        is_box = rng.random() < 0.6
        dims = rng.uniform(0.2, 0.7, size=3)
        yaw = float(rng.uniform(-math.pi / 3, math.pi / 3)) if is_box and rng.random() < 0.7 else 0.0
        probe = _make_object(0.0, 0.0, dims, is_box, yaw)
        if wall_obj:
            z = -wall_distance + float(rng.uniform(0.05, 0.15)) + _z_extent(probe)
        else:
            z = -float(rng.uniform(1.5, 3.5))
        depth = -z
        if placed and rng.random() < 0.75:
            # behind or in front of an existing object, roughly along the same line of sight
            anchor = placed[rng.integers(len(placed))]
            bearing = anchor.center[0] / -anchor.center[2]
            x = bearing * depth + float(rng.uniform(-0.6, 0.6)) * (_x_extent(probe) + _x_extent(anchor))
        else:
            x = float(rng.uniform(-0.8, 0.8)) * half_tan * depth
        obj = _make_object(x, z, dims, is_box, yaw)
        if z - _z_extent(obj) < -wall_distance + 0.04:  # into (or touching) the wall
            continue
        if not _in_view(obj, cam):
            continue
        r = obj.footprint_radius()
        if any(math.hypot(x - p.center[0], z - p.center[2]) < r + p.footprint_radius() + 0.02 for p in placed):
            continue
        return obj
    return None


def standard_scenes() -> list[tuple[str, Scene]]:
    """A fixed set of named test scenes (same every call).

    ``occlusion`` (a box half hiding another, a sphere in front of both), ``near_wall`` (a box 0.1 m in
    front of the back wall), ``sphere`` (spheres of several sizes), ``yawed_box`` (boxes turned 35 and
    -60 degrees) and two random scenes from fixed seeds (``random_7`` with an object near the wall,
    ``random_11`` with five objects).
    """
    wall = room(4.0)
    y = FLOOR_Y
    scenes = [
        ('occlusion', Scene([
            Box((-0.15, y + 0.35, -2.3), (0.5, 0.7, 0.4)),
            Box((0.25, y + 0.45, -3.1), (0.6, 0.9, 0.5)),
            Sphere((0.55, y + 0.2, -2.0), 0.2),
        ], wall)),
        ('near_wall', Scene([
            Box((-0.3, y + 0.3, -4.0 + 0.1 + 0.25), (0.6, 0.6, 0.5)),
            Box((0.5, y + 0.25, -2.6), (0.4, 0.5, 0.4)),
        ], wall)),
        ('sphere', Scene([
            Sphere((-0.4, y + 0.3, -2.6), 0.3),
            Sphere((0.3, y + 0.15, -2.2), 0.15),
            Box((0.1, y + 0.3, -3.3), (0.5, 0.6, 0.5)),
        ], wall)),
        ('yawed_box', Scene([
            Box((0.0, y + 0.3, -2.7), (0.7, 0.6, 0.3), math.radians(35.0)),
            Box((-0.7, y + 0.25, -3.2), (0.5, 0.5, 0.3), math.radians(-60.0)),
        ], wall)),
        ('random_7', random_scene(np.random.default_rng(7), 4, near_wall=True)),
        ('random_11', random_scene(np.random.default_rng(11), 5)),
    ]
    return scenes
