"""The fusion's voxel map (vizion3d_ros.core.fusion.voxel_map): means, counts, votes, bounds, growth."""
import numpy as np
import pytest

from vizion3d_ros.core.fusion.voxel_map import VoxelMap
from vizion3d_ros.core.voxels import cell_keys, key_cells


def point_keys(points: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the points' voxels by numpy (the map computes them in a kernel), and which points have one."""
    cells = np.floor(points / voxel)
    ok = np.isfinite(cells).all(axis=1)
    keys = np.full(len(points), -1, np.int64)
    keys[ok] = cell_keys(cells[ok].astype(np.int64))
    return keys, ok


def _reference(points: np.ndarray, colors: np.ndarray, voxel: float):
    """Per voxel key: count, mean position and mean colour, the straightforward way (np.unique)."""
    keys, ok = point_keys(points, voxel)
    uniq, inv, counts = np.unique(keys[ok], return_inverse=True, return_counts=True)
    mean = np.zeros((len(uniq), 3))
    np.add.at(mean, inv, points[ok])
    col = np.zeros((len(uniq), 3))
    np.add.at(col, inv, colors[ok].astype(np.float64))
    return uniq, counts, mean / counts[:, None], col / counts[:, None]


def test_counts_and_means_match_a_straightforward_reference():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 0.5, (20_000, 3))
    col = rng.integers(0, 256, (20_000, 3)).astype(np.uint8)
    m = VoxelMap(0.05, capacity=16)  # grows (and rehashes) many times on the way
    for part in np.array_split(np.arange(len(pts)), 7):
        m.integrate(pts[part], col[part])
    keys, counts, mean, mcol = _reference(pts, col, 0.05)
    order = np.argsort(m.keys)
    np.testing.assert_array_equal(m.keys[order], keys)
    np.testing.assert_array_equal(m.counts[order], counts)
    np.testing.assert_allclose(m.positions[order], mean, atol=1e-5)
    np.testing.assert_allclose(m.colors[order], np.rint(mcol), atol=1)
    np.testing.assert_array_equal(key_cells(m.keys), m.cells)
    # every point finds its own voxel again
    rows = m.lookup(pts)
    np.testing.assert_array_equal(m.keys[rows], point_keys(pts, 0.05)[0])
    assert (m.lookup(np.array([[9.0, 9.0, 9.0]])) == -1).all()


def test_votes_add_up_and_the_strongest_labels_stay():
    m = VoxelMap(1.0, top_k=2)
    p = np.full((1, 3), 0.5)
    for label, w in ((3, 1.0), (3, 1.0), (4, 0.5), (5, 0.25), (6, 0.75), (0, 9.0)):
        m.integrate(p, labels=np.array([label]), weights=w)
    labels, weights = m.votes
    # 3 (2.0) and 4 (0.5) took the slots; 5 (0.25) could not push 4 out, 6 (0.75) did; label 0 never votes
    assert sorted(zip(labels[0].tolist(), weights[0].tolist())) == [(3, 2.0), (6, 0.75)]
    best, weight, share = m.best_labels()
    assert best.tolist() == [3] and weight.tolist() == [2.0] and share[0] == pytest.approx(2.0 / 2.75)
    assert m.counts.tolist() == [6]


def test_unlabelled_voxels_have_no_best_label():
    m = VoxelMap(0.1)
    m.integrate(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), labels=np.array([0, 7]))
    best, weight, share = m.best_labels()
    assert best.tolist() == [0, 7] and weight.tolist() == [0.0, 1.0] and share.tolist() == [0.0, 1.0]


def test_points_without_a_voxel_are_dropped_and_counted():
    m = VoxelMap(0.01)
    pts = np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0], [1e9, 0.0, 0.0], [0.0, np.inf, 0.0], [0.001, 0.002, 0.003]])
    r = m.integrate(pts)
    assert r.dropped_invalid == 3 and r.rows.tolist()[1:4] == [-1, -1, -1]
    assert len(m) == 1 and m.counts.tolist() == [2]
    with pytest.raises(ValueError, match='points must be'):
        m.integrate(np.zeros((4, 2)))
    with pytest.raises(ValueError, match='labels'):
        m.integrate(np.zeros((4, 3)), labels=np.zeros(3))


def test_max_voxels_bounds_the_map_and_keeps_updating_what_it_holds():
    m = VoxelMap(1.0, max_voxels=3)
    first = np.array([[0.5, 0, 0], [1.5, 0, 0], [2.5, 0, 0]])
    m.integrate(first)
    r = m.integrate(np.vstack([first, [[3.5, 0, 0], [4.5, 0, 0]]]))
    assert len(m) == 3 and r.new_voxels == 0 and r.dropped_full == 2
    assert m.counts.tolist() == [2, 2, 2] and r.rows.tolist() == [0, 1, 2, -1, -1]
    assert m.memory_bytes() <= 16 * m.bytes_per_voxel + 64 * 4  # never allocated past the bound (16 rows minimum)


