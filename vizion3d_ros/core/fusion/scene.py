"""Posed frames and their instance masks fused into one map where each physical object has one id.

Per frame (:meth:`SceneFusion.add_frame`): the depth is back-projected and moved into the world; each
mask is lifted onto the frame's points with the ``visible`` lifting (so that its border spill onto the
wall or the floor is trimmed before it can vote); each mask is matched one-to-one to the map instance
it overlaps most on the points the camera sees now (:mod:`.association`); unmatched masks open new
instances, tentative until a second frame confirms them; then every point goes into the voxel map,
voting for its mask's instance with the detection's confidence, and every point without a label is
negative evidence for its voxel (weakening its votes, adding to its background weight).

The map's labels (:meth:`SceneFusion.voxel_instances`) are its voxels' strongest votes for confirmed
instances that outweigh the voxel's background, without the stray pieces of an instance.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..camera.frames import optical_to_gl
from ..camera.pinhole import PinholeIntrinsics
from ..camera.transforms import transform_points
from ..io.rgbd import depth_to_points_optical
from ..lifting.lift import LiftConfig, lift_masks
from .association import match_masks, overlap_counts
from .consolidation import merge_groups
from .propagation import PropagationResult, propagate
from .voxel_map import IntegrateResult, VoxelMap

_HELPER: ThreadPoolExecutor | None = None


def _helper() -> ThreadPoolExecutor:
    """One worker thread shared by every map, for the part of a frame that can overlap the lifting."""
    global _HELPER
    if _HELPER is None:
        _HELPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix='vizion3d-fusion')
    return _HELPER


@dataclass
class MapInstance:
    """One object of the map: its class votes and when it was seen."""

    id: int
    class_votes: dict[int, float] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)
    frames: int = 0
    first_frame: int = -1
    last_frame: int = -1
    confidence_sum: float = 0.0
    merged: list[int] = field(default_factory=list)  # ids of the instances merged into this one
    missed: int = 0  # frames in a row that saw it (its voxels in view) but matched no mask to it

    def absorb(self, other: MapInstance) -> None:
        """Take over ``other``'s detections (it was the same object)."""
        for cls, w in other.class_votes.items():
            self.class_votes[cls] = self.class_votes.get(cls, 0.0) + w
        for cls, name in other.labels.items():
            self.labels.setdefault(cls, name)
        self.frames += other.frames
        self.confidence_sum += other.confidence_sum
        firsts = [f for f in (self.first_frame, other.first_frame) if f >= 0]
        self.first_frame = min(firsts) if firsts else -1
        self.last_frame = max(self.last_frame, other.last_frame)
        self.merged += [other.id, *other.merged]

    @property
    def class_id(self) -> int:
        """The class with the most detection confidence behind it."""
        return max(self.class_votes, key=self.class_votes.get) if self.class_votes else -1

    @property
    def label(self) -> str:
        return self.labels.get(self.class_id, str(self.class_id))

    @property
    def confidence(self) -> float:
        """Mean confidence of the detections matched to it."""
        return self.confidence_sum / self.frames if self.frames else 0.0


@dataclass(frozen=True)
class FrameReport:
    """What one frame did to the map."""

    frame: int
    assigned: dict[int, int]  # frame mask value -> map instance id (matched or new)
    created: list[int]  # ids of the instances this frame opened
    points: int
    dropped_full: int = 0  # points in new voxels the full map (max_voxels) could not take


