"""The installed `vizion3d-serve-rest`: started as its own process, spoken to with httpx over a real socket.

Real data: the TUM frame as a PLY in OpenGL space (NaN where the depth is missing, in the frame's pixel
order) and the shared COCO checkpoint. Results are compared with the Python API run here on the same files.
"""
import base64
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from server_harness import (
    BEHIND,
    XYZ_HEAD,
    ServerProcess,
    api_run,
    assert_same_annotations,
    huge_png,
    make_inputs,
    usage_error,
)

from vizion3d_ros.core.io.plyio import parse_ply, read_ply

pytestmark = pytest.mark.model

EXE = shutil.which('vizion3d-serve-rest')
ROUTE = '/annotation/object-mask-annotation-3d'
FIELDS = ['point_cloud_ply', 'image', 'model_backend', 'return_object_clouds', 'return_annotated_cloud', 'fx', 'fy',
          'cx', 'cy', 'conf_threshold', 'iou_threshold']


class Server(ServerProcess):
    """One `vizion3d-serve-rest` process on a free port; its output goes to ``log``."""

    def __init__(self, tmp: Path, *args: str) -> None:
        super().__init__(EXE, tmp, *args)
        self.url = f'http://127.0.0.1:{self.port}'
        self.client = httpx.Client(base_url=self.url, timeout=300.0)
        self.closing.append(self.client)

    def wait(self, ready: bool = True, timeout: float = 300.0) -> None:
        """Until /health answers (and /ready says ready, with ``ready``)."""
        self.wait_until(lambda: self.client.get('/health').status_code == 200 and (
            not ready or self.client.get('/ready').status_code == 200), 'ready' if ready else 'up', timeout)

    def post(self, files: dict | None = None, data: dict | None = None, **kwargs) -> httpx.Response:
        return self.client.post(ROUTE, files=files, data=data, **kwargs)

@pytest.fixture(scope='module')
def inputs(tum_frame, tmp_path_factory):
    return make_inputs(tum_frame, tmp_path_factory.mktemp('rest_inputs'))


@pytest.fixture(scope='module')
def server(model_pt, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp('rest_server'), '--object_mask_annotation_3d', '--annotation_model',
                 str(model_pt), '--workers', '2')
    try:
        srv.wait()
        yield srv
    finally:
        srv.stop()


def intrinsics(cam) -> dict:
    return {'fx': str(cam.fx), 'fy': str(cam.fy), 'cx': str(cam.cx), 'cy': str(cam.cy)}


def decode_png(text: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_UNCHANGED)


def decode_ply(text: str) -> np.ndarray:
    return parse_ply(base64.b64decode(text))


def files_of(inputs: dict, ply: str = 'ply', image: bool = True) -> dict:
    files = {'point_cloud_ply': ('cloud.ply', inputs[ply].read_bytes(), 'application/octet-stream')}
    if image:
        files['image'] = ('color.png', inputs['png'].read_bytes(), 'image/png')
    return files


def assert_same_as_api(body: dict, reference, points: np.ndarray) -> None:
    assert_same_annotations([{**a, 'mask': decode_png(a['mask_image'])} for a in body['annotations']], reference,
                            points)
    assert body['backend_used'] == reference.backend_used


# --------------------------------------------------------------------------------------------------
# Serving


def test_health_ready_and_docs(server):
    health = server.client.get('/health')
    assert health.status_code == 200 and health.json()['status'] == 'ok'
    ready = server.client.get('/ready').json()
    assert ready['ready'] is True and ready['model_path'].endswith('yolov8n-seg-coco.pt')
    assert server.client.get('/docs').status_code == 200
    spec = server.client.get('/openapi.json').json()
    route = spec['paths'][ROUTE]['post']
    schema_ref = route['requestBody']['content']['multipart/form-data']['schema']['$ref'].split('/')[-1]
    props = spec['components']['schemas'][schema_ref]['properties']
    assert set(FIELDS) <= set(props)
    assert all(props[name].get('description') for name in props), 'every form field is described'
    assert spec['components']['schemas'][schema_ref]['required'] == ['point_cloud_ply']
    assert {'200', '400', '413', '415', '422', '503'} <= set(route['responses'])
    assert 'task object_mask_annotation_3d' in server.output()