def test_relabel_merges_the_votes_of_merged_labels():
    m = VoxelMap(1.0, top_k=3)
    p = np.full((1, 3), 0.5)
    for label, w in ((5, 1.0), (7, 2.0), (9, 0.5)):
        m.integrate(p, labels=np.array([label]), weights=w)
    m.relabel({7: 5})
    labels, weights = m.votes
    got = {(int(lab), float(w)) for lab, w in zip(labels[0], weights[0]) if w > 0}
    assert got == {(5, 3.0), (9, 0.5)}
    m.integrate(p, labels=np.array([5]), weights=1.0)  # goes to the merged slot, not a new one
    labels, weights = m.votes
    assert sorted(float(w) for w in weights[0] if w > 0) == [0.5, 4.0]


def test_memory_per_voxel_is_stated():
    m = VoxelMap(0.01, top_k=4)
    assert m.bytes_per_voxel == 72
    m.integrate(np.random.default_rng(1).uniform(0, 1, (50_000, 3)))
    # rows grow by doubling and the table stays at most half full: under 3x a row plus 16 B of table
    assert m.memory_bytes() < len(m) * (3 * m.bytes_per_voxel + 16)


def test_bad_parameters_are_refused():
    for kwargs in ({'voxel_size': 0}, {'voxel_size': float('nan')}, {'top_k': 0}, {'max_voxels': 0}):
        with pytest.raises(ValueError):
            VoxelMap(**kwargs)


def test_weaken_wears_votes_down_and_frees_their_slots():
    m = VoxelMap(1.0, top_k=2)
    pts = np.array([[0.5, 0.5, 0.5], [1.5, 0.5, 0.5]])
    m.integrate(pts, labels=np.array([3, 4]), weights=np.array([1.0, 0.25], np.float32))
    m.weaken(np.array([0, 1, -1]), 0.5)
    labels, weights = m.votes
    assert labels[:, 0].tolist() == [3, 0] and weights[:, 0].tolist() == [0.5, 0.0]
    m.integrate(pts[1:], labels=np.array([5]))  # the freed slot takes a new label
    assert m.best_labels()[0].tolist() == [3, 5]


def test_insert_then_accumulate_is_integrate_and_new_voxels_read_as_unlabelled():
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 0.3, (4000, 3))
    frame = np.repeat(rng.uniform(0, 0.4, (1500, 3)), 3, axis=0)  # runs of points in one voxel, as pixels give
    labels = rng.integers(0, 4, len(frame)).astype(np.int32)
    base_labels = rng.integers(1, 3, len(base))
    a, b = VoxelMap(0.02), VoxelMap(0.02)
    for m in (a, b):
        m.integrate(base, labels=base_labels)
    a.integrate(frame, np.random.default_rng(1).integers(0, 255, (len(frame), 3)), labels, 0.5)
    placed = b.insert(frame)
    before = b.best_labels(placed.rows)[0]
    known = b.lookup(frame)  # after insert: every point has its voxel now
    np.testing.assert_array_equal(known, placed.rows)
    fresh = placed.rows >= len(b) - placed.new_voxels
    assert fresh.any() and (before[fresh] == 0).all() and (b.counts[placed.rows[fresh]] == 0).all()
    b.accumulate(placed.rows, frame, np.random.default_rng(1).integers(0, 255, (len(frame), 3)), labels, 0.5)
    for x, y in ((a.keys, b.keys), (a.positions, b.positions), (a.counts, b.counts), (a.votes[0], b.votes[0]),
                 (a.votes[1], b.votes[1]), (a.colors, b.colors)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError):
        b.accumulate(placed.rows[:10], frame)
    with pytest.raises(ValueError):
        b.accumulate(placed.rows + len(b), frame)


def test_a_full_map_counts_every_refused_point_even_in_runs():
    m = VoxelMap(0.1, max_voxels=2)
    pts = np.array([[0.05, 0, 0], [0.15, 0, 0], [0.95, 0, 0], [0.96, 0, 0], [0.97, 0, 0], [0.06, 0, 0]])
    r = m.integrate(pts)
    assert len(m) == 2 and r.dropped_full == 3 and r.rows.tolist() == [0, 1, -1, -1, -1, 0]


def test_background_adds_up_per_point_and_survives_growth():
    m = VoxelMap(0.1, capacity=16)
    m.integrate(np.array([[0.05, 0, 0], [0.15, 0, 0]]))
    m.add_background(np.array([0, 0, -1, 1]))
    m.add_background(np.array([1]), 0.5)
    np.testing.assert_array_equal(m.background, [2.0, 1.5])
    m.integrate(np.random.default_rng(0).uniform(1, 9, (5000, 3)))  # the rows are reallocated
    assert m.background[:2].tolist() == [2.0, 1.5] and not m.background[2:].any()


