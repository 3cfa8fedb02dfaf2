"""label_extents: per-label count, centroid and box, as numpy's bincount / minimum.at give them."""
from __future__ import annotations

import numpy as np

from vizion3d_ros.core.fusion.extents import label_extents


def test_extents_match_numpy_and_skip_label_zero_and_labels_out_of_range():
    rng = np.random.default_rng(0)
    pos = rng.uniform(-3, 3, (5000, 3)).astype(np.float32)
    labels = rng.integers(0, 9, 5000)
    labels[:10] = 50  # beyond num_labels: skipped
    ext = label_extents(labels, pos, 8)
    for lab in range(1, 8):
        sel = labels == lab
        assert ext.count[lab] == sel.sum()
        np.testing.assert_allclose(ext.centroid[lab], pos[sel].astype(np.float64).mean(axis=0), rtol=1e-9)
        np.testing.assert_array_equal(ext.low[lab], pos[sel].min(axis=0))
        np.testing.assert_array_equal(ext.high[lab], pos[sel].max(axis=0))
    assert ext.count[0] == 0 and not ext.centroid[0].any() and not ext.low[0].any()


def test_a_label_without_voxels_has_zero_extents():
    ext = label_extents(np.array([2, 2], np.int64), np.array([[1, 2, 3], [3, 2, 1]], np.float32), 4)
    assert ext.count.tolist() == [0, 0, 2, 0]
    assert ext.centroid[2].tolist() == [2, 2, 2] and ext.low[2].tolist() == [1, 2, 1]
    assert not ext.high[1].any() and not ext.high[3].any()