def test_same_objects_and_indices_as_the_python_api(server, inputs, model_pt):
    cam = inputs['camera']
    resp = server.post(files_of(inputs), data={**intrinsics(cam), 'return_object_clouds': 'true',
                                               'return_annotated_cloud': 'true'})
    assert resp.status_code == 200, resp.text
    assert resp.headers['content-type'] == 'application/json'
    assert resp.headers['x-vizion3d-synthesized-image'] == 'false' and 'inference;dur=' in resp.headers['server-timing']
    body = resp.json()
    assert set(body) == {'annotations', 'annotated_cloud_ply', 'backend_used'}
    points, reference = api_run(inputs['ply'], inputs['png'], model_pt, fx=cam.fx, fy=cam.fy, cx=cam.cx, cy=cam.cy)
    assert_same_as_api(body, reference, points)
    confidences = [a['confidence'] for a in body['annotations']]
    assert confidences == sorted(confidences, reverse=True)
    assert any(a['label'] == 'chair' and len(a['point_indices']) > 2000 for a in body['annotations'])
    for a in body['annotations']:
        assert set(a) == {'label', 'class_id', 'confidence', 'bbox_2d', 'mask_image', 'point_indices',
                          'point_coords', 'object_cloud_ply'}
        part = decode_ply(a['object_cloud_ply'])
        assert part.dtype.names == ('x', 'y', 'z', 'red', 'green', 'blue')
        assert part.dtype['x'] == np.dtype('<f4') and part.dtype['red'] == np.dtype('u1')
        assert len(part) == len(a['point_indices'])
        np.testing.assert_array_equal(np.c_[part['x'], part['y'], part['z']],
                                      points[a['point_indices']].astype(np.float32))
        assert base64.b64decode(a['object_cloud_ply']).startswith(b'ply\nformat binary_little_endian 1.0\n')
    whole = decode_ply(body['annotated_cloud_ply'])
    assert len(whole) == len(points) == 640 * 480
    np.testing.assert_array_equal(np.c_[whole['x'], whole['y'], whole['z']], points.astype(np.float32))
    np.testing.assert_array_equal(np.c_[whole['red'], whole['green'], whole['blue']], reference.annotated_colors)


def test_without_an_image_the_front_view_is_segmented(server, inputs, model_pt):
    resp = server.post(files_of(inputs, image=False))
    assert resp.status_code == 200, resp.text
    assert resp.headers['x-vizion3d-synthesized-image'] == 'true'
    body = resp.json()
    assert body['annotated_cloud_ply'] is None
    assert all(a['object_cloud_ply'] is None for a in body['annotations'])
    points, reference = api_run(inputs['ply'], None, model_pt)
    assert reference.synthesized_image
    assert_same_as_api(body, reference, points)


def test_an_empty_image_field_means_no_image(server, inputs):
    files = files_of(inputs, ply='small_ply', image=False)
    files['image'] = ('empty.png', b'', 'image/png')
    resp = server.post(files)
    assert resp.status_code == 200, resp.text
    assert resp.headers['x-vizion3d-synthesized-image'] == 'true'
    text_field = server.post(files_of(inputs, ply='small_ply', image=False), data={'image': ''})
    assert text_field.status_code == 200, text_field.text
    assert text_field.headers['x-vizion3d-synthesized-image'] == 'true'


