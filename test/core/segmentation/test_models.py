"""Model resolution: local paths, cached URLs, real downloads from a loopback HTTP server, offline."""
import functools
import http.server
import io
import threading

import pytest

from vizion3d_ros.core.segmentation import models
from vizion3d_ros.core.segmentation.models import (
    DEFAULT_MODEL_URL,
    MODEL_ADVICE,
    ModelUnavailableError,
    model_cache_dir,
    print_progress,
    resolve_model,
)


def test_local_path_is_returned_and_missing_path_says_how_to_fix(tmp_path):
    f = tmp_path / 'm.pt'
    f.write_bytes(b'x')
    assert resolve_model(str(f)) == f
    with pytest.raises(ModelUnavailableError, match='model:=') as err:
        resolve_model(str(tmp_path / 'missing.pt'))
    assert 'missing.pt' in str(err.value) and 'does not exist' in str(err.value)
    assert str(err.value).endswith(MODEL_ADVICE)  # programs with other options (the servers) replace it


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('VIZION3D_MODEL_CACHE', str(tmp_path / 'c'))
    assert model_cache_dir() == tmp_path / 'c'
    monkeypatch.delenv('VIZION3D_MODEL_CACHE')
    assert model_cache_dir().parts[-3:] == ('.cache', 'vizion3d', 'models')


def test_cached_url_needs_no_network(tmp_path):
    (tmp_path / 'yolo26l-seg.pt').write_bytes(b'weights')
    assert resolve_model(DEFAULT_MODEL_URL, cache_dir=tmp_path) == tmp_path / 'yolo26l-seg.pt'
    assert resolve_model('', cache_dir=tmp_path) == tmp_path / 'yolo26l-seg.pt'  # '' = default


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / 'www'
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()


def test_url_is_downloaded_once_into_the_cache(http_root, tmp_path, monkeypatch):
    root, base = http_root
    (root / 'net.pt').write_bytes(b'A' * 3_000_000)
    cache = tmp_path / 'cache'
    path = resolve_model(f'{base}/net.pt', cache_dir=cache)
    assert path == cache / 'net.pt' and path.read_bytes() == b'A' * 3_000_000
    assert [p.name for p in cache.iterdir()] == ['net.pt']  # no partial files left
    (root / 'net.pt').unlink()  # served from the cache from now on
    assert resolve_model(f'{base}/net.pt', cache_dir=cache) == path


def test_checksum_mismatch_leaves_nothing_behind(http_root, tmp_path, monkeypatch):
    root, base = http_root
    (root / 'bad.pt').write_bytes(b'corrupt')
    monkeypatch.setitem(models.KNOWN_SHA256, 'bad.pt', '0' * 64)
    with pytest.raises(ModelUnavailableError, match='checksum mismatch'):
        resolve_model(f'{base}/bad.pt', cache_dir=tmp_path / 'c')
    assert list((tmp_path / 'c').iterdir()) == []


def test_offline_download_fails_with_a_clear_message(http_root, tmp_path):
    _, base = http_root
    with pytest.raises(ModelUnavailableError) as err:
        resolve_model(f'{base}/absent.pt', cache_dir=tmp_path / 'cache')
    text = str(err.value)
    assert 'could not be downloaded' in text and 'model:=' in text and 'absent.pt' in text
    assert list((tmp_path / 'cache').iterdir()) == []


def test_download_reports_progress_up_to_the_file_size(http_root, tmp_path):
    root, base = http_root
    size = 3_500_000  # several 1 MiB reads
    (root / 'big.pt').write_bytes(b'B' * size)
    calls = []
    path = resolve_model(f'{base}/big.pt', cache_dir=tmp_path / 'c', progress=lambda d, t: calls.append((d, t)))
    assert path.stat().st_size == size
    done = [d for d, _ in calls]
    assert len(calls) >= 3 and done[0] == 0 and done[-1] == size
    assert all(a < b for a, b in zip(done, done[1:])), 'strictly increasing byte counts'
    assert {t for _, t in calls} == {size}, 'total is the Content-Length'
    calls.clear()
    resolve_model(f'{base}/big.pt', cache_dir=tmp_path / 'c', progress=lambda d, t: calls.append((d, t)))
    assert calls == [], 'a cached model is not downloaded again'


def test_progress_without_content_length_ends_with_the_size(monkeypatch, tmp_path):
    class Response(io.BytesIO):
        headers: dict = {}

    monkeypatch.setattr(models.urllib.request, 'urlopen', lambda url, timeout: Response(b'C' * 2_500_000))
    calls = []
    resolve_model('https://example.invalid/x.pt', cache_dir=tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, None) and calls[-1] == (2_500_000, 2_500_000)
    assert all(t is None for _, t in calls[1:-1]) and len(calls) >= 4


def test_truncated_download_is_rejected(monkeypatch, tmp_path):
    class Response(io.BytesIO):
        headers = {'Content-Length': '1000'}

    monkeypatch.setattr(models.urllib.request, 'urlopen', lambda url, timeout: Response(b'D' * 600))
    with pytest.raises(ModelUnavailableError, match='incomplete: got 600 of 1000 bytes'):
        resolve_model('https://example.invalid/short.pt', cache_dir=tmp_path / 'c')
    assert list((tmp_path / 'c').iterdir()) == []


def test_print_progress_keeps_one_rate_limited_line(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(models.time, 'monotonic', lambda: clock[0])
    out = io.StringIO()
    show = print_progress(DEFAULT_MODEL_URL, stream=out)
    show(0, 85_000_000)
    for done in range(1_000_000, 12_300_001, 1_000_000):  # fast chunks: no redraw inside 0.5 s
        show(done, 85_000_000)
    clock[0] += 0.6
    show(12_300_000, 85_000_000)
    show(85_000_000, 85_000_000)  # the end is always shown, and ends the line
    lines = out.getvalue().split('\r')[1:]
    assert [s.rstrip() for s in lines] == ['downloading yolo26l-seg.pt: 0.0/85.0 MB',
                                           'downloading yolo26l-seg.pt: 12.3/85.0 MB',
                                           'downloading yolo26l-seg.pt: 85.0/85.0 MB']
    assert out.getvalue().endswith('\n') and out.getvalue().count('\n') == 1
    unknown = io.StringIO()
    print_progress('net.pt', stream=unknown)(2_000_000, None)
    assert unknown.getvalue() == '\rdownloading net.pt: 2.0 MB'
