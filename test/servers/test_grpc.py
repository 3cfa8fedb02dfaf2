"""The installed `vizion3d-serve-grpc`: its own process, spoken to with the generated stub over a real socket.

Real data and the shared checkpoint, as in test_rest.py (see server_harness.py); results are compared with the
Python API run here on the same files. The stub is the committed code generated from lifting.proto, which
test_generated_code_matches_the_proto keeps in step with it.
"""
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
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
from vizion3d_ros.servers.proto import generate
from vizion3d_ros.servers.proto import lifting_pb2 as pb
from vizion3d_ros.servers.proto import lifting_pb2_grpc as pb_grpc

pytestmark = pytest.mark.model

EXE = shutil.which('vizion3d-serve-grpc')
SERVICE = 'vizion3d.lifting.LiftingService'
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: vizion3D's clients raise gRPC's default 4 MB limit: a VGA frame's annotated cloud is 4.6 MB.
UNLIMITED = [('grpc.max_receive_message_length', -1), ('grpc.max_send_message_length', -1)]
Code = grpc.StatusCode


class Server(ServerProcess):
    """One `vizion3d-serve-grpc` process on a free port, with a channel, the lifting stub and a health stub."""

    def __init__(self, tmp: Path, *args: str) -> None:
        super().__init__(EXE, tmp, *args)
        self.channel = grpc.insecure_channel(f'127.0.0.1:{self.port}', options=UNLIMITED)
        self.stub = pb_grpc.LiftingServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.closing.append(self.channel)

    def status(self, service: str = '') -> int:
        return self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status

    def wait(self, serving: bool = True, timeout: float = 300.0) -> None:
        """Until the health service answers (SERVING, with ``serving``)."""
        self.wait_until(lambda: self.status() == SERVING or not serving, 'serving' if serving else 'up', timeout)

    def call(self, request: pb.ObjectMaskAnnotation3DRequest, timeout: float = 300.0):
        """The response and the trailing metadata."""
        response, call = self.stub.RunObjectMaskAnnotation3D.with_call(request, timeout=timeout)
        return response, dict(call.trailing_metadata())

    def error(self, request: pb.ObjectMaskAnnotation3DRequest, timeout: float = 300.0) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            self.stub.RunObjectMaskAnnotation3D(request, timeout=timeout)
        return info.value

@pytest.fixture(scope='module')
def inputs(tum_frame, tmp_path_factory):
    return make_inputs(tum_frame, tmp_path_factory.mktemp('grpc_inputs'))


@pytest.fixture(scope='module')
def server(model_pt, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp('grpc_server'), '--annotation_model', str(model_pt), '--workers', '2')
    try:
        srv.wait()
        yield srv
    finally:
        srv.stop()


def config_of(cam, **more) -> pb.ObjectMaskAnnotation3DConfig:
    return pb.ObjectMaskAnnotation3DConfig(fx=cam.fx, fy=cam.fy, cx=cam.cx, cy=cam.cy, **more)


def request_of(inputs: dict, ply: str = 'ply', image: bool = True, intrinsics: bool = True,
               **fields) -> pb.ObjectMaskAnnotation3DRequest:
    return pb.ObjectMaskAnnotation3DRequest(
        point_cloud_ply=inputs[ply].read_bytes(), image_bytes=inputs['png'].read_bytes() if image else b'',
        advanced_config=config_of(inputs['camera']) if intrinsics else None, **fields)