def test_nan_points_are_kept_and_never_part_of_an_object(server, inputs):
    """ASCII PLY with NaN rows: accepted; indices stay those of the upload, no index points at a NaN."""
    table = read_ply(inputs['small_ply'])
    rows = [f'{x:.9g} {y:.9g} {z:.9g} {r} {g} {b}' for x, y, z, r, g, b in table.tolist()]
    header = XYZ_HEAD.format(n=len(rows)).replace(
        'end_header', 'property uchar red\nproperty uchar green\nproperty uchar blue\nend_header')
    text = (header + '\n'.join(rows) + '\n').encode()
    assert b'nan' in text
    resp = server.post({'point_cloud_ply': ('ascii.ply', text), 'image': ('c.png', inputs['png'].read_bytes())},
                       data={**intrinsics(inputs['camera']), 'return_annotated_cloud': 'true'})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    points = np.c_[table['x'], table['y'], table['z']].astype(np.float64)
    finite = np.isfinite(points).all(axis=1)
    assert not finite.all()
    assert body['annotations']
    assert sum(len(a['point_indices']) for a in body['annotations']) > 500
    for a in body['annotations']:
        assert finite[a['point_indices']].all()
        coords = np.asarray(a['point_coords'], dtype=np.float64).reshape(-1, 3)
        np.testing.assert_allclose(coords, points[a['point_indices']], rtol=1e-6)
    assert len(decode_ply(body['annotated_cloud_ply'])) == len(points)


def test_concurrent_requests_share_the_model_safely(server, inputs):
    files = files_of(inputs, ply='small_ply')
    data = {**intrinsics(inputs['camera']), 'conf_threshold': '0.3'}
    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda _: server.post(files, data=data), range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text[:300] for r in responses]
    bodies = [r.json() for r in responses]
    assert bodies[0]['annotations'] and all(b == bodies[0] for b in bodies)
    assert all(a['confidence'] >= 0.3 for a in bodies[0]['annotations'])


# --------------------------------------------------------------------------------------------------
# Bad requests: the right status, a message that says what is wrong, and the server keeps serving


def _cloud(data: bytes) -> dict:
    return {'point_cloud_ply': ('cloud.ply', data)}


