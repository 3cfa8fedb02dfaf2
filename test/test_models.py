"""Model resolution: local paths, cached URLs, real downloads from a loopback HTTP server, offline."""
import functools
import http.server
import threading

import pytest

from vizion3d_ros.core import models
from vizion3d_ros.core.models import DEFAULT_MODEL_URL, ModelUnavailableError, model_cache_dir, resolve_model


def test_local_path_is_returned_and_missing_path_says_how_to_fix(tmp_path):
    f = tmp_path / 'm.pt'
    f.write_bytes(b'x')
    assert resolve_model(str(f)) == f
    with pytest.raises(ModelUnavailableError, match='model:=') as err:
        resolve_model(str(tmp_path / 'missing.pt'))
    assert 'missing.pt' in str(err.value) and 'does not exist' in str(err.value)


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
