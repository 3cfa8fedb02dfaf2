"""What the server tests share: a server process on a free port, the TUM inputs, the Python API's answer.

Real data: the TUM frame as a PLY in OpenGL space (NaN where the depth is missing, in the frame's pixel
order) and the shared COCO checkpoint; results are compared with the Python API run here on the same files.
"""
from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import TUM

from vizion3d_ros.core.api import ObjectMaskAnnotation3D, ObjectMaskAnnotation3DCommand, ObjectMaskAnnotation3DConfig
from vizion3d_ros.core.camera.frames import optical_to_gl
from vizion3d_ros.core.io.plyio import ply_bytes, read_ply
from vizion3d_ros.core.io.rgbd import depth_to_points_optical

XYZ_HEAD = ('ply\nformat ascii 1.0\nelement vertex {n}\nproperty float x\nproperty float y\nproperty float z\n'
            'end_header\n')
BEHIND = ply_bytes(np.array([[0.0, 0.0, 2.0], [0.1, 0.0, 2.0], [0.0, 0.1, 2.5]]))  # z > 0: behind an OpenGL camera


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server command (``exe``) on a free port of 127.0.0.1, on the CPU; its output goes to ``log``."""

    def __init__(self, exe: str | None, tmp: Path, *args: str) -> None:
        assert exe, 'the server command is not on PATH: run scripts/setup.sh and source scripts/env.sh'
        self.port = free_port()
        self.closing: list = []  # clients and channels that stop() closes
        self.log = tmp / f'server_{self.port}.log'
        with open(self.log, 'wb') as out:
            self.proc = subprocess.Popen([exe, '--host', '127.0.0.1', '--port', str(self.port), '--device', 'cpu',
                                          *args], stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors='replace')

    def wait_until(self, probe: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
        """Until ``probe()`` is true (exceptions count as false); fails when the server exits or it takes too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f'the server exited with {self.proc.returncode}:\n{self.output()}'
            try:
                if probe():
                    return
            except Exception:
                pass
            time.sleep(0.3)
        pytest.fail(f'the server was not {what} after {timeout} s:\n{self.output()}')

    def stop(self) -> None:
        for client in self.closing:
            client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def usage_error(exe: str | None, *args: str) -> str:
    """The error that the server command prints for a bad command line (it must exit with 2 at once)."""
    assert exe, 'the server command is not on PATH'
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    return proc.stderr


def make_inputs(tum_frame, folder: Path) -> dict:
    """The TUM frame's organised cloud as a binary PLY in OpenGL space, its colour PNG, and a 1/16 subsample."""
    gl = optical_to_gl(depth_to_points_optical(tum_frame.depth, tum_frame.camera))
    colors = tum_frame.color.reshape(-1, 3)
    (folder / 'tum.ply').write_bytes(ply_bytes(gl, colors))
    (folder / 'small.ply').write_bytes(ply_bytes(gl[::16], colors[::16]))
    return {'ply': folder / 'tum.ply', 'small_ply': folder / 'small.ply', 'png': TUM / 'color.png',
            'camera': tum_frame.camera, 'folder': folder}


def api_run(ply: Path, image: Path | None, model_pt: Path, **config):
    """The Python API on the same files, as a vizion3D user would call it."""
    table = read_ply(ply)
    points = np.c_[table['x'], table['y'], table['z']].astype(np.float64)
    colors = np.c_[table['red'], table['green'], table['blue']]
    command = ObjectMaskAnnotation3DCommand(
        point_cloud=points, colors=colors, image_input=None if image is None else image.read_bytes(),
        model_backend=str(model_pt), advanced_config=ObjectMaskAnnotation3DConfig(device='cpu', **config),
        output_format='numpy')
    return points, ObjectMaskAnnotation3D().run(command)


def assert_same_annotations(got: list[dict], reference, points: np.ndarray) -> None:
    """Annotations of a response (decoded: ``mask`` an image, indices and coordinates arrays) against the API's."""
    want = reference.annotations
    assert [(a['label'], a['class_id']) for a in got] == [(a.label, a.class_id) for a in want]
    assert len(got) >= 3
    for a, ref in zip(got, want):
        assert a['confidence'] == pytest.approx(ref.confidence, abs=1e-4)
        np.testing.assert_allclose(a['bbox_2d'], ref.bbox_2d, atol=0.05)
        np.testing.assert_array_equal(a['point_indices'], ref.point_indices)
        coords = np.asarray(a['point_coords'], dtype=np.float64).reshape(-1, 3)
        np.testing.assert_array_equal(coords, points[np.asarray(a['point_indices'], dtype=np.int64)])
        mask = a['mask']
        assert mask.dtype == np.uint8 and mask.shape == ref.mask_2d.shape
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask == 255, ref.mask_2d)


def huge_png(png: bytes) -> bytes:
    """``png`` with an IHDR that declares 100000 x 100000 pixels."""
    out = bytearray(png)
    out[16:24] = (100_000).to_bytes(4, 'big') * 2
    return bytes(out)
