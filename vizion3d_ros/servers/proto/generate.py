"""Generate ``lifting_pb2.py`` and ``lifting_pb2_grpc.py`` from ``lifting.proto`` (``make proto``).

Runs grpcio-tools' protoc, then makes the gRPC module import its messages relative to this package
(protoc writes a top-level ``import lifting_pb2``). ``python -m vizion3d_ros.servers.proto.generate [OUT]``
writes into OUT (default: beside the ``.proto``).
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / 'lifting.proto'
OUTPUTS = ('lifting_pb2.py', 'lifting_pb2_grpc.py')


def generate(out_dir: Path = HERE) -> list[Path]:
    """Write the generated modules into ``out_dir``; returns their paths. Raises RuntimeError when protoc fails."""
    from grpc_tools import protoc

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).resolve().parent / '_proto'
    code = protoc.main(['grpc_tools.protoc', f'-I{HERE}', f'-I{include}', f'--python_out={out_dir}',
                        f'--grpc_python_out={out_dir}', str(PROTO)])
    if code != 0:
        raise RuntimeError(f'protoc failed on {PROTO} (exit {code})')
    grpc_module = out_dir / OUTPUTS[1]
    text = grpc_module.read_text()
    grpc_module.write_text(text.replace('\nimport lifting_pb2 as', '\nfrom . import lifting_pb2 as'))
    return [out_dir / name for name in OUTPUTS]


def main(argv: list[str] | None = None) -> int:
    """Command line: the output folder is the optional argument."""
    argv = sys.argv[1:] if argv is None else argv
    for path in generate(Path(argv[0]) if argv else HERE):
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
