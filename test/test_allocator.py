"""glibc allocator tuning of the node process (vizion3d_ros.ros.allocator), checked in child processes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

# glibc's mallinfo2().hblks counts the blocks served by mmap: a VGA cloud's 4.9 MB buffer is one by default
CHECK = """
import ctypes
from vizion3d_ros.ros.allocator import keep_large_buffers

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
                                                'fsmblks', 'uordblks', 'fordblks', 'keepcost')]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
tuned = keep_large_buffers()
before = libc.mallinfo2().hblks
buf = bytearray(640 * 480 * 16)
print(tuned, libc.mallinfo2().hblks - before)
"""


def _run(**env: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, '-c', CHECK], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, **env))
    assert out.returncode == 0, out.stderr
    tuned, mmapped = out.stdout.split()
    return tuned, int(mmapped)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc only')
def test_a_vga_cloud_buffer_comes_from_the_heap_once_tuned():
    assert _run() == ('True', 0)
    assert _run(VIZION3D_MALLOC_TUNING='0') == ('False', 1), 'glibc mmaps it by default'
