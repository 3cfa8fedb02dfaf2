"""Merging instances that are one object (vizion3d_ros.core.fusion.consolidation, SceneFusion.consolidate)."""
import numpy as np

from vizion3d_ros.core.fusion.consolidation import merge_groups, shared_voxels
from vizion3d_ros.core.fusion.scene import SceneFusion
from vizion3d_ros.core.synthetic.multiview import EXACT_MASKS, frame_masks, furnished_room, orbit_poses, render_view


def test_shared_voxels_counts_each_pair_once_per_voxel():
    labels = np.array([[1, 2, 0], [2, 1, 3], [3, 0, 0], [1, 1, 2]], np.int32)  # the last row: a duplicate slot
    weights = np.array([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 0, 1]], np.float32)  # ... whose weight is 0
    a, b, shared, size = shared_voxels(labels, weights)
    assert dict(zip(zip(a.tolist(), b.tolist()), shared.tolist())) == {(1, 2): 3, (1, 3): 1, (2, 3): 1}
    assert size.tolist() == [0, 3, 3, 2]


def test_groups_need_overlap_and_the_same_class_and_are_transitive():
    # 1-2 share 3 of 3 voxels, 2-4 share 2 of 2, 5-6 share 1 of 4: groups {1, 2, 4}; 3 is another class
    labels = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 4], [2, 4, 0], [5, 6, 0], [5, 0, 0], [5, 0, 0], [5, 0, 0],
                       [6, 0, 0], [6, 0, 0], [6, 0, 0]], np.int32)
    weights = (labels > 0).astype(np.float32)
    classes = {1: 56, 2: 56, 3: 60, 4: 56, 5: 73, 6: 73}
    assert merge_groups(labels, weights, classes) == [[1, 2, 4]]
    assert merge_groups(labels, weights, classes, min_overlap=0.2) == [[1, 2, 4], [5, 6]]
    assert merge_groups(labels, weights, {**classes, 4: 41}) == [[1, 2]]
    assert merge_groups(labels, weights, {}) == []


def _room_fused(seed: int, **options) -> tuple:
    room = furnished_room(np.random.default_rng(seed))
    fusion = SceneFusion(voxel_size=0.02, **options)
    rng = np.random.default_rng(2)
    truth = []
    for pose in orbit_poses(room, rng=np.random.default_rng(1)):
        v = render_view(room, pose)
        fm = frame_masks(room, v, rng, EXACT_MASKS)
        fusion.add_frame(v.depth, v.camera, v.pose, fm.labels, fm.meta, v.color)
        truth.append(v)
    return room, fusion


def test_consolidation_joins_the_instances_association_did_not():
    """With association switched off (no IoU can reach 1.01) every detection opens an instance of its own;
    consolidation alone must bring every object back to one confirmed instance of the right class."""
    room, fusion = _room_fused(5, min_iou=1.01)
    assert len(fusion.instances) > 3 * room.scene.num_objects and not fusion.confirmed()
    mapping = fusion.consolidate()
    confirmed = fusion.confirmed()
    assert sorted(i.label for i in confirmed) == sorted(room.labels)
    kept = {i.id for i in confirmed}
    assert all(v in fusion.instances for v in mapping.values()) and not (set(mapping) & set(fusion.instances))
    for inst in confirmed:
        assert inst.merged and all(mapping[m] == inst.id for m in inst.merged)
        assert inst.id < min(inst.merged)  # the oldest of a group keeps its id: consumers knew it first
        assert inst.frames >= 2 and inst.class_id == room.class_ids[room.labels.index(inst.label)]
    # the map's votes follow the merges: no voxel votes for an id that was merged away
    lab, w = fusion.map.votes
    assert not np.isin(lab[w > 0], list(mapping)).any()
    assert set(np.unique(fusion.voxel_instances())) - {0} == kept


def test_consolidation_changes_nothing_when_association_worked():
    _, fusion = _room_fused(3)
    before = {i.id: i.frames for i in fusion.confirmed()}
    votes = [v.copy() for v in fusion.map.votes]
    assert fusion.consolidate() == {}
    assert {i.id: i.frames for i in fusion.confirmed()} == before
    np.testing.assert_array_equal(fusion.map.votes[0], votes[0])