# name: (status, words of the detail, files(ply, png), form fields); ply is the 19,200-point subsample
BAD = {
    'truncated PLY': (400, 'truncated', lambda ply, png: _cloud(ply[:len(ply) // 2]), None),
    'garbage after the PLY magic': (400, 'not a readable PLY', lambda ply, png: _cloud(b'ply\n' + os.urandom(3000)),
                                    None),
    'random bytes as the PLY': (415, 'not a PLY file', lambda ply, png: _cloud(b'\x07' + os.urandom(999)), None),
    'ASCII PLY of only NaNs': (400, 'no finite point',
                               lambda ply, png: _cloud((XYZ_HEAD.format(n=2) + 'nan nan nan\nnan nan nan\n').encode()),
                               None),
    'empty cloud': (400, 'the point cloud is empty', lambda ply, png: _cloud(XYZ_HEAD.format(n=0).encode()), None),
    'huge vertex count, short body': (
        400, 'declares 4000000000',
        lambda ply, png: _cloud(ply.replace(b'element vertex 19200', b'element vertex 4000000000')), None),
    'ASCII PLY with a missing value': (
        400, 'columns', lambda ply, png: _cloud((XYZ_HEAD.format(n=2) + '1 2 -3\n1 2\n').encode()), None),
    'binary data as the image': (415, 'image is not an image',
                                 lambda ply, png: {**_cloud(ply), 'image': ('i.png', os.urandom(2000))}, None),
    'text file as the image': (
        415, 'image is not an image',
        lambda ply, png: {**_cloud(ply), 'image': ('notes.txt', b'hello\n', 'text/plain')}, None),
    'truncated PNG': (400, 'PNG data is truncated or corrupt',
                      lambda ply, png: {**_cloud(ply), 'image': ('t.png', png[:3000])}, None),
    'image header of 10^10 pixels': (413, '100000x100000 pixels',
                                     lambda ply, png: {**_cloud(ply), 'image': ('h.png', huge_png(png))}, None),
    'fx is not a number': (422, 'fx', lambda ply, png: _cloud(ply), {'fx': 'abc'}),
    'fx = 0': (422, 'fx must be a positive focal length', lambda ply, png: _cloud(ply), {'fx': '0'}),
    'fy < 0': (422, 'fy must be a positive focal length', lambda ply, png: _cloud(ply), {'fy': '-500'}),
    'fx = nan': (422, 'fx must be finite', lambda ply, png: _cloud(ply), {'fx': 'nan'}),
    'conf_threshold > 1': (422, 'conf_threshold must be in [0, 1]', lambda ply, png: _cloud(ply),
                           {'conf_threshold': '1.5'}),
    'iou_threshold < 0': (422, 'iou_threshold must be in [0, 1]', lambda ply, png: _cloud(ply),
                          {'iou_threshold': '-0.2'}),
    'boolean that is not one': (422, 'return_object_clouds', lambda ply, png: _cloud(ply),
                                {'return_object_clouds': 'maybe'}),
    'empty point_cloud_ply file': (422, 'point_cloud_ply is empty', lambda ply, png: _cloud(b''), None),
    'missing point_cloud_ply': (422, 'point_cloud_ply: field required', lambda ply, png: {'image': ('c.png', png)},
                                None),
    'point_cloud_ply as a text field': (422, 'must be a file', lambda ply, png: None, {'point_cloud_ply': 'cloud.ply'}),
    'unknown class name': (422, "unknown class 'unicorn'", lambda ply, png: _cloud(ply), {'classes': 'unicorn'}),
    'unknown lift mode': (422, 'lift_mode must be one of', lambda ply, png: _cloud(ply), {'lift_mode': 'magic'}),
    'cloud behind the camera, no image': (400, 'impossible intrinsics', lambda ply, png: _cloud(BEHIND), None),
    'model path missing': (503, "model_backend '/nope.pt' is not available", lambda ply, png: _cloud(ply),
                           {'model_backend': '/nope.pt'}),
}


@pytest.mark.parametrize('case', list(BAD))
def test_bad_request(server, inputs, case):
    status, words, files, data = BAD[case]
    resp = server.post(files(inputs['small_ply'].read_bytes(), inputs['png'].read_bytes()), data=data)
    assert resp.status_code == status, resp.text
    assert resp.headers['content-type'] == 'application/json'
    detail = resp.json()['detail']
    assert isinstance(detail, str) and words in detail, detail
    assert server.client.get('/health').status_code == 200


def test_other_bad_requests(server):
    get = server.client.get(ROUTE)
    assert get.status_code == 405 and 'accepts POST' in get.json()['detail']
    broken = server.client.post(ROUTE, content=b'--xyz\r\nnot multipart at all',
                                headers={'content-type': 'multipart/form-data; boundary=xyz'})
    assert broken.status_code == 400 and broken.json()['detail']
    json_body = server.client.post(ROUTE, json={'point_cloud_ply': 'abc'})
    assert json_body.status_code == 422 and 'point_cloud_ply' in json_body.json()['detail']
    assert server.client.get('/nothing').status_code == 404


def test_a_valid_request_after_the_bad_ones(server, inputs):
    log = server.output()
    assert 'Traceback' not in log and 'HTTP/1.1" 500' not in log, log[-3000:]
    resp = server.post(files_of(inputs, ply='small_ply'), data=intrinsics(inputs['camera']))
    assert resp.status_code == 200, resp.text
    body = json.loads(resp.content, parse_constant=lambda c: pytest.fail(f'non-standard JSON constant {c}'))
    assert body['annotations']
    assert server.proc.poll() is None


# --------------------------------------------------------------------------------------------------
# Other servers: a small upload limit, a missing model, no task


def _multipart(ply: bytes, boundary: str = 'vizion3dboundary') -> bytes:
    return (f'--{boundary}\r\nContent-Disposition: form-data; name="point_cloud_ply"; filename="big.ply"\r\n'
            f'Content-Type: application/octet-stream\r\n\r\n').encode() + ply + f'\r\n--{boundary}--\r\n'.encode()


def test_bodies_over_the_upload_limit_get_413(model_pt, inputs, tmp_path):
    srv = Server(tmp_path, '--object_mask_annotation_3d', '--annotation_model', str(model_pt), '--max-upload-mb', '1')
    try:
        srv.wait()
        big = inputs['ply'].read_bytes()  # 4.6 MB
        declared = srv.post({'point_cloud_ply': ('big.ply', big)})
        assert declared.status_code == 413, declared.text
        assert 'limit of 1.0 MB (--max-upload-mb)' in declared.json()['detail']
        body = _multipart(big)
        chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
        chunked = srv.client.post(ROUTE, content=chunks,
                                  headers={'content-type': 'multipart/form-data; boundary=vizion3dboundary'})
        assert chunked.request.headers.get('transfer-encoding') == 'chunked'
        assert 'content-length' not in chunked.request.headers
        assert chunked.status_code == 413, chunked.text
        assert 'counted while it streamed in' in chunked.json()['detail']
        small = srv.post(files_of(inputs, ply='small_ply'), data=intrinsics(inputs['camera']))  # ~0.8 MB
        assert small.status_code == 200, small.text
        assert small.json()['annotations']
    finally:
        srv.stop()


def test_a_missing_model_keeps_the_server_up_and_answers_503(model_pt, inputs, tmp_path):
    missing = tmp_path / 'no_such_model.pt'
    srv = Server(tmp_path, '--object_mask_annotation_3d', '--annotation_model', str(missing))
    try:
        srv.wait(ready=False)
        deadline = time.monotonic() + 60
        while 'loading' in (ready := srv.client.get('/ready')).json().get('detail', '') and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.status_code == 503
        assert str(missing) in ready.json()['detail'] and '--annotation_model' in ready.json()['detail']
        resp = srv.post(files_of(inputs, ply='small_ply'))
        assert resp.status_code == 503 and str(missing) in resp.json()['detail']
        assert srv.client.get('/health').status_code == 200
        override = srv.post(files_of(inputs, ply='small_ply'), data={'model_backend': str(model_pt)})
        assert override.status_code == 200, override.text
        assert override.json()['backend_used'] == str(model_pt)
        assert srv.proc.poll() is None
    finally:
        srv.stop()


def test_without_the_task_flag_the_route_is_not_served(inputs, tmp_path):
    srv = Server(tmp_path)
    try:
        srv.wait(ready=False)
        resp = srv.post(files_of(inputs, ply='small_ply'))
        assert resp.status_code == 404 and '--object_mask_annotation_3d' in resp.json()['detail']
        assert srv.client.get('/ready').status_code == 503
        assert ROUTE not in srv.client.get('/openapi.json').json()['paths']
        assert 'no task enabled' in srv.output()
    finally:
        srv.stop()


def test_bad_command_line_exits_2():
    assert 'vizion3d-serve-rest: error: --workers must be positive' in usage_error(EXE, '--workers', '0')


# --------------------------------------------------------------------------------------------------
# The gate in front of the workers (in-process: what a disconnect or a full queue does)


class _FakeRequest:
    def __init__(self, gone: bool) -> None:
        self.gone = gone

    async def is_disconnected(self) -> bool:
        return self.gone


def test_a_request_whose_client_left_leaves_the_queue_and_a_full_queue_is_503():
    import anyio

    from vizion3d_ros.servers.codec import UnavailableError
    from vizion3d_ros.servers.rest import Gate, _ClientGoneError

    async def scenario() -> list[str]:
        seen = []
        gate = Gate(workers=1, queue=1)
        async with gate.slot(_FakeRequest(gone=False)):  # the only worker is busy
            with pytest.raises(_ClientGoneError):
                async with gate.slot(_FakeRequest(gone=True)):
                    seen.append('ran a request whose client had left')
            assert gate.waiting == 0 and gate.running == 1
            async with anyio.create_task_group() as tg:
                tg.start_soon(_wait_in_queue, gate, seen)
                await anyio.sleep(0.1)
                with pytest.raises(UnavailableError, match='busy'):
                    async with gate.slot(_FakeRequest(gone=False)):
                        seen.append('ran past a full queue')
                tg.cancel_scope.cancel()
        async with gate.slot(_FakeRequest(gone=False)):
            seen.append('served after the others')
        return seen

    assert anyio.run(scenario) == ['served after the others']


async def _wait_in_queue(gate, seen: list[str]) -> None:
    async with gate.slot(_FakeRequest(gone=False)):
        seen.append('queued request ran while the worker was busy')
