"""Where model checkpoints come from: a local path, or a URL downloaded once into a cache folder."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

#: The vizion3D release checkpoint used when no model is given.
DEFAULT_MODEL_URL = 'https://github.com/OlafenwaMoses/vizion3D/releases/download/essentials-v1/yolo26l-seg.pt'

#: Known checksums (sha256) of downloadable checkpoints, checked after download when present.
KNOWN_SHA256: dict[str, str] = {}

_HOW_TO = ('pass a local checkpoint instead, e.g. `--ros-args -p model:=/path/to/yolov8n-seg.pt` '
           'for the node or `--model PATH` for the command-line tools')


class ModelUnavailableError(RuntimeError):
    """The model could not be found locally nor downloaded; the message says what to do."""


def model_cache_dir() -> Path:
    """``$VIZION3D_MODEL_CACHE`` if set, else ``~/.cache/vizion3d/models``."""
    env = os.environ.get('VIZION3D_MODEL_CACHE')
    return Path(env).expanduser() if env else Path.home() / '.cache' / 'vizion3d' / 'models'


def is_url(spec: str) -> bool:
    """True for http(s) URLs."""
    return urlparse(spec).scheme in ('http', 'https')


def resolve_model(spec: str | os.PathLike | None, cache_dir: Path | None = None,
                  timeout_s: float = 30.0) -> Path:
    """Return a local file for ``spec`` (path or URL; None or '' means the default model).

    URLs are downloaded once into the cache folder (atomically: a partial download never looks like
    a model) and served from there afterwards. Raises :class:`ModelUnavailableError` with a clear
    message when the file is missing or the download fails.
    """
    spec = str(spec) if spec else DEFAULT_MODEL_URL
    if not is_url(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ModelUnavailableError(f'model file {str(path)!r} does not exist; {_HOW_TO}')
        return path
    cache = Path(cache_dir) if cache_dir else model_cache_dir()
    name = Path(urlparse(spec).path).name or 'model.pt'
    target = cache / name
    if target.is_file():
        return target
    _download(spec, target, timeout_s)
    return target


def _download(url: str, target: Path, timeout_s: float) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.', suffix='.part')
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
        expected = KNOWN_SHA256.get(target.name)
        if expected and digest.hexdigest() != expected:
            raise ModelUnavailableError(f'checksum mismatch for {url}: got {digest.hexdigest()}, '
                                        f'expected {expected}')
        shutil.move(tmp, target)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise ModelUnavailableError(
            f'model {url} is not in the cache ({target}) and could not be downloaded ({exc}); '
            f'{_HOW_TO}') from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
