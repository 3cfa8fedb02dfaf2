import numpy as np
import pytest

from vizion3d_ros.core.io.plyio import read_ply, write_ply


def test_round_trip_with_colour_and_extra_properties(tmp_path, rng):
    xyz = rng.normal(size=(500, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(500, 3), dtype=np.uint8)
    ids = rng.integers(-1, 5, size=500).astype(np.int32)
    write_ply(tmp_path / 'c.ply', xyz, rgb, extra={'instance_id': ids})
    data = read_ply(tmp_path / 'c.ply')
    np.testing.assert_array_equal(np.c_[data['x'], data['y'], data['z']], xyz)
    np.testing.assert_array_equal(np.c_[data['red'], data['green'], data['blue']], rgb)
    np.testing.assert_array_equal(data['instance_id'], ids)


def test_open3d_reads_what_we_write(tmp_path, rng):
    o3d = pytest.importorskip('open3d')
    xyz = rng.normal(size=(100, 3)).astype(np.float32)
    rgb = np.tile(np.array([[255, 0, 0]], np.uint8), (100, 1))
    write_ply(tmp_path / 'o.ply', xyz, rgb)
    pc = o3d.io.read_point_cloud(str(tmp_path / 'o.ply'))
    np.testing.assert_allclose(np.asarray(pc.points), xyz, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pc.colors), rgb / 255.0)


def test_rejects_non_ply(tmp_path):
    (tmp_path / 'x.ply').write_text('hello')
    with pytest.raises(ValueError, match='not a PLY'):
        read_ply(tmp_path / 'x.ply')
