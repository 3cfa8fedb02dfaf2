"""What a fused map is written as: ``map.ply``, one PLY per object, ``map.glb``, a top view, and its tables.

Per map voxel (``map.ply``, binary little-endian, world frame): ``x y z`` (mean position), ``red green
blue`` (observed colour), ``instance_id`` (0 = none), ``class_id`` (-1 = none; the class value in
semantic mode), ``confidence`` and ``observations`` (points that fell in the voxel, capped at 65535).
``confidence`` is the voxel's share of its votes times the instance's mean detection confidence, or for
a voxel labelled by propagation the share of its neighbours that agreed (times the same). The ids are the
ones of :func:`instance_records`, so ``summary.json`` and the files agree.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io.glb import write_glb
from ..io.plyio import write_ply
from ..render.colors import palette
from ..render.topview import top_view
from .propagation import PropagationResult
from .scene import SceneFusion


@dataclass(frozen=True)
class MapLayers:
    """Per map voxel: instance (0 none), class (-1 none), confidence, and whether a mask labelled it directly."""

    instance: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    direct: np.ndarray


def map_layers(fusion: SceneFusion, propagation: PropagationResult | None = None,
               votes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
               instances: np.ndarray | None = None) -> MapLayers:
    """The labels of every voxel of ``fusion``'s map, with ``propagation``'s where given.

    ``votes`` (``map.best_labels()``) and ``instances`` (``voxel_instances(votes)``) when the caller has
    them for the map as it is now (the live map computes them for every map_objects message).
    """
    votes = fusion.map.best_labels() if votes is None else votes
    best, _, share = votes
    if fusion.mode == 'instance':
        direct_label = fusion.voxel_instances(votes) if instances is None else instances
    else:
        direct_label = best
    direct = direct_label > 0
    label = direct_label if propagation is None else np.asarray(propagation.labels, np.int64)
    support = np.where(direct, share, 0.0 if propagation is None else propagation.support)
    if fusion.mode == 'instance':
        top = max(fusion.instances, default=0) + 1
        cls = np.full(top, -1, np.int32)
        conf = np.zeros(top, np.float32)
        for inst in fusion.confirmed():
            cls[inst.id], conf[inst.id] = inst.class_id, inst.confidence
        label = np.where(label < top, label, 0)
        return MapLayers(label.astype(np.int32), cls[label], (support * conf[label]).astype(np.float32), direct)
    return MapLayers(np.zeros(len(label), np.int32), np.where(label > 0, label, -1).astype(np.int32),
                     (support * (label > 0)).astype(np.float32), direct)


def inside_positions(m) -> np.ndarray:
    """The voxels' mean positions, each nudged (by at most 0.1 % of a voxel) to lie strictly inside its voxel.

    A mean on a voxel face (a wall at a whole centimetre) can round, in float32, into the neighbour; written
    so, reading the map back would merge two voxels into one. Inside, every position finds its own voxel.
    """
    v = m.voxel_size
    low = m.cells.astype(np.float64) * v
    eps = max(1e-3 * v, 1e-6)
    return np.clip(m.positions.astype(np.float64), low + eps, low + v - eps).astype(np.float32)


def instance_records(fusion: SceneFusion, layers: MapLayers) -> list[dict]:
    """One record per confirmed instance with voxels: id, class, confidence, size, centroid, box, frames, merges."""
    pos = fusion.map.positions
    order = np.argsort(layers.instance, kind='stable')
    ids, starts, counts = np.unique(layers.instance[order], return_index=True, return_counts=True)
    records = []
    for inst in fusion.confirmed():
        at = np.searchsorted(ids, inst.id)
        if at >= len(ids) or ids[at] != inst.id:
            continue
        rows = order[starts[at]:starts[at] + counts[at]]
        p = pos[rows].astype(np.float64)
        records.append({
            'id': inst.id, 'label': inst.label, 'class_id': inst.class_id, 'confidence': round(inst.confidence, 4),
            'points': int(counts[at]), 'direct_points': int(layers.direct[rows].sum()),
            'centroid': _rounded(p.mean(axis=0)), 'box_min': _rounded(p.min(axis=0)),
            'box_max': _rounded(p.max(axis=0)),
            'frames_seen': inst.frames, 'first_frame': inst.first_frame, 'last_frame': inst.last_frame,
            'merged_ids': sorted(inst.merged)})
    return records


def class_totals(fusion: SceneFusion, layers: MapLayers, records: list[dict],
                 names: dict[int, str] | None = None) -> list[dict]:
    """Per class: instances (instance mode) and voxels, by class id."""
    names = dict(names or {})
    for r in records:
        names.setdefault(r['class_id'], r['label'])
    cls, voxels = np.unique(layers.class_id[layers.class_id >= 0], return_counts=True)
    per = {int(c): {'class_id': int(c), 'label': names.get(int(c), str(int(c))), 'instances': 0, 'points': int(n)}
           for c, n in zip(cls, voxels)}
    for r in records:
        per.setdefault(r['class_id'], {'class_id': r['class_id'], 'label': r['label'], 'instances': 0, 'points': 0})
        per[r['class_id']]['instances'] += 1
    return [per[c] for c in sorted(per)]


def export_scene(fusion: SceneFusion, out: str | Path, propagation: PropagationResult | None = None,
                 class_names: dict[int, str] | None = None) -> dict:
    """Write the map's files into ``out`` and return their tables (instances, classes, coverage)."""
    out = Path(out)
    (out / 'objects').mkdir(parents=True, exist_ok=True)
    layers = map_layers(fusion, propagation)
    records = instance_records(fusion, layers)
    m = fusion.map
    observations = np.minimum(m.counts, np.iinfo(np.uint16).max).astype(np.uint16)
    write_ply(out / 'map.ply', inside_positions(m), m.colors, {
        'instance_id': layers.instance, 'class_id': layers.class_id, 'confidence': layers.confidence,
        'observations': observations})
    for old in (out / 'objects').glob('*.ply'):
        old.unlink()  # a re-run into the same folder must not leave objects that no longer exist
    for r in records:
        sel = layers.instance == r['id']
        write_ply(out / 'objects' / f"{r['id']}_{_slug(r['label'])}.ply", m.positions[sel], m.colors[sel],
                  {'confidence': layers.confidence[sel], 'observations': observations[sel]})
    shown = layers.instance if fusion.mode == 'instance' else np.maximum(layers.class_id, 0)
    colors = np.where((shown > 0)[:, None], palette(int(shown.max(initial=0)) + 1)[shown], m.colors)
    poses = np.array(fusion.camera_poses).reshape(-1, 4, 4)
    write_glb(out / 'map.glb', m.positions, colors, poses, fusion.cameras)
    image = top_view(m.positions, m.colors, shown, poses, point_size=m.voxel_size)
    cv2.imwrite(str(out / 'top_view.png'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    total = max(len(m), 1)
    labelled = int((layers.class_id >= 0).sum())
    tables = {
        'voxels': len(m), 'voxel_size': m.voxel_size, 'mode': fusion.mode,
        'coverage': {'direct': round(int(layers.direct.sum()) / total, 4), 'after_propagation':
                     round(labelled / total, 4) if propagation is not None else None},
        'instances': records, 'classes': class_totals(fusion, layers, records, class_names),
        'memory_bytes': m.memory_bytes(), 'bytes_per_voxel': m.bytes_per_voxel, 'frames_fused': fusion.frames,
    }
    # what load_scene needs to go on; vizion3d-fuse writes a fuller summary.json over it
    (out / 'summary.json').write_text(json.dumps(tables, indent=2))
    return tables


def _rounded(v: np.ndarray) -> list[float]:
    return [round(float(x), 4) for x in v]


def _slug(label: str) -> str:
    return re.sub(r'[^A-Za-z0-9]+', '_', label).strip('_') or 'object'


def label_cloud(fusion: SceneFusion, points: np.ndarray, propagation: PropagationResult | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(instance_id, class_id)`` of each of an external cloud's world ``points`` from the map (0 / -1: none)."""
    layers = map_layers(fusion, propagation)
    label = layers.instance if fusion.mode == 'instance' else np.maximum(layers.class_id, 0)
    got = fusion.label_points(points, labels=label)
    if fusion.mode != 'instance':
        return np.zeros(len(got), np.int32), np.where(got > 0, got, -1).astype(np.int32)
    cls = np.full(max(fusion.instances, default=0) + 1, -1, np.int32)
    for inst in fusion.confirmed():
        cls[inst.id] = inst.class_id
    return got, cls[got]


def load_scene(folder: str | Path, **options) -> SceneFusion:
    """A map written by :func:`export_scene` (``map.ply`` + ``summary.json``), ready to fuse more frames into.

    Each voxel comes back with its position, colour and observation count, and one vote for its label
    (instance, or class in semantic mode) weighing what its observations at that confidence would; the
    instances come back from the summary with their ids, classes and counts, so new frames associate with
    them and new ids continue after the highest. What the files do not hold starts empty: the other
    candidate votes, the background, the frames' poses. ``options`` go to :class:`SceneFusion`.
    """
    from ..io.plyio import read_ply
    from .scene import MapInstance

    folder = Path(folder)
    try:
        summary = json.loads((folder / 'summary.json').read_text())
        ply = read_ply(folder / 'map.ply')
        voxel, mode = float(summary['voxel_size']), summary.get('mode', 'instance')
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f'{folder}: not a saved map (map.ply and summary.json): {exc}') from exc
    missing = {'x', 'y', 'z', 'red', 'green', 'blue', 'instance_id', 'class_id', 'confidence',
               'observations'} - set(ply.dtype.names or ())
    if missing:
        raise ValueError(f'{folder / "map.ply"}: no {", ".join(sorted(missing))} properties')
    fusion = SceneFusion(voxel_size=voxel, mode=mode, **options)
    points = np.stack([ply['x'], ply['y'], ply['z']], axis=1).astype(np.float64)
    colors = np.stack([ply['red'], ply['green'], ply['blue']], axis=1)
    label = ply['instance_id'] if mode == 'instance' else np.maximum(ply['class_id'], 0)
    weight = np.maximum(ply['confidence'], 1e-3) * np.maximum(ply['observations'], 1)
    fusion.map.restore(points, colors, ply['observations'], label.astype(np.int32), weight.astype(np.float32))
    for r in summary.get('instances', []):
        inst = MapInstance(int(r['id']), class_votes={int(r['class_id']): float(r['confidence']) * r['frames_seen']},
                           labels={int(r['class_id']): str(r['label'])}, frames=int(r['frames_seen']),
                           first_frame=int(r['first_frame']), last_frame=int(r['last_frame']),
                           confidence_sum=float(r['confidence']) * int(r['frames_seen']),
                           merged=list(r.get('merged_ids', [])))
        fusion.instances[inst.id] = inst
    fusion._next_id = max(fusion.instances, default=0) + 1
    fusion.frames = int(summary.get('frames_fused', 0))
    return fusion