def decode_png(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def decoded(response: pb.ObjectMaskAnnotation3DResponse) -> list[dict]:
    return [{'label': a.label, 'class_id': a.class_id, 'confidence': a.confidence, 'bbox_2d': list(a.bbox_2d),
             'mask': decode_png(a.mask_image), 'point_indices': np.asarray(a.point_indices),
             'point_coords': np.asarray([list(r.values) for r in a.point_coords]).reshape(-1, 3)}
            for a in response.annotations]


# --------------------------------------------------------------------------------------------------
# The proto: vizion3D's wire format, and the committed code generated from it


def test_the_messages_are_vizion3d_s():
    assert pb.DESCRIPTOR.package == 'vizion3d.lifting'
    method = pb.DESCRIPTOR.services_by_name['LiftingService'].methods_by_name['RunObjectMaskAnnotation3D']
    assert method.input_type.name == 'ObjectMaskAnnotation3DRequest'
    assert method.output_type.name == 'ObjectMaskAnnotation3DResponse'
    want = {
        'ObjectMaskAnnotation3DConfig': {'fx': 1, 'fy': 2, 'cx': 3, 'cy': 4, 'conf_threshold': 5, 'iou_threshold': 6},
        'ObjectMaskAnnotation3DRequest': {'image_bytes': 1, 'point_cloud_ply': 2, 'model_backend': 3,
                                          'return_object_clouds': 4, 'return_annotated_cloud': 5,
                                          'advanced_config': 6},
        'FloatRow': {'values': 1},
        'MaskAnnotation3DItem': {'label': 1, 'class_id': 2, 'confidence': 3, 'bbox_2d': 4, 'mask_image': 5,
                                 'point_indices': 6, 'point_coords': 7, 'object_cloud_ply': 8},
        'ObjectMaskAnnotation3DResponse': {'annotations': 1, 'annotated_cloud_ply': 2, 'backend_used': 3},
    }
    for name, fields in want.items():
        message = pb.DESCRIPTOR.message_types_by_name[name]
        numbers = {f.name: f.number for f in message.fields}
        assert {k: v for k, v in numbers.items() if v < 100} == fields, name
        assert all(v >= 100 for k, v in numbers.items() if k not in fields), name
    config = pb.DESCRIPTOR.message_types_by_name['ObjectMaskAnnotation3DConfig']
    assert all(f.has_presence and f.type == f.TYPE_FLOAT for f in config.fields)


def test_generated_code_matches_the_proto(tmp_path):
    for path in generate.generate(tmp_path):
        committed = Path(generate.HERE, path.name).read_text()
        assert path.read_text() == committed, f'{path.name} is out of date with lifting.proto: run make proto'


# --------------------------------------------------------------------------------------------------
# Serving


def test_health_and_reflection(server):
    assert server.status() == SERVING and server.status(SERVICE) == SERVING
    with pytest.raises(grpc.RpcError) as info:
        server.status('no.such.Service')
    assert info.value.code() == Code.NOT_FOUND
    database = ProtoReflectionDescriptorDatabase(server.channel)
    services = set(database.get_services())
    assert {SERVICE, 'grpc.health.v1.Health', 'grpc.reflection.v1alpha.ServerReflection'} <= services
    pool = DescriptorPool(database)
    method = pool.FindServiceByName(SERVICE).FindMethodByName('RunObjectMaskAnnotation3D')
    assert method.input_type.fields_by_name['advanced_config'].number == 6
    assert 'listening on 127.0.0.1' in server.output()


def test_same_objects_and_indices_as_the_python_api(server, inputs, model_pt):
    cam = inputs['camera']
    response, metadata = server.call(request_of(inputs, return_object_clouds=True, return_annotated_cloud=True))
    assert metadata['x-vizion3d-synthesized-image'] == 'false' and 'inference;dur=' in metadata['server-timing']
    points, reference = api_run(inputs['ply'], inputs['png'], model_pt, fx=cam.fx, fy=cam.fy, cx=cam.cx, cy=cam.cy)
    assert_same_annotations(decoded(response), reference, points)
    assert response.backend_used == reference.backend_used
    confidences = [a.confidence for a in response.annotations]
    assert confidences == sorted(confidences, reverse=True)
    assert any(a.label == 'chair' and len(a.point_indices) > 2000 for a in response.annotations)
    for a in response.annotations:
        assert len(a.bbox_2d) == 4 and all(len(r.values) == 3 for r in a.point_coords)
        assert a.object_cloud_ply.startswith(b'ply\nformat binary_little_endian 1.0\n')
        part = parse_ply(a.object_cloud_ply)
        assert part.dtype.names == ('x', 'y', 'z', 'red', 'green', 'blue')
        assert len(part) == len(a.point_indices)
        np.testing.assert_array_equal(np.c_[part['x'], part['y'], part['z']],
                                      points[list(a.point_indices)].astype(np.float32))
    whole = parse_ply(response.annotated_cloud_ply)
    assert len(whole) == len(points) == 640 * 480
    np.testing.assert_array_equal(np.c_[whole['x'], whole['y'], whole['z']], points.astype(np.float32))
    np.testing.assert_array_equal(np.c_[whole['red'], whole['green'], whole['blue']], reference.annotated_colors)


def test_without_an_image_the_front_view_is_segmented(server, inputs, model_pt):
    response, metadata = server.call(request_of(inputs, image=False, intrinsics=False))
    assert metadata['x-vizion3d-synthesized-image'] == 'true'
    assert response.annotated_cloud_ply == b''
    assert all(a.object_cloud_ply == b'' for a in response.annotations)
    points, reference = api_run(inputs['ply'], None, model_pt)
    assert reference.synthesized_image
    assert_same_annotations(decoded(response), reference, points)


def test_extra_options_and_nan_points(server, inputs):
    """An ASCII PLY with NaN rows is accepted; no index points at a NaN; the extras (>= 100) are honoured."""
    table = read_ply(inputs['small_ply'])
    rows = [f'{x:.9g} {y:.9g} {z:.9g}' for x, y, z in np.c_[table['x'], table['y'], table['z']].tolist()]
    text = (XYZ_HEAD.format(n=len(rows)) + '\n'.join(rows) + '\n').encode()
    assert b'nan' in text
    request = request_of(inputs, ply='small_ply', classes='chair', lift_mode='naive', imgsz=320)
    request.point_cloud_ply = text
    response, _ = server.call(request)
    points = np.c_[table['x'], table['y'], table['z']].astype(np.float64)
    finite = np.isfinite(points).all(axis=1)
    assert not finite.all() and response.annotations
    assert {a.label for a in response.annotations} == {'chair'}
    for a in response.annotations:
        assert finite[list(a.point_indices)].all()


def test_concurrent_calls_share_the_model_safely(server, inputs):
    request = request_of(inputs, ply='small_ply')
    request.advanced_config.conf_threshold = 0.3
    with ThreadPoolExecutor(3) as pool:
        responses = [r for r, _ in pool.map(lambda _: server.call(request), range(3))]
    assert responses[0].annotations and all(r == responses[0] for r in responses)
    assert all(a.confidence >= 0.3 for a in responses[0].annotations)


# --------------------------------------------------------------------------------------------------
# Bad requests: the right status code, details that say what is wrong, and the server keeps serving


def _config(**values) -> dict:
    return {'advanced_config': pb.ObjectMaskAnnotation3DConfig(**values)}


def _ply(data: bytes) -> callable:
    return lambda ply, png: {'point_cloud_ply': data(ply) if callable(data) else data}


def _image(data) -> callable:
    return lambda ply, png: {'point_cloud_ply': ply, 'image_bytes': data(png) if callable(data) else data}


def _fields(**fields) -> callable:
    return lambda ply, png: {'point_cloud_ply': ply, **fields}


INVALID, TOO_LARGE, UNAVAILABLE = Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED, Code.UNAVAILABLE
# name: (code, words of the details, request fields of (ply, png)); ply is the 19,200-point subsample
BAD = {
    'truncated PLY': (INVALID, 'truncated', _ply(lambda ply: ply[:len(ply) // 2])),
    'garbage after the PLY magic': (INVALID, 'not a readable PLY', _ply(b'ply\n' + os.urandom(3000))),
    'random bytes as the PLY': (INVALID, 'point_cloud_ply is not a PLY file', _ply(b'\x07' + os.urandom(999))),
    'ASCII PLY of only NaNs': (INVALID, 'no finite point',
                               _ply((XYZ_HEAD.format(n=2) + 'nan nan nan\nnan nan nan\n').encode())),
    'empty cloud': (INVALID, 'the point cloud is empty', _ply(XYZ_HEAD.format(n=0).encode())),
    'huge vertex count, short body': (
        INVALID, 'declares 4000000000', _ply(lambda ply: ply.replace(b'element vertex 19200',
                                                                     b'element vertex 4000000000'))),
    'ASCII PLY over the point limit': (TOO_LARGE, "over this server's limit of 20000000",
                                       _ply((XYZ_HEAD.format(n=30_000_000) + '1 2 -3\n').encode())),
    'ASCII PLY with a missing value': (INVALID, 'columns', _ply((XYZ_HEAD.format(n=2) + '1 2 -3\n1 2\n').encode())),
    'empty point_cloud_ply': (INVALID, 'point_cloud_ply is empty', lambda ply, png: {}),
    'binary data as the image': (INVALID, 'image_bytes is not an image', _image(os.urandom(2000))),
    'text as the image': (INVALID, 'image_bytes is not an image', _image(b'hello\n')),
    'truncated PNG': (INVALID, 'PNG data is truncated or corrupt', _image(lambda png: png[:3000])),
    'image header of 10^10 pixels': (TOO_LARGE, '100000x100000 pixels', _image(huge_png)),
    'fx = 0': (INVALID, 'fx must be a positive focal length', _fields(**_config(fx=0.0))),
    'fy < 0': (INVALID, 'fy must be a positive focal length', _fields(**_config(fx=500.0, fy=-500.0))),
    'fx = nan': (INVALID, 'fx must be finite', _fields(**_config(fx=float('nan')))),
    'fx = inf': (INVALID, 'fx must be finite', _fields(**_config(fx=float('inf')))),
    'conf_threshold > 1': (INVALID, 'conf_threshold must be in [0, 1]', _fields(**_config(conf_threshold=1.5))),
    'iou_threshold < 0': (INVALID, 'iou_threshold must be in [0, 1]', _fields(**_config(iou_threshold=-0.25))),
    'unknown class name': (INVALID, "unknown class 'unicorn'", _fields(classes='unicorn')),
    'unknown lift mode': (INVALID, 'lift_mode must be one of', _fields(lift_mode='magic')),
    'imgsz out of range': (INVALID, 'imgsz must be in [32, 4096]', _fields(imgsz=8)),
    'unknown cloud frame': (INVALID, 'cloud_frame must be one of', _fields(cloud_frame='ned')),
    'cloud behind the camera, no image': (INVALID, 'impossible intrinsics', _ply(BEHIND)),
    'model path missing': (UNAVAILABLE, "model_backend '/nope.pt' is not available", _fields(model_backend='/nope.pt')),
}


@pytest.mark.parametrize('case', list(BAD))
def test_bad_request(server, inputs, case):
    code, words, fields = BAD[case]
    request = pb.ObjectMaskAnnotation3DRequest(**fields(inputs['small_ply'].read_bytes(), inputs['png'].read_bytes()))
    error = server.error(request)
    assert error.code() == code, error.details()
    assert words in error.details(), error.details()
    assert server.status() == SERVING


def test_a_deadline_too_short_is_deadline_exceeded(server, inputs):
    error = server.error(request_of(inputs), timeout=0.001)
    assert error.code() == Code.DEADLINE_EXCEEDED


def test_unknown_methods_and_undecodable_messages(server):
    unknown = server.channel.unary_unary(f'/{SERVICE}/RunSomethingElse')
    with pytest.raises(grpc.RpcError) as info:
        unknown(b'', timeout=10)
    assert info.value.code() == Code.UNIMPLEMENTED
    raw = server.channel.unary_unary(f'/{SERVICE}/RunObjectMaskAnnotation3D')
    with pytest.raises(grpc.RpcError) as info:
        raw(b'\x0a\xff\xff\xff\xff\x0f', timeout=10)  # field 1 claims 4 GB: not a message
    assert info.value.code() == Code.INVALID_ARGUMENT, info.value
    assert 'not a valid vizion3d.lifting.ObjectMaskAnnotation3DRequest message' in info.value.details()
    assert server.status() == SERVING


def test_a_valid_request_after_the_bad_ones(server, inputs):
    log = server.output()
    assert 'Traceback' not in log and 'internal error' not in log, log[-3000:]
    response, _ = server.call(request_of(inputs, ply='small_ply'))
    assert response.annotations
    assert server.proc.poll() is None


# --------------------------------------------------------------------------------------------------
# Other servers: a small message limit, a missing model


def test_messages_over_the_limit_are_resource_exhausted(model_pt, inputs, tmp_path):
    srv = Server(tmp_path, '--annotation_model', str(model_pt), '--max-message-mb', '5')
    try:
        srv.wait()
        big = srv.error(pb.ObjectMaskAnnotation3DRequest(point_cloud_ply=os.urandom(6 << 20)))
        assert big.code() == Code.RESOURCE_EXHAUSTED and 'larger than max' in big.details(), big
        # the 4.6 MB frame is under the limit; its answer with both clouds (5.8 MB) is not
        answer = srv.error(request_of(inputs, image=False, intrinsics=False, return_object_clouds=True,
                                      return_annotated_cloud=True))
        assert answer.code() == Code.RESOURCE_EXHAUSTED, answer
        assert "over this server's message limit of 5.0 MB (--max-message-mb)" in answer.details()
        small, _ = srv.call(request_of(inputs, image=False, intrinsics=False))
        assert small.annotations
    finally:
        srv.stop()


def test_a_missing_model_keeps_the_server_up_and_answers_unavailable(model_pt, inputs, tmp_path):
    missing = tmp_path / 'no_such_model.pt'
    srv = Server(tmp_path, '--annotation_model', str(missing))
    try:
        srv.wait(serving=False)
        srv.wait_until(lambda: f'{missing}' in srv.output().split('loading model', 1)[-1], 'done loading', 120)
        assert srv.status() == NOT_SERVING and srv.status(SERVICE) == NOT_SERVING
        error = srv.error(request_of(inputs, ply='small_ply'))
        assert error.code() == Code.UNAVAILABLE and str(missing) in error.details(), error
        assert '--annotation_model' in error.details()
        override, _ = srv.call(request_of(inputs, ply='small_ply', model_backend=str(model_pt)))
        assert override.annotations and override.backend_used == str(model_pt)
        assert srv.status() == NOT_SERVING and srv.proc.poll() is None
    finally:
        srv.stop()


def test_bad_command_line_exits_2():
    assert 'vizion3d-serve-grpc: error: --max-message-mb must be positive' in usage_error(EXE, '--max-message-mb', '0')
    assert 'at most 2047' in usage_error(EXE, '--max-message-mb', '4096')


# --------------------------------------------------------------------------------------------------
# The gate in front of the workers (in-process: what a cancelled call or a full queue does)


class _FakeContext:
    def __init__(self, active: bool = True, remaining: float | None = None) -> None:
        self.active = active
        self.remaining = remaining

    def is_active(self) -> bool:
        return self.active

    def time_remaining(self) -> float | None:
        return self.remaining


def test_the_gate_drops_cancelled_and_expired_calls_and_refuses_a_full_queue():
    from vizion3d_ros.servers.codec import BusyError
    from vizion3d_ros.servers.grpc_server import DeadlineError, Gate, _CancelledError

    gate = Gate(workers=1, queue=1, poll_s=0.01)
    with gate.slot(_FakeContext()):
        with pytest.raises(_CancelledError), gate.slot(_FakeContext(active=False)):
            pytest.fail('ran a call that was cancelled')
        with pytest.raises(DeadlineError), gate.slot(_FakeContext(remaining=0.0)):
            pytest.fail('ran a call past its deadline')
        assert gate.waiting == 0 and gate.running == 1
        gate.waiting = 1  # another call waits: the queue is full
        with pytest.raises(BusyError, match='busy'), gate.slot(_FakeContext()):
            pytest.fail('ran past a full queue')
        gate.waiting = 0
    assert gate.running == 0
    with gate.slot(_FakeContext()):
        assert gate.running == 1
