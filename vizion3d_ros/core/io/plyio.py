"""PLY writing and reading for point clouds with colour and per-point integer properties.

Written binary with numpy structured arrays (one write per file, no per-point loop), readable by Open3D,
MeshLab, CloudCompare and Blender. Read from files or bytes (an upload), ASCII or binary, with every size
checked against the data before anything is allocated: see :func:`parse_ply`.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_PLY_TYPES = {'f4': 'float', 'u1': 'uchar', 'i4': 'int', 'u4': 'uint', 'f8': 'double', 'i2': 'short',
              'u2': 'ushort', 'i1': 'char'}
_NP_TYPES = {v: k for k, v in _PLY_TYPES.items()} | {'float32': 'f4', 'uint8': 'u1', 'int32': 'i4',
                                                      'uint32': 'u4', 'float64': 'f8'}


def ply_bytes(xyz: np.ndarray, rgb: np.ndarray | None = None,
              extra: dict[str, np.ndarray] | None = None) -> bytes:
    """A binary little-endian PLY of points ``(N, 3)``, optional colours ``(N, 3)`` uint8 and extra columns."""
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
    return ('\n'.join(header) + '\n').encode('ascii') + data.tobytes()


def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray | None = None,
              extra: dict[str, np.ndarray] | None = None) -> None:
    """Write points ``(N, 3)``, optional colours ``(N, 3)`` uint8 and extra per-point columns."""
    with open(path, 'wb') as f:
        f.write(ply_bytes(xyz, rgb, extra))


def read_ply(path: str | Path) -> np.ndarray:
    """Read the vertices of a PLY file (binary or ASCII, as :func:`parse_ply`) into a record array."""
    try:
        return parse_ply(Path(path).read_bytes())
    except PlyError as exc:
        raise PlyError(f'{path}: {exc}') from None


class PlyError(ValueError):
    """Data that is not a readable PLY (or not one this reader supports); the message says why."""


@dataclass(frozen=True)
class PlyElement:
    """One ``element`` of a PLY header: its count and its ``(name, numpy type)`` scalar properties."""

    name: str
    count: int
    properties: tuple[tuple[str, str], ...]
    #: Names of its list properties (faces' ``vertex_indices``, ...), which have no fixed size.
    lists: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlyHeader:
    """A parsed PLY header: its format, its elements in file order, and where the data starts.

    ``format`` is ``ascii``, ``binary_little_endian`` or ``binary_big_endian``; ``size`` is the header's
    length in bytes.
    """

    format: str
    elements: tuple[PlyElement, ...]
    size: int

    def element(self, name: str) -> PlyElement | None:
        """The element called ``name``, or None."""
        return next((e for e in self.elements if e.name == name), None)


_FORMATS = ('ascii', 'binary_little_endian', 'binary_big_endian')
#: PLY's alternative type names (``int8``, ``float32``, ...) besides the classic ones.
_TYPE_ALIASES = {'int8': 'i1', 'uint8': 'u1', 'int16': 'i2', 'uint16': 'u2', 'int32': 'i4', 'uint32': 'u4',
                 'float32': 'f4', 'float64': 'f8'}
#: No real header is longer; bounds the search for ``end_header`` in data that is not a PLY.
MAX_HEADER_BYTES = 1 << 20


def is_ply(data: bytes | memoryview) -> bool:
    """True when ``data`` starts with the PLY magic line (``ply`` and a line end)."""
    return bytes(data[:5]).startswith((b'ply\n', b'ply\r\n', b'ply\r'))


def parse_ply_header(data: bytes | memoryview) -> PlyHeader:
    """Parse the header at the start of ``data``; raises :class:`PlyError` when it is not a valid PLY header."""
    if not is_ply(data):
        raise PlyError('not a PLY file (it must start with a "ply" line)')
    head = bytes(data[:MAX_HEADER_BYTES])
    end = head.find(b'end_header')
    if end < 0:
        raise PlyError('truncated PLY header (no end_header line'
                       + (f' in the first {MAX_HEADER_BYTES >> 10} KiB)' if len(head) == MAX_HEADER_BYTES else ')'))
    newline = head.find(b'\n', end)
    size = len(head) if newline < 0 else newline + 1
    try:
        lines = head[:end].decode('ascii').splitlines()[1:]
    except UnicodeDecodeError:
        raise PlyError('the PLY header is not ASCII text') from None
    fmt = None
    elements: list[dict] = []
    for number, line in enumerate(lines, start=2):
        words = line.split()
        if not words or words[0] in ('comment', 'obj_info'):
            continue
        if words[0] == 'format':
            if len(words) < 2 or words[1] not in _FORMATS:
                raise PlyError(f'header line {number}: unknown PLY format {line.strip()!r}; expected one of {_FORMATS}')
            fmt = words[1]
        elif words[0] == 'element':
            if len(words) != 3 or not words[2].isdigit():
                raise PlyError(f'header line {number}: expected "element NAME COUNT", got {line.strip()!r}')
            elements.append({'name': words[1], 'count': int(words[2]), 'properties': [], 'lists': []})
        elif words[0] == 'property':
            if not elements:
                raise PlyError(f'header line {number}: property before any element')
            if len(words) == 5 and words[1] == 'list':
                elements[-1]['lists'].append(words[4])
                continue
            if len(words) != 3 or _np_type(words[1]) is None:
                raise PlyError(f'header line {number}: expected "property TYPE NAME" with a PLY type, '
                               f'got {line.strip()!r}')
            elements[-1]['properties'].append((words[2], _np_type(words[1])))
        else:
            raise PlyError(f'header line {number}: unexpected {line.strip()!r}')
    if fmt is None:
        raise PlyError('the PLY header has no format line')
    return PlyHeader(format=fmt, size=size, elements=tuple(
        PlyElement(e['name'], e['count'], tuple(e['properties']), tuple(e['lists'])) for e in elements))


def parse_ply(data: bytes | memoryview, element: str = 'vertex', header: PlyHeader | None = None) -> np.ndarray:
    """The ``element`` (default the vertices) of PLY ``data`` as a record array, one field per property.

    Reads ASCII and binary (little- and big-endian) PLYs, whatever other elements (faces, ...) they hold,
    except binary files whose elements before this one have list properties. Sizes are checked against
    the data before anything is allocated, so a header that declares more than the data holds is an
    error, not an allocation. Raises :class:`PlyError` with the reason.
    """
    header = header or parse_ply_header(data)
    target = header.element(element)
    if target is None:
        raise PlyError(f'the PLY has no {element!r} element')
    if target.lists:
        raise PlyError(f'the {element!r} element has list properties ({", ".join(target.lists)}), '
                       'which this reader does not support')
    before = header.elements[:header.elements.index(target)]
    body = memoryview(data)[header.size:]
    if header.format == 'ascii':
        return _parse_ascii(body, target, sum(e.count for e in before))
    order = '<' if header.format == 'binary_little_endian' else '>'
    offset = 0
    for e in before:
        if e.lists:
            raise PlyError(f'element {e.name!r} before {element!r} has list properties: binary PLYs with '
                           f'{element!r} after such an element are not supported')
        offset += e.count * np.dtype([(n, order + t) for n, t in e.properties]).itemsize
    dtype = np.dtype([(n, order + t) for n, t in target.properties])
    need = offset + target.count * dtype.itemsize
    if need > len(body):
        raise PlyError(f'truncated PLY: the header declares {target.count} {element} records of {dtype.itemsize} '
                       f'bytes ({need} bytes of data), but only {len(body)} bytes follow the header')
    return np.frombuffer(body, dtype=dtype, count=target.count, offset=offset)


def _np_type(ply_type: str) -> str | None:
    return _NP_TYPES.get(ply_type) if ply_type in _PLY_TYPES.values() else _TYPE_ALIASES.get(ply_type)


def _parse_ascii(body: memoryview, target: PlyElement, skip: int) -> np.ndarray:
    """The element's lines after ``skip`` lines of earlier elements (numpy's C text reader: ~1 s per million)."""
    width = len(target.properties)
    out = np.empty(target.count, dtype=[(n, t) for n, t in target.properties])
    if target.count == 0:
        return out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # "input contained no data" is reported below, with the counts
            table = np.loadtxt(io.BytesIO(body), dtype=np.float64, ndmin=2, comments=None, skiprows=skip,
                               max_rows=target.count)
    except ValueError as exc:
        raise PlyError(f'unreadable {target.name} data: {str(exc).split("; use")[0]}') from None
    if len(table) < target.count:
        raise PlyError(f'truncated PLY: the header declares {target.count} {target.name} lines, '
                       f'only {len(table)} follow')
    if table.shape[1] != width:
        raise PlyError(f'{target.name} lines hold {table.shape[1]} values for {width} properties')
    for j, (name, t) in enumerate(target.properties):
        col = table[:, j]
        if np.dtype(t).kind in 'iu' and not np.isfinite(col).all():
            raise PlyError(f'integer property {name!r} holds NaN or infinite values')
        out[name] = col
    return out
