"""The compiled kernels (vizion3d_ros.core.jit): warmed before any frame, cached on disk wherever installed."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from vizion3d_ros.core import jit
from vizion3d_ros.core.lifting.lift import lift_masks
from vizion3d_ros.core.pipeline import FramePipeline
from vizion3d_ros.core.segmentation.base import Segmentation
from vizion3d_ros.core.synthetic.scenes import (
    DEFAULT_CAMERA,
    camera_cloud,
    dilate_masks,
    instance_masks,
    random_scene,
    render_camera,
)

PACKAGE = Path(jit.__file__).resolve().parents[1]


def _signatures():
    return {k.__name__: list(k.dispatcher.signatures) for k in jit.KERNELS}


def test_warm_kernels_compiles_every_kernel_once():
    jit.warm_kernels()
    assert {k.__name__ for k in jit.KERNELS} >= {'_keep_connected', '_creased'}
    assert all(len(s) == 1 for s in _signatures().values()), _signatures()
    jit.warm_kernels()  # idempotent
    assert jit.compiled_signatures() == len(jit.KERNELS)


class _Backend:
    name = 'fixed'

    def __init__(self, seg):
        self.seg = seg

    def segment(self, image_rgb):
        return self.seg


def test_a_warmed_pipeline_compiles_nothing_on_its_first_frames():
    scene = random_scene(np.random.default_rng(4), num_objects=5)
    _, ids = render_camera(scene, DEFAULT_CAMERA)
    masks = dilate_masks(instance_masks(ids, scene.num_objects), 4)
    k = len(masks)
    seg = Segmentation(masks=masks, boxes=np.zeros((k, 4), np.float32) + [0, 0, 639, 479],
                       scores=np.linspace(0.9, 0.5, k).astype(np.float32), class_ids=np.zeros(k, np.int32),
                       labels=['thing'] * k)
    pipeline = FramePipeline(_Backend(seg))  # warms the kernels
    try:
        before = _signatures()
        assert all(before.values())
        image = np.zeros((DEFAULT_CAMERA.height, DEFAULT_CAMERA.width, 3), np.uint8)
        for noise in (0.0, 0.0015):
            pts, _ = camera_cloud(scene, DEFAULT_CAMERA, noise_std=noise, rng=np.random.default_rng(1))
            pts.flags.writeable = False  # as from a message buffer
            result = pipeline.process(image, DEFAULT_CAMERA, pts)
            assert result.objects
        # and the bare lifting with masks that are views of another array
        lift_masks(pts, DEFAULT_CAMERA, np.concatenate([masks, masks])[::2], seg.scores)
        assert _signatures() == before
    finally:
        pipeline.close()


_PROBE = '''
import json, sys
from vizion3d_ros.core import jit
{patch}
jit.warm_kernels()
stats = {{k.__name__: k.dispatcher.stats for k in jit.KERNELS}}
print(json.dumps({{n: [sum(s.cache_hits.values()), sum(s.cache_misses.values())] for n, s in stats.items()}}))
'''


def _probe(site: Path, home: Path, patch: str = '', cache_dir: Path | None = None) -> dict:
    """Warm the kernels in a fresh process importing the package from ``site``: cache hits, misses per kernel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('NUMBA_')}
    env.update(PYTHONPATH=str(site), HOME=str(home), XDG_CACHE_HOME=str(home / '.cache'))
    if cache_dir is not None:
        env['NUMBA_CACHE_DIR'] = str(cache_dir)
    out = subprocess.run([sys.executable, '-c', _PROBE.format(patch=patch)], env=env, cwd=str(home),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _symlinked_copy(dst: Path) -> Path:
    """The package as ``colcon build --symlink-install`` lays it: real folders, every file a symlink."""
    for src in PACKAGE.rglob('*.py'):
        target = dst / 'vizion3d_ros' / src.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(src)
    return dst


def _hit_every_kernel(stats: dict) -> bool:
    return all(hits >= 1 and misses == 0 for hits, misses in stats.values())


def test_kernels_are_cached_next_to_a_symlinked_install(tmp_path):
    site = _symlinked_copy(tmp_path / 'site')
    home = tmp_path / 'home'
    home.mkdir()
    first = _probe(site, home)
    assert all(misses >= 1 for _, misses in first.values()), first  # compiled
    # each kernel's cache lies beside its module (core/lifting/__pycache__ for all of them today)
    cached = sorted(p.name for p in (site / 'vizion3d_ros' / 'core').rglob('__pycache__/*.nbi'))
    assert len(cached) == len(first), cached
    assert _hit_every_kernel(_probe(site, home))  # the second process start loads them


def test_a_read_only_install_caches_in_the_user_wide_folder_or_numba_cache_dir(tmp_path):
    site = tmp_path / 'site'
    shutil.copytree(PACKAGE, site / 'vizion3d_ros', ignore=shutil.ignore_patterns('__pycache__'))
    home = tmp_path / 'home'
    home.mkdir()
    # root may write anywhere, so the read-only source folder is numba's in-tree locator refusing it
    read_only = ('from numba.core import caching\n'
                 'def _refuse(self): raise PermissionError("read-only")\n'
                 'caching.InTreeCacheLocator.ensure_cache_path = _refuse')
    assert not _hit_every_kernel(_probe(site, home, read_only))
    assert list((home / '.cache' / 'numba').rglob('*.nbi'))
    assert _hit_every_kernel(_probe(site, home, read_only))
    assert not list(site.rglob('*.nbi'))
    # NUMBA_CACHE_DIR comes first when set
    chosen = tmp_path / 'numba-cache'
    assert not _hit_every_kernel(_probe(site, home, read_only, chosen))
    assert list(chosen.rglob('*.nbi'))
    assert _hit_every_kernel(_probe(site, home, read_only, chosen))


def test_without_any_writable_cache_the_kernels_still_compile(tmp_path):
    site = tmp_path / 'site'
    shutil.copytree(PACKAGE, site / 'vizion3d_ros', ignore=shutil.ignore_patterns('__pycache__'))
    home = tmp_path / 'home'
    home.mkdir()
    nowhere = ('from numba.core import caching\n'
               'for c in caching.CacheImpl._locator_classes:\n'
               '    c.from_function = classmethod(lambda cls, *a: None)')
    stats = _probe(site, home, nowhere)
    assert all(hits == 0 for hits, _ in stats.values())