def test_weaken_unlabelled_is_weaken_and_background_of_the_unlabelled_points_not_skipped():
    m = VoxelMap(0.1)
    m.integrate(np.array([[0.05, 0, 0], [0.15, 0, 0], [0.25, 0, 0]]), labels=np.array([3, 4, 3]), weights=1.0)
    rows = np.array([0, 0, 1, 2, 2, -1])
    labels = np.array([0, 7, 0, 0, 0, 0])  # the second point has a label: no evidence against its voxel
    held = np.array([3, 3, 4, 3, 3, 0])
    skip = np.zeros(8, bool)
    skip[4] = True  # e.g. an instance the frame missed
    m.weaken_unlabelled(rows, labels, held, skip, 0.25, 1.0)
    assert m.votes[1][:, 0].tolist() == [0.75, 1.0, 0.5]
    assert m.background.tolist() == [1.0, 0.0, 2.0]
    m.weaken_unlabelled(rows[:1], labels[:1], held[:1], skip, 0.0, 0.0)  # nothing at all
    assert m.votes[1][0, 0] == 0.75 and m.background[0] == 1.0
    with pytest.raises(ValueError):
        m.weaken_unlabelled(rows, labels[:2], held, skip, 0.1)
    with pytest.raises(ValueError):  # a row past the map's: the kernel would write outside it
        m.weaken_unlabelled(rows + 3, labels, held, skip, 0.1)
    with pytest.raises(ValueError):
        m.add_background(np.array([3]))


def test_pieces_are_touching_voxels_of_one_label():
    m = VoxelMap(0.1)
    # label 1: a row of three voxels and, apart, a diagonal pair (26-neighbours); label 2 touches label 1's row
    cells = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [5, 5, 5], [6, 6, 6], [3, 0, 0], [9, 9, 9]])
    m.integrate((cells + 0.5) * 0.1)
    labels = np.array([1, 1, 1, 1, 1, 2, 0], np.int32)
    piece = m.pieces(labels)
    assert piece.tolist() == [0, 0, 0, 3, 3, 5, -1]
    with pytest.raises(ValueError):
        m.pieces(labels[:3])


def test_rows_grow_with_the_new_voxels_not_with_the_points():
    rng = np.random.default_rng(3)
    grown, roomy = VoxelMap(0.01, capacity=16), VoxelMap(0.01, capacity=1 << 20)
    for _ in range(6):  # each batch: mostly voxels seen before, some new ones, runs of points per voxel
        pts = np.repeat(rng.uniform(0, 0.6, (20000, 3)), 4, axis=0)
        a, b = grown.integrate(pts), roomy.integrate(pts)
        np.testing.assert_array_equal(a.rows, b.rows)  # growing mid-frame gives the rows a roomy map gives
        assert a.new_voxels == b.new_voxels and a.dropped_full == 0
    np.testing.assert_array_equal(grown.keys, roomy.keys)
    np.testing.assert_array_equal(grown.counts, roomy.counts)
    assert len(grown) <= grown.capacity <= 1.5 * len(grown) + 16  # not a frame's worth of points per call
    assert grown.memory_bytes() <= grown.capacity * (grown.bytes_per_voxel + 16)  # rows + the hash table


def test_keep_drops_voxels_and_the_rest_are_found_unchanged():
    rng = np.random.default_rng(5)
    m = VoxelMap(0.05)
    pts = rng.uniform(-1, 1, (5000, 3))
    m.integrate(pts, rng.integers(0, 255, (5000, 3)), rng.integers(0, 4, 5000).astype(np.int32))
    near = np.linalg.norm(m.positions, axis=1) < 0.6
    before = {k: (tuple(p), c, tuple(lab)) for k, p, c, lab in zip(m.keys[near], m.positions[near], m.counts[near],
                                                                     m.votes[0][near])}
    assert m.keep(near) == (~near).sum() and len(m) == near.sum()
    after = {k: (tuple(p), c, tuple(lab)) for k, p, c, lab in zip(m.keys, m.positions, m.counts, m.votes[0])}
    assert after == before
    # the hash table follows: kept voxels are found, dropped ones are not, and a new point adds a voxel
    inside = pts[np.linalg.norm(pts, axis=1) < 0.5]
    assert (m.lookup(inside) >= 0).all()
    far = pts[np.linalg.norm(pts, axis=1) > 0.8]
    assert (m.lookup(far) == -1).all()
    r = m.integrate(far[:1])
    assert r.new_voxels == 1 and m.lookup(far[:1])[0] == len(m) - 1
    with pytest.raises(ValueError):
        m.keep(np.ones(3, bool))
