"""The servers' shared codec: PLY and image uploads, options, limits, encodings and the error classes."""
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from vizion3d_ros.core.io.plyio import PlyError, parse_ply, ply_bytes
from vizion3d_ros.servers import codec
from vizion3d_ros.servers.codec import (
    AnnotationOptions,
    BadRequestError,
    InvalidFieldError,
    Limits,
    PayloadTooLargeError,
    UnavailableError,
    UnsupportedMediaError,
    decode_image,
    decode_point_cloud,
    encode_mask_png,
    encode_result,
)

HEADER = 'ply\nformat {fmt} 1.0\nelement vertex {n}\n{props}end_header\n'
XYZ = 'property float x\nproperty float y\nproperty float z\n'
RGB = 'property uchar red\nproperty uchar green\nproperty uchar blue\n'


def ascii_ply(rows: list[str], props: str = XYZ, n: int | None = None) -> bytes:
    head = HEADER.format(fmt='ascii', n=len(rows) if n is None else n, props=props)
    return (head + ''.join(r + '\n' for r in rows)).encode()


@pytest.fixture
def cloud(rng):
    xyz = rng.normal(size=(1000, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(1000, 3), dtype=np.uint8)
    return xyz, rgb


# --------------------------------------------------------------------------------------------------
# Point clouds


def test_binary_ply_round_trip_keeps_order_and_colours(cloud):
    xyz, rgb = cloud
    decoded = decode_point_cloud(ply_bytes(xyz, rgb))
    assert decoded.points.dtype == np.float64 and decoded.points.shape == (1000, 3)
    np.testing.assert_array_equal(decoded.points, xyz.astype(np.float64))
    np.testing.assert_array_equal(decoded.colors, rgb)


def test_big_endian_double_and_ascii_plys_decode(cloud):
    xyz, rgb = cloud
    table = np.empty(len(xyz), dtype=[('x', '>f8'), ('y', '>f8'), ('z', '>f8')])
    table['x'], table['y'], table['z'] = xyz.T
    data = HEADER.format(fmt='binary_big_endian', n=len(xyz), props=XYZ.replace('float', 'double')).encode()
    np.testing.assert_array_equal(decode_point_cloud(data + table.tobytes()).points, xyz.astype(np.float64))
    rows = [f'{x} {y} {z} {r} {g} {b}' for (x, y, z), (r, g, b) in zip(xyz[:5].tolist(), rgb[:5].tolist())]
    decoded = decode_point_cloud(ascii_ply(rows, XYZ + RGB))
    np.testing.assert_allclose(decoded.points, xyz[:5], rtol=1e-6)
    np.testing.assert_array_equal(decoded.colors, rgb[:5])


def test_ascii_ply_with_nans_keeps_every_point_in_place():
    decoded = decode_point_cloud(ascii_ply(['nan nan nan', '0.5 0.25 -2', 'nan 1 2', 'inf 0 -1']))
    assert len(decoded) == 4  # kept: indices into the upload stay valid
    np.testing.assert_array_equal(decoded.points[1], [0.5, 0.25, -2.0])
    assert np.isnan(decoded.points[0]).all() and decoded.colors is None


def test_vertices_after_faces_and_comments_are_found():
    data = (b'ply\nformat ascii 1.0\ncomment made by hand\nelement face 1\nproperty list uchar int vertex_indices\n'
            b'element vertex 2\n' + XYZ.encode() + b'end_header\n3 0 1 2\n1 2 3\n4 5 6\n')
    np.testing.assert_array_equal(decode_point_cloud(data).points, [[1, 2, 3], [4, 5, 6]])


def test_float_and_16_bit_colours_are_usable(cloud):
    xyz, rgb = cloud
    floats = decode_point_cloud(ascii_ply(['0 0 -1 0.5 1.0 0.0'], XYZ + RGB.replace('uchar', 'float')))
    np.testing.assert_allclose(floats.colors, [[0.5, 1.0, 0.0]])
    wide = np.empty(1, dtype=[('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('red', '<u2'), ('green', '<u2'),
                              ('blue', '<u2')])
    wide[0] = (0, 0, -1, 65535, 0, 257)
    data = HEADER.format(fmt='binary_little_endian', n=1, props=XYZ + RGB.replace('uchar', 'ushort')).encode()
    np.testing.assert_array_equal(decode_point_cloud(data + wide.tobytes()).colors, [[255, 0, 1]])


@pytest.mark.parametrize('data, error, words', [
    (b'', InvalidFieldError, 'empty'),
    (b'hello world, not a cloud', UnsupportedMediaError, 'not a PLY'),
    (b'\x89PNG\r\n\x1a\n' + b'\0' * 40, UnsupportedMediaError, 'not a PLY'),
    (b'ply\n\x00\xff\x13garbage without a header end', BadRequestError, 'end_header'),
    (b'ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n\xff\xfe', BadRequestError, 'readable'),
    (b'ply\nformat foo 1.0\nend_header\n', BadRequestError, 'format'),
    (b'ply\nformat ascii 1.0\nelement vertex many\nend_header\n', BadRequestError, 'COUNT'),
    (b'ply\nformat ascii 1.0\nelement vertex 1\nproperty quaternion x\nend_header\n1\n', BadRequestError, 'TYPE'),
    (HEADER.format(fmt='binary_little_endian', n=10**12, props=XYZ).encode() + b'\0' * 24, BadRequestError,
     'declares 1000000000000'),
    (ascii_ply(['1 2 3', '4 5 6'], n=5), BadRequestError, 'truncated'),
    (ascii_ply(['1 2 3', '4 5']), BadRequestError, 'columns'),
    (ascii_ply(['1 2 x']), BadRequestError, "'x'"),
    (ascii_ply([]), BadRequestError, 'empty'),
    (ascii_ply(['nan nan nan', 'nan inf nan']), BadRequestError, 'no finite point'),
    (ascii_ply(['1 2'], 'property float a\nproperty float b\n'), BadRequestError, 'x, y, z'),
    (ascii_ply(['3 1 2 3'], 'property list uchar float x\n'), BadRequestError, 'list'),
])
def test_bad_clouds_get_the_right_error(data, error, words):
    with pytest.raises(error, match=words):
        decode_point_cloud(data)


def test_cloud_limit_is_413_and_a_lying_header_is_400(cloud):
    xyz, rgb = cloud
    with pytest.raises(PayloadTooLargeError, match='1000 points.*limit of 999'):
        decode_point_cloud(ply_bytes(xyz, rgb), Limits(max_points=999))
    lying = HEADER.format(fmt='binary_little_endian', n=5000, props=XYZ).encode() + xyz.tobytes()
    with pytest.raises(BadRequestError, match='truncated'):
        decode_point_cloud(lying, Limits(max_points=999))


def test_parse_ply_returns_every_property():
    data = ply_bytes(np.zeros((3, 3)), extra={'instance_id': np.arange(3, dtype=np.int32)})
    table = parse_ply(data)
    assert table.dtype.names == ('x', 'y', 'z', 'instance_id')
    np.testing.assert_array_equal(table['instance_id'], [0, 1, 2])
    with pytest.raises(PlyError, match="no 'face' element"):
        parse_ply(data, element='face')


# --------------------------------------------------------------------------------------------------
# Images


@pytest.mark.parametrize('ext', ['.png', '.jpg', '.bmp', '.tiff', '.webp'])
def test_images_decode_to_rgb(ext, rng):
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[..., 0] = 200  # red
    ok, data = cv2.imencode(ext, rgb[:, :, ::-1])
    assert ok
    out = decode_image(data.tobytes())
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert abs(int(out[..., 0].mean()) - 200) <= 3 and out[..., 2].mean() < 5
    size = codec.image_size(data.tobytes())
    assert size in ((60, 40), None) and (size is not None or ext in ('.tiff', '.webp'))


def test_grey_and_16_bit_images_become_8_bit_rgb():
    ok, data = cv2.imencode('.png', np.full((10, 20), 60000, np.uint16))
    out = decode_image(data.tobytes())
    assert out.shape == (10, 20, 3) and out.dtype == np.uint8


def test_no_image_and_empty_image_mean_none():
    assert decode_image(None) is None and decode_image(b'') is None


def test_bad_images_get_the_right_error():
    ok, png = cv2.imencode('.png', np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(UnsupportedMediaError, match='not an image'):
        decode_image(b'just some text\n')
    with pytest.raises(UnsupportedMediaError, match='not an image'):
        decode_image(ply_bytes(np.zeros((4, 3))))
    with pytest.raises(BadRequestError, match='PNG data is truncated or corrupt'):
        decode_image(png.tobytes()[:60])
    with pytest.raises(BadRequestError, match='JPEG'):
        decode_image(b'\xff\xd8\xff\xe0' + b'\0' * 100)


def test_image_pixel_limit_is_checked_from_the_header_before_decoding():
    ok, png = cv2.imencode('.png', np.zeros((8, 8, 3), np.uint8))
    huge = bytearray(png.tobytes())
    huge[16:24] = (100_000).to_bytes(4, 'big') + (100_000).to_bytes(4, 'big')  # IHDR claims 10^10 pixels
    with pytest.raises(PayloadTooLargeError, match='100000x100000 pixels'):
        decode_image(bytes(huge))
    ok, jpg = cv2.imencode('.jpg', np.zeros((30, 70, 3), np.uint8))
    assert codec.image_size(jpg.tobytes()) == (70, 30)
    with pytest.raises(PayloadTooLargeError, match='70x30'):
        decode_image(jpg.tobytes(), Limits(max_image_pixels=2000))


# --------------------------------------------------------------------------------------------------
# Options


def test_options_default_to_the_api_config():
    from vizion3d_ros.core.api import ObjectMaskAnnotation3DConfig

    opts = AnnotationOptions(model_backend='  ', fx='', classes='')
    assert opts.model_backend is None and opts.fx is None and opts.classes is None
    assert opts.config('cpu') == ObjectMaskAnnotation3DConfig(device='cpu')
    given = AnnotationOptions(fx='500', cy=10, conf_threshold=0.5, lift_mode='naive', imgsz=320.0).config()
    assert (given.fx, given.fy, given.cy, given.conf_threshold, given.lift_mode, given.imgsz) == \
        (500.0, None, 10.0, 0.5, 'naive', 320)


@pytest.mark.parametrize('kwargs, words', [
    ({'fx': 0}, 'fx must be a positive'),
    ({'fy': -3}, 'fy must be a positive'),
    ({'fx': 'abc'}, 'fx must be a number'),
    ({'cx': math.nan}, 'cx must be finite'),
    ({'fx': math.inf}, 'fx must be finite'),
    ({'conf_threshold': 1.5}, r'conf_threshold must be in \[0, 1\]'),
    ({'iou_threshold': -0.01}, r'iou_threshold must be in \[0, 1\]'),
    ({'imgsz': 8}, 'imgsz must be in'),
    ({'imgsz': 320.5}, 'whole number'),
    ({'lift_mode': 'magic'}, 'lift_mode must be one of'),
    ({'cloud_frame': 'enu'}, 'cloud_frame must be one of'),
    ({'model_backend': 'external'}, 'masks'),
])
def test_bad_options_are_invalid_fields(kwargs, words):
    with pytest.raises(InvalidFieldError, match=words):
        AnnotationOptions(**kwargs)


# --------------------------------------------------------------------------------------------------
# Errors, limits and outputs


def test_errors_carry_http_and_grpc_meaning():
    table = {cls: (cls.http_status, cls.grpc_code) for cls in (
        BadRequestError, PayloadTooLargeError, UnsupportedMediaError, InvalidFieldError, UnavailableError,
        codec.ForbiddenError)}
    assert table == {BadRequestError: (400, 'INVALID_ARGUMENT'), PayloadTooLargeError: (413, 'RESOURCE_EXHAUSTED'),
                     UnsupportedMediaError: (415, 'INVALID_ARGUMENT'), InvalidFieldError: (422, 'INVALID_ARGUMENT'),
                     UnavailableError: (503, 'UNAVAILABLE'), codec.ForbiddenError: (403, 'PERMISSION_DENIED')}
    assert all(issubclass(cls, codec.RequestError) for cls in table)


def test_upload_limit_messages():
    limits = Limits(max_upload_bytes=codec.MB)
    limits.check_upload(codec.MB)
    with pytest.raises(PayloadTooLargeError, match=r'\(3.0 MB\) is over this server.s limit of 1.0 MB'):
        limits.check_upload(3 * codec.MB)
    assert 'streamed' in str(limits.upload_error(None))


def test_mask_png_is_8_bit_grey_0_255():
    mask = np.zeros((48, 64), bool)
    mask[10:20, 5:30] = True
    png = cv2.imdecode(np.frombuffer(encode_mask_png(mask), np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.shape == (48, 64) and png.dtype == np.uint8
    assert set(np.unique(png)) == {0, 255}
    np.testing.assert_array_equal(png == 255, mask)


def test_encode_result_builds_the_plys(cloud):
    xyz, rgb = cloud
    points = xyz.astype(np.float64)
    idx = np.array([3, 7, 9])
    obj = np.hstack([points[idx], rgb[idx] / 255.0])
    ann = SimpleNamespace(label='chair', class_id=56, confidence=np.float32(0.5), bbox_2d=[1, 2, 3, 4],
                          mask_2d=np.ones((4, 5), bool), point_indices=idx, point_coords=points[idx], object_cloud=obj)
    painted = rgb.copy()
    painted[idx] = (255, 0, 0)
    result = SimpleNamespace(annotations=[ann], annotated_colors=painted, backend_used='m.pt', warnings=['w'],
                             synthesized_image=True, timings_ms={'inference': 1.0})
    opts = AnnotationOptions(return_object_clouds=True, return_annotated_cloud=True)
    out = encode_result(result, codec.Cloud(points, rgb), opts)
    one = out.annotations[0]
    assert (one.label, one.class_id, one.bbox_2d, out.backend_used) == ('chair', 56, [1.0, 2.0, 3.0, 4.0], 'm.pt')
    part = parse_ply(one.object_cloud_ply)
    np.testing.assert_array_equal(np.c_[part['x'], part['y'], part['z']], xyz[idx])
    np.testing.assert_array_equal(np.c_[part['red'], part['green'], part['blue']], rgb[idx])
    whole = parse_ply(out.annotated_cloud_ply)
    assert whole.dtype.names == ('x', 'y', 'z', 'red', 'green', 'blue') and len(whole) == len(xyz)
    np.testing.assert_array_equal(np.c_[whole['red'], whole['green'], whole['blue']], painted)
    plain = encode_result(result, codec.Cloud(points, rgb), AnnotationOptions())
    assert plain.annotated_cloud_ply is None and plain.annotations[0].object_cloud_ply is None
