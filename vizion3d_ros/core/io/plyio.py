"""Binary PLY writing and reading for point clouds with colour and per-point integer properties.

Written with numpy structured arrays (one write per file, no per-point loop), readable by Open3D,
MeshLab, CloudCompare and Blender.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

_PLY_TYPES = {'f4': 'float', 'u1': 'uchar', 'i4': 'int', 'u4': 'uint', 'f8': 'double', 'i2': 'short',
              'u2': 'ushort', 'i1': 'char'}
_NP_TYPES = {v: k for k, v in _PLY_TYPES.items()} | {'float32': 'f4', 'uint8': 'u1', 'int32': 'i4',
                                                      'uint32': 'u4', 'float64': 'f8'}


def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray | None = None,
              extra: dict[str, np.ndarray] | None = None) -> None:
    """Write points ``(N, 3)``, optional colours ``(N, 3)`` uint8 and extra per-point columns."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    n = len(xyz)
    fields: list[tuple[str, str]] = [('x', '<f4'), ('y', '<f4'), ('z', '<f4')]
    if rgb is not None:
        fields += [('red', 'u1'), ('green', 'u1'), ('blue', 'u1')]
    extra = extra or {}
    for name, col in extra.items():
        fields.append((name, '<' + np.asarray(col).dtype.str[1:]))
    data = np.empty(n, dtype=fields)
    data['x'], data['y'], data['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if rgb is not None:
        rgb = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
        data['red'], data['green'], data['blue'] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    for name, col in extra.items():
        data[name] = col
    header = ['ply', 'format binary_little_endian 1.0', f'element vertex {n}']
    header += [f'property {_PLY_TYPES[np.dtype(t).str[1:]]} {name}' for name, t in fields]
    header.append('end_header')
    with open(path, 'wb') as f:
        f.write(('\n'.join(header) + '\n').encode('ascii'))
        f.write(data.tobytes())


def read_ply(path: str | Path) -> np.ndarray:
    """Read a binary little-endian vertex-only PLY (as written by :func:`write_ply`) into a record array."""
    with open(path, 'rb') as f:
        if f.readline().strip() != b'ply':
            raise ValueError(f'{path}: not a PLY file')
        n, fields = 0, []
        while True:
            line = f.readline()
            if not line:
                raise ValueError(f'{path}: truncated PLY header')
            words = line.decode('ascii').split()
            if words[:1] == ['format'] and words[1] != 'binary_little_endian':
                raise ValueError(f'{path}: only binary_little_endian PLY is supported, got {words[1]}')
            if words[:2] == ['element', 'vertex']:
                n = int(words[2])
            elif words[:1] == ['property']:
                fields.append((words[2], '<' + _NP_TYPES[words[1]]))
            elif words[:1] == ['end_header']:
                break
        return np.frombuffer(f.read(), dtype=fields, count=n)