class SceneFusion:
    """The map of a sequence of posed RGB-D frames with their masks.

    ``mode`` ``instance``: per-frame instance masks (values unrelated between frames) are associated
    with the map's instances. ``semantic``: the masks are class images, consistent across frames (value =
    class, 0 = unlabelled, e.g. a few painted photos); each point votes for its pixel's class and 0 says
    nothing (no negative evidence: an unpainted pixel is unknown, not background).

    ``background_weight``: a voxel keeps its instance (:meth:`voxel_instances`) only if the instance's vote
    there, counted in points at the instance's mean confidence, is at least this share of the points that
    saw the voxel without a label (other than in frames that missed the instance); 0 turns it off.
    ``min_piece_share``: a piece of an instance (voxels that touch) carrying less than this share of the
    votes of the instance's heaviest piece is dropped from it; 0 turns it off.
    """

    def __init__(self, voxel_size: float = 0.01, mode: str = 'instance', min_iou: float = 0.2, min_points: int = 30,
                 confirm_frames: int = 2, max_voxels: int | None = None, negative_weight: float = 0.3,
                 min_mask_share: float = 0.5, lift_config: LiftConfig | None = None, background_weight: float = 0.2,
                 min_piece_share: float = 0.1) -> None:
        if mode not in ('instance', 'semantic'):
            raise ValueError(f"mode must be 'instance' or 'semantic', got {mode!r}")
        self.mode = mode
        self.camera_poses: list[np.ndarray] = []  # per frame, camera (optical) -> world
        self.cameras: list[PinholeIntrinsics] = []
        self.map = VoxelMap(voxel_size, max_voxels=max_voxels)
        self.min_iou = float(min_iou)
        self.min_points = int(min_points)
        self.confirm_frames = int(confirm_frames)
        self.negative_weight = float(negative_weight)
        self.min_mask_share = float(min_mask_share)
        self.background_weight = float(background_weight)
        self.min_piece_share = float(min_piece_share)
        self.lift_config = lift_config or LiftConfig(mode='visible')
        self.instances: dict[int, MapInstance] = {}
        self.frames = 0
        self._next_id = 1

    def add_frame(self, depth: np.ndarray, camera: PinholeIntrinsics, pose: np.ndarray, labels: np.ndarray,
                  meta: dict[int, dict], color: np.ndarray | None = None) -> FrameReport:
        """Fuse one frame.

        ``depth`` (H, W) is in metres along the optical axis (NaN/0 = none), ``pose`` the 4x4 camera
        (optical) to world transform, ``labels`` (H, W) the frame's instance values (0 = none) that
        ``meta[value]`` describes (``class_id``, ``label``, ``confidence``), ``color`` (H, W, 3) uint8 RGB.
        """
        optical = depth_to_points_optical(np.asarray(depth, np.float32), camera)
        frame, world, colors = self._begin_frame(optical, pose, color, camera)
        if self.mode == 'semantic':
            return self._fuse_classes(frame, world, colors, np.asarray(labels).reshape(-1))
        values = [v for v in sorted(meta) if v != 0]
        # the map's side (compiled, GIL-free kernels) runs on the helper thread while the masks are lifted:
        # the instance each point's voxel holds now, before this frame votes (a new voxel holds none)
        reading = _helper().submit(self._read_map, world)
        mask_of_point = self._lift(optical, camera, np.asarray(labels), values, meta)
        return self._fuse_lifted(frame, world, colors, mask_of_point, values, meta, *reading.result())

    def add_lifted(self, points: np.ndarray, pose: np.ndarray, point_labels: np.ndarray, meta: dict[int, dict],
                   colors: np.ndarray | None = None, camera: PinholeIntrinsics | None = None) -> FrameReport:
        """Fuse a frame whose masks are already on its points (e.g. vizion3d_node's ``point_indices``).

        ``points`` (N, 3) are in the sensor frame that ``pose`` (4x4, sensor -> world) moves into the world
        (NaN: no point); ``point_labels`` (N,) the frame's instance value of each point (0 = none), which
        ``meta[value]`` describes as for :meth:`add_frame`; ``colors`` (N, 3) uint8 RGB. The lifting is the
        caller's: nothing is trimmed here. In semantic mode the values are classes.
        """
        pts = np.asarray(points)
        labels = np.asarray(point_labels).reshape(-1)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(labels) != len(pts):
            raise ValueError(f'points must be (N, 3) and point_labels (N,), got {pts.shape} and {labels.shape}')
        frame, world, colors = self._begin_frame(pts, pose, colors, camera)
        if self.mode == 'semantic':
            return self._fuse_classes(frame, world, colors, labels)
        values = [v for v in sorted(meta) if v != 0]
        unknown = np.setdiff1d(np.unique(labels[labels != 0]), values)
        if len(unknown):
            raise ValueError(f'point_labels hold values that meta does not describe: {unknown[:10]}')
        index = np.searchsorted(np.array(values, np.int64), labels)
        mask_of_point = np.where(labels != 0, index, -1).astype(np.int64)
        return self._fuse_lifted(frame, world, colors, mask_of_point, values, meta, *self._read_map(world))

    def _begin_frame(self, points: np.ndarray, pose: np.ndarray, colors: np.ndarray | None,
                     camera: PinholeIntrinsics | None) -> tuple[int, np.ndarray, np.ndarray | None]:
        """Count the frame, record its camera and move its points into the world: ``(frame, world, colors)``."""
        frame = self.frames
        self.frames += 1
        pose = np.asarray(pose, np.float64)
        self.camera_poses.append(pose.copy())
        if camera is not None:
            self.cameras.append(camera)
        colors = None if colors is None else np.asarray(colors, np.uint8).reshape(-1, 3)
        return frame, transform_points(points, pose), colors

    def _fuse_classes(self, frame: int, world: np.ndarray, colors: np.ndarray | None,
                      classes: np.ndarray) -> FrameReport:
        """Semantic mode: each point votes for its class (0: unknown, no vote)."""
        done = self.map.integrate(world, colors, classes.astype(np.int32), 1.0)
        return FrameReport(frame=frame, assigned={}, created=[], points=len(world) - done.dropped_invalid,
                           dropped_full=done.dropped_full)

    def _fuse_lifted(self, frame: int, world: np.ndarray, colors: np.ndarray | None, mask_of_point: np.ndarray,
                     values: list[int], meta: dict[int, dict], placed: IntegrateResult,
                     instance_of_point: np.ndarray) -> FrameReport:
        """Association, new instances, negative evidence and votes of a frame whose points know their mask."""
        rows = placed.rows
        ids = np.array(sorted(self.instances), np.int64)
        overlap, sizes, visible = overlap_counts(mask_of_point, instance_of_point, len(values), ids)
        mask_classes = np.array([meta[v].get('class_id', -1) for v in values], np.int64)
        instance_classes = np.array([self.instances[i].class_id for i in ids], np.int64)
        same = mask_classes[:, None] == instance_classes[None, :]
        pairs = match_masks(overlap, sizes, visible, same, self.min_iou, min_share=self.min_mask_share)
        assigned = {values[m]: int(ids[c]) for m, c in pairs}
        created = []
        for k, v in enumerate(values):
            if v not in assigned and sizes[k] >= self.min_points:
                assigned[v] = self._next_id
                self.instances[self._next_id] = MapInstance(self._next_id)
                created.append(self._next_id)
                self._next_id += 1
        matched = set(assigned.values())
        for i in ids[visible >= self.min_points]:
            if int(i) not in matched:
                self.instances[int(i)].missed += 1
        for i in matched:
            self.instances[i].missed = 0
        label_of_mask = np.zeros(len(values) + 1, np.int32)  # the last entry: points of no mask
        weight_of_mask = np.zeros(len(values) + 1, np.float32)
        for k, v in enumerate(values):
            if v not in assigned:
                continue
            inst = self.instances[assigned[v]]
            info = meta[v]
            conf = float(info.get('confidence', 1.0))
            cls = int(info.get('class_id', -1))
            inst.class_votes[cls] = inst.class_votes.get(cls, 0.0) + conf
            inst.labels.setdefault(cls, str(info.get('label', cls)))
            inst.frames += 1
            inst.confidence_sum += conf
            inst.first_frame = frame if inst.first_frame < 0 else inst.first_frame
            inst.last_frame = frame
            label_of_mask[k], weight_of_mask[k] = inst.id, conf
        point_label = label_of_mask[mask_of_point]  # -1 (no mask) reads the last entry
        point_weight = weight_of_mask[mask_of_point]
        # negative evidence first: voxels this frame sees without a label lose some of their votes, and
        # remember it (background) for the readout (voxel_instances); not on the instances this frame sees
        # but no mask matched: a missed detection says nothing about where the object ends
        if self.negative_weight > 0 or self.background_weight > 0:
            missed = np.zeros(self._next_id, bool)
            missed[ids[visible >= self.min_points]] = True
            missed[list(assigned.values())] = False
            self.map.weaken_unlabelled(rows, point_label, instance_of_point, missed, self.negative_weight,
                                       1.0 if self.background_weight > 0 else 0.0)
        self.map.accumulate(rows, world, colors, point_label, point_weight)
        return FrameReport(frame=frame, assigned=assigned, created=created,
                           points=len(world) - placed.dropped_invalid, dropped_full=placed.dropped_full)

    def _read_map(self, world: np.ndarray) -> tuple[IntegrateResult, np.ndarray]:
        """The map rows of a frame's points (new voxels created) and the label each holds now."""
        placed = self.map.insert(world)
        return placed, self.map.best_labels(placed.rows)[0]

    def _lift(self, optical: np.ndarray, camera: PinholeIntrinsics, labels: np.ndarray, values: list[int],
              meta: dict[int, dict]) -> np.ndarray:
        """Mask index (position in ``values``) of each point after the ``visible`` lifting, -1 for none."""
        out = np.full(len(optical), -1, np.int64)
        if not values:
            return out
        masks = labels[None, :, :] == np.array(values, labels.dtype)[:, None, None]
        scores = np.array([float(meta[v].get('confidence', 1.0)) for v in values])
        groups = lift_masks(optical_to_gl(optical), camera, masks, scores, config=self.lift_config)
        for k, idx in enumerate(groups):
            out[idx] = k
        return out

    def consolidate(self, min_overlap: float = 0.3) -> dict[int, int]:
        """Merge instances that are one object (:func:`.consolidation.merge_groups`); returns old id -> kept id.

        Of a group, the oldest instance (the smallest id) keeps its id and absorbs the others' detections;
        the map's votes for the others become votes for it. The oldest, not the most seen: a consumer of the
        live map has known that id longest (a duplicate opened a frame later can be seen in more frames by
        the time the two are found to be one object).
        """
        if self.mode != 'instance':
            return {}
        classes = {i: inst.class_id for i, inst in self.instances.items()}
        mapping: dict[int, int] = {}
        for group in merge_groups(*self.map.votes, classes, min_overlap):
            keep = min(group)
            for i in group:
                if i != keep:
                    self.instances[keep].absorb(self.instances.pop(i))
                    mapping[i] = keep
        self.map.relabel(mapping)
        return mapping

    def label_points(self, points: np.ndarray, max_distance: float | None = None,
                     labels: np.ndarray | None = None) -> np.ndarray:
        """The map's label (confirmed instance, or class in semantic mode; 0 = none) of world ``points``.

        For an external cloud in the map's frame (a LiDAR scan, a mesh's vertices): each point takes the
        label of the nearest map voxel within ``max_distance`` (default: one and a half voxels). ``labels``
        (one per map voxel, e.g. a :meth:`propagate` result) replaces the map's own.
        """
        from scipy.spatial import cKDTree

        pts = np.asarray(points, np.float64).reshape(-1, 3)
        if labels is None:
            labels = self.voxel_instances() if self.mode == 'instance' else self.map.best_labels()[0]
        labels = np.asarray(labels)
        out = np.zeros(len(pts), np.int32)
        keep = labels > 0
        if not keep.any() or not len(pts):
            return out
        radius = 1.5 * self.map.voxel_size if max_distance is None else float(max_distance)
        finite = np.isfinite(pts).all(axis=1)
        tree = cKDTree(self.map.positions[keep].astype(np.float64))
        d, i = tree.query(pts[finite], distance_upper_bound=radius)
        hit = np.isfinite(d)
        got = np.zeros(int(finite.sum()), np.int32)
        got[hit] = labels[keep][i[hit]]
        out[finite] = got
        return out

    def state(self, instance: MapInstance, missing_after: int = 3) -> str:
        """What a map object is now: ``tentative``, ``confirmed`` or ``missing``.

        Tentative: not yet matched in ``confirm_frames`` frames. Missing: confirmed, but in view (its voxels
        seen) and matched to no mask in the last ``missing_after`` frames that saw it.
        """
        if instance.frames < self.confirm_frames:
            return 'tentative'
        return 'missing' if instance.missed >= missing_after else 'confirmed'

    def reserve_id(self) -> int:
        """A fresh id from the instances' counter, for objects kept outside the map (dynamic tracks)."""
        i = self._next_id
        self._next_id += 1
        return i

    def prune_tentative(self, after_frames: int) -> list[int]:
        """Remove the tentative instances not matched in the last ``after_frames`` frames; returns their ids.

        A detection seen once and never again (a false positive, a passer-by) would otherwise keep its id
        and its votes for ever: on a long run the instance table and the votes grow with every such frame.
        """
        if after_frames <= 0:
            return []
        gone = [i for i, inst in self.instances.items()
                if inst.frames < self.confirm_frames and self.frames - 1 - inst.last_frame >= after_frames]
        for i in gone:
            del self.instances[i]
        self.map.forget_labels(np.array(gone, np.int32))
        return gone

    def forget_beyond(self, center: np.ndarray, radius: float) -> int:
        """Drop the voxels farther than ``radius`` metres from ``center`` (e.g. the camera); returns how many.

        Bounds a long run in space (``max_voxels`` bounds it in size): what is left behind is forgotten.
        Instances keep their records and ids; one whose voxels are all gone is simply not in the readout.
        """
        d = np.linalg.norm(self.map.positions.astype(np.float64) - np.asarray(center, np.float64), axis=1)
        return self.map.keep(d <= radius)

    @property
    def camera_positions(self) -> np.ndarray:
        """``(F, 3)`` camera centres of the frames fused so far."""
        return np.array([p[:3, 3] for p in self.camera_poses]).reshape(-1, 3)

    def export(self, out, propagation: PropagationResult | None = None, class_names: dict[int, str] | None = None
               ) -> dict:
        """Write map.ply, objects/, map.glb and top_view.png into ``out`` (:func:`.export.export_scene`)."""
        from .export import export_scene

        return export_scene(self, out, propagation, class_names)

    @classmethod
    def load(cls, folder, **options) -> SceneFusion:
        """A map saved by :meth:`export` (map.ply + summary.json) to go on with (:func:`.export.load_scene`)."""
        from .export import load_scene

        return load_scene(folder, **options)

    def confirmed(self) -> list[MapInstance]:
        """Instances seen in at least ``confirm_frames`` frames, by id."""
        return [self.instances[i] for i in sorted(self.instances) if self.instances[i].frames >= self.confirm_frames]

    def voxel_instances(self, best: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """The confirmed instance of each map voxel (0: none, tentative, or not backed by enough evidence).

        A voxel's strongest vote names its instance if that instance is confirmed and, with
        ``background_weight``, if the vote outweighs the voxel's background (the points that saw it without
        a label, before or after the vote: a mask that spilt onto the floor once loses to the frames that
        saw that floor unlabelled). With ``min_piece_share``, pieces of an instance cut off from its bulk
        and carrying little of its votes (what a stray mask left far from the object) are dropped.
        ``best``: the map's :meth:`~.voxel_map.VoxelMap.best_labels` when the caller has them already.
        """
        best, top, _ = self.map.best_labels() if best is None else best
        ok = np.zeros(self._next_id, bool)
        conf = np.zeros(self._next_id, np.float32)
        for inst in self.confirmed():
            ok[inst.id] = True
            conf[inst.id] = inst.confidence
        out = np.where(ok[best], best, 0)
        if self.background_weight > 0:
            out = np.where(top >= self.background_weight * conf[best] * self.map.background, out, 0)
        if self.min_piece_share > 0 and out.any():
            out = self._drop_stray_pieces(out, top)
        return out

    def _drop_stray_pieces(self, labels: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """``labels`` without the pieces carrying less than ``min_piece_share`` of their instance's heaviest."""
        piece = self.map.pieces(labels)  # a piece is named by its first row (no sort needed)
        rows = np.flatnonzero(piece >= 0)
        piece_weight = np.bincount(piece[rows], weights=weight[rows], minlength=len(labels))
        roots = rows[piece[rows] == rows]
        heaviest = np.zeros(self._next_id)
        np.maximum.at(heaviest, labels[roots], piece_weight[roots])
        keep = piece_weight[roots] >= self.min_piece_share * heaviest[labels[roots]]
        out = labels.copy()
        stray = np.zeros(len(labels), bool)
        stray[roots[~keep]] = True
        out[rows[stray[piece[rows]]]] = 0
        return out

    def propagate(self, max_distance: float = 0.05, min_neighbors: int = 3, max_camera_distance: float | None = None,
                  iterations: int = 20, *, max_normal_angle: float | None = 40.0,
                  max_plane_distance: float | None = 0.03, max_color_distance: float | None = None
                  ) -> PropagationResult:
        """Labels for the map's unlabelled voxels from their labelled neighbours (:func:`.propagation.propagate`).

        The voxels' strongest votes are the labels (in instance mode, confirmed instances only);
        ``max_camera_distance`` (metres) lets only voxels that near some camera vote: far labels are the
        noisiest. The map itself is not changed; the result holds a label per voxel row.

        Labels follow surfaces and stop at creases (``max_normal_angle``, degrees), depth steps
        (``max_plane_distance``, metres) and, when given, colour edges (``max_color_distance`` between the
        voxels' mean colours, 0-255); None turns a gate off. The default 20 passes carry a label up to
        20 ``max_distance`` (1 m) along its surface: one pass reaches only what a painted view nearly saw,
        and the gates keep the further passes from flooding across boundaries.
        """
        labels = self.voxel_instances() if self.mode == 'instance' else self.map.best_labels()[0]
        trusted = None
        if max_camera_distance is not None and self.camera_poses:
            from scipy.spatial import cKDTree

            d, _ = cKDTree(self.camera_positions).query(self.map.positions.astype(np.float64))
            trusted = d <= max_camera_distance
        colors = None if max_color_distance is None else self.map.colors
        return propagate(self.map.positions, labels, max_distance, min_neighbors, iterations=iterations,
                         trusted=trusted, max_normal_angle=max_normal_angle, max_plane_distance=max_plane_distance,
                         colors=colors, max_color_distance=max_color_distance)
