"""Where model checkpoints come from: a local path, or a URL downloaded once into a cache folder."""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TextIO
from urllib.parse import urlparse

#: The vizion3D release checkpoint used when no model is given.
DEFAULT_MODEL_URL = 'https://github.com/OlafenwaMoses/vizion3D/releases/download/essentials-v1/yolo26l-seg.pt'

#: Known checksums (sha256) of downloadable checkpoints, checked after download when present.
KNOWN_SHA256: dict[str, str] = {}

#: What to do about a missing model, ending every :class:`ModelUnavailableError` message of this module (it
#: names the node's and the command-line tools' options; a program with other options may replace it).
MODEL_ADVICE = ('pass a local checkpoint instead, e.g. `--ros-args -p model:=/path/to/yolov8n-seg.pt` '
                'for the node or `--model PATH` for the command-line tools')


#: Called as ``progress(bytes_done, total_bytes_or_None)`` while a model downloads.
ProgressCallback = Callable[[int, int | None], None]


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
                  timeout_s: float = 30.0, progress: ProgressCallback | None = None) -> Path:
    """Return a local file for ``spec`` (path or URL; None or '' means the default model).

    URLs are downloaded once into the cache folder (atomically: a partial download never looks like
    a model) and served from there afterwards. A default model is tens of MB, so ``progress`` (e.g.
    :func:`print_progress`) is told ``(bytes_done, total)`` as it arrives: first ``(0, total)``, last
    ``(size, size)``; ``total`` is the Content-Length, None until the end when the server gives none.
    Raises :class:`ModelUnavailableError` with a clear message when the file is missing or the
    download fails.
    """
    spec = str(spec) if spec else DEFAULT_MODEL_URL
    if not is_url(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ModelUnavailableError(f'model file {str(path)!r} does not exist; {MODEL_ADVICE}')
        return path
    cache = Path(cache_dir) if cache_dir else model_cache_dir()
    name = Path(urlparse(spec).path).name or 'model.pt'
    target = cache / name
    if target.is_file():
        return target
    _download(spec, target, timeout_s, progress)
    return target


def print_progress(name: str = 'model', stream: TextIO | None = None,
                   interval_s: float = 0.5) -> ProgressCallback:
    """A ``progress`` callback that keeps one line (``downloading NAME: 12.3/85.0 MB``) up to date.

    ``name`` may be the URL (its file name is shown). Redrawn at most every ``interval_s`` so a slow
    terminal or a log file is not flooded; the final size is always shown and ends the line.
    """
    shown = (Path(urlparse(name).path).name or name) if is_url(name) else name
    last = {'t': -float('inf'), 'width': 0}

    def update(done: int, total: int | None) -> None:
        finished = total is not None and done >= total
        now = time.monotonic()
        if not finished and now - last['t'] < interval_s:
            return
        last['t'] = now
        size = f'{done / 1e6:.1f}/{total / 1e6:.1f} MB' if total else f'{done / 1e6:.1f} MB'
        text = f'downloading {shown}: {size}'
        out = stream if stream is not None else sys.stderr
        out.write('\r' + text.ljust(last['width']) + ('\n' if finished else ''))
        out.flush()
        last['width'] = len(text)

    return update


def _download(url: str, target: Path, timeout_s: float, progress: ProgressCallback | None = None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.', suffix='.part')
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:
            length = resp.headers.get('Content-Length')
            total = int(length) if length and length.isdigit() else None
            done = 0
            if progress:
                progress(done, total)
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if total is not None and done != total:
            raise ModelUnavailableError(f'download of {url} is incomplete: got {done} of {total} bytes; '
                                        f'{MODEL_ADVICE}')
        if progress and total is None:
            progress(done, done)  # the size is known now: lets the callback finish its display
        expected = KNOWN_SHA256.get(target.name)
        if expected and digest.hexdigest() != expected:
            raise ModelUnavailableError(f'checksum mismatch for {url}: got {digest.hexdigest()}, '
                                        f'expected {expected}')
        shutil.move(tmp, target)
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
        raise ModelUnavailableError(
            f'model {url} is not in the cache ({target}) and could not be downloaded ({exc}); '
            f'{MODEL_ADVICE}') from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
