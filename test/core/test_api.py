"""The vizion3D-compatible API: external masks on ray-cast scenes, the real model on the real TUM frame."""
import math

import numpy as np
import open3d as o3d
import pytest
from conftest import TUM

from vizion3d_ros.core.api import (
    IntrinsicsError,
    ModelUnavailableError,
    ObjectMaskAnnotation3D,
    ObjectMaskAnnotation3DCommand,
    ObjectMaskAnnotation3DConfig,
    cached_backend,
    oriented_box,
)
from vizion3d_ros.core.camera.frames import gl_to_optical, optical_to_gl
from vizion3d_ros.core.camera.intrinsics import intrinsics_from_cloud
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.pipeline import lift_segmentation
from vizion3d_ros.core.render.colors import palette
from vizion3d_ros.core.render.frontview import render_front_view
from vizion3d_ros.core.segmentation.external import ExternalMasksBackend
from vizion3d_ros.core.synthetic import scenes as syn

CAM = syn.SMALL_CAMERA


@pytest.fixture(scope='module')
def scene_data():
    """A ray-cast camera cloud, its exact ids, the exact label image and a colour image."""
    scene = dict(syn.standard_scenes())['occlusion']
    points, ids = syn.camera_cloud(scene, CAM)
    _, id_image = syn.render_camera(scene, CAM)
    labels = np.where(id_image > 0, id_image, 0).astype(np.uint8)
    colors = palette(8)[ids + 1]
    image = palette(8)[id_image + 1]
    return points, ids, labels, colors, image


def exact_config() -> ObjectMaskAnnotation3DConfig:
    return ObjectMaskAnnotation3DConfig(fx=CAM.fx, fy=CAM.fy, cx=CAM.cx, cy=CAM.cy)


def to_o3d(points: np.ndarray, colors: np.ndarray | None = None) -> o3d.geometry.PointCloud:
    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(points.astype(np.float64))
    if colors is not None:
        pcd.colors = o3d.utility.Vector3dVector(colors / 255.0)
    return pcd


def run(**kwargs):
    return ObjectMaskAnnotation3D().run(ObjectMaskAnnotation3DCommand(**kwargs))


def test_external_masks_match_the_lifting_and_stay_in_the_input_space(scene_data):
    points, ids, labels, colors, image = scene_data
    result = run(point_cloud=to_o3d(points, colors), image_input=image, masks=labels, advanced_config=exact_config())
    seg = ExternalMasksBackend.from_label_image(labels).segment(image)
    expected = lift_segmentation(points, CAM, seg, mode='visible')
    assert result.backend_used == 'external'
    assert [a.label for a in result.annotations] == [o.label for o in expected] == \
        ['instance_1', 'instance_2', 'instance_3']
    inputs = np.asarray(to_o3d(points).points)
    for ann, obj in zip(result.annotations, expected, strict=True):
        np.testing.assert_array_equal(ann.point_indices, obj.point_indices)
        np.testing.assert_array_equal(ann.point_coords, inputs[ann.point_indices])
        assert ann.point_count > 1000
        # the exact ids agree: the masks are exact and the cloud is the camera's
        k = int(ann.label.split('_')[1])
        assert (ids[ann.point_indices] == k).mean() > 0.99
        assert ann.mask_2d.shape == labels.shape and ann.mask_2d.dtype == bool
        np.testing.assert_allclose(ann.centroid, inputs[ann.point_indices].mean(axis=0))
        np.testing.assert_array_equal(ann.aabb_min, inputs[ann.point_indices].min(axis=0))
        np.testing.assert_allclose(np.asarray(ann.object_cloud.points), inputs[ann.point_indices])
        np.testing.assert_allclose(np.asarray(ann.object_cloud.colors) * 255, colors[ann.point_indices], atol=1e-6)
        assert ann.distance_m == pytest.approx(float(np.linalg.norm(ann.centroid)), rel=1e-5)
    cloud = result.annotated_cloud
    assert isinstance(cloud, o3d.geometry.PointCloud)
    np.testing.assert_array_equal(np.asarray(cloud.points), inputs)  # same points, same order (NaNs too)
    painted = np.round(np.asarray(cloud.colors) * 255).astype(np.uint8)
    pal = palette(len(result.annotations))
    for k, ann in enumerate(result.annotations):
        assert (painted[ann.point_indices] == pal[k]).all()
        assert (result.instance_ids[ann.point_indices] == ann.id).all()
    untouched = result.instance_ids == 0
    np.testing.assert_array_equal(painted[untouched], colors[untouched])


def test_numpy_input_gives_the_same_result_as_open3d(scene_data):
    points, _, labels, colors, image = scene_data
    from_o3d = run(point_cloud=to_o3d(points, colors), image_input=image, masks=labels,
                   advanced_config=exact_config())
    from_np = run(point_cloud=points, colors=colors, image_input=image, masks=labels, advanced_config=exact_config(),
                  output_format='numpy')
    assert len(from_np.annotations) == len(from_o3d.annotations) == 3
    for a, b in zip(from_np.annotations, from_o3d.annotations, strict=True):
        np.testing.assert_array_equal(a.point_indices, b.point_indices)
    cloud = from_np.annotated_cloud
    assert isinstance(cloud, np.ndarray) and cloud.shape == (len(points), 6)
    np.testing.assert_array_equal(cloud[:, :3], points.astype(np.float64))
    np.testing.assert_allclose(cloud[:, 3:] * 255, from_np.annotated_colors, atol=1e-6)
    obj = from_np.annotations[0].object_cloud
    assert obj.shape == (from_np.annotations[0].point_count, 6)


def test_optical_frame_and_extrinsic_give_the_same_points(scene_data):
    points, _, labels, _, image = scene_data
    base = run(point_cloud=points, image_input=image, masks=labels, advanced_config=exact_config(),
               output_format='numpy')
    optical = gl_to_optical(points)
    flipped = run(point_cloud=optical, image_input=image, masks=labels, advanced_config=exact_config(),
                  cloud_frame='optical', output_format='numpy')
    # the cloud in some other frame (a robot's base), with the transform that brings it into the camera's
    angle = math.radians(30.0)
    rot = np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    camera_from_base = np.eye(4)
    camera_from_base[:3, :3] = rot
    camera_from_base[:3, 3] = (0.3, -0.2, 0.5)
    in_base = (points.astype(np.float64) - camera_from_base[:3, 3]) @ rot  # inverse transform
    moved = run(point_cloud=in_base, image_input=image, masks=labels, advanced_config=exact_config(),
                extrinsic=camera_from_base, output_format='numpy')
    for a, b, c in zip(base.annotations, flipped.annotations, moved.annotations, strict=True):
        np.testing.assert_array_equal(a.point_indices, b.point_indices)
        np.testing.assert_array_equal(a.point_indices, c.point_indices)
        np.testing.assert_array_equal(b.point_coords, optical[b.point_indices].astype(np.float64))
        np.testing.assert_allclose(c.point_coords, in_base[c.point_indices])
        np.testing.assert_allclose(b.centroid, gl_to_optical(a.centroid), atol=1e-5)
        assert a.distance_m == pytest.approx(c.distance_m, rel=1e-4)


def test_point_cloud_only_mode_renders_and_lifts_without_an_image(scene_data):
    points, ids, _, colors, _ = scene_data
    # masks drawn on the view the API will synthesise: the cloud-derived camera
    cam = intrinsics_from_cloud(points).camera
    id_view, _ = render_front_view(points, np.stack([ids.clip(0, 255).astype(np.uint8)] * 3, axis=1), cam)
    labels = id_view[:, :, 0]
    result = run(point_cloud=points, colors=colors, masks=labels, output_format='numpy')
    assert result.synthesized_image
    assert result.camera == cam and result.image.shape == (cam.height, cam.width, 3)
    assert len(result.annotations) == 3
    for ann in result.annotations:
        k = int(ann.label.split('_')[1])
        got = ann.point_indices
        assert (ids[got] == k).mean() > 0.99
        assert len(got) > 0.95 * (ids == k).sum()


def test_oriented_box_recovers_a_turned_box():
    rng = np.random.default_rng(2)
    size = np.array([0.8, 0.4, 0.2])
    local = (rng.random((5000, 3)) - 0.5) * size
    yaw = math.radians(35.0)
    rot = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    center = np.array([0.5, -0.2, -2.0])
    center_got, rot_got, extents = oriented_box(local @ rot.T + center)
    np.testing.assert_allclose(extents, size, rtol=0.02)
    np.testing.assert_allclose(center_got, center, atol=0.01)
    np.testing.assert_allclose(rot_got.T @ rot_got, np.eye(3), atol=1e-9)
    assert np.linalg.det(rot_got) == pytest.approx(1.0)
    np.testing.assert_allclose(np.abs(rot_got.T @ rot), np.eye(3), atol=0.02)  # same axes, up to sign
    assert oriented_box(np.zeros((0, 3)))[2].tolist() == [0.0, 0.0, 0.0]


def test_bad_inputs_are_clear_errors(scene_data, tmp_path):
    points, _, labels, _, image = scene_data
    with pytest.raises(ValueError, match='external masks are 320x240'):
        run(point_cloud=points, image_input=image[:200], masks=labels)
    with pytest.raises(ValueError, match='masks were given'):
        run(point_cloud=points, image_input=image, masks=labels, model_backend='/some/model.pt')
    with pytest.raises(ValueError, match='single-channel'):
        run(point_cloud=points, image_input=image, masks=np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        run(point_cloud=points, image_input=str(tmp_path / 'missing.png'), masks=labels)
    with pytest.raises(ValueError, match='cloud_frame'):
        run(point_cloud=points, image_input=image, masks=labels, cloud_frame='ned')
    lidar, _ = syn.sensor_cloud(dict(syn.standard_scenes())['occlusion'], np.eye(4), 360.0, 30.0, 360, 16)
    with pytest.raises(IntrinsicsError, match='cannot derive a camera'):
        run(point_cloud=lidar, masks=labels)


# --------------------------------------------------------------------------------------------------
# The real checkpoint on the real TUM frame


@pytest.fixture(scope='module')
def tum_gl(tum_frame):
    return optical_to_gl(depth_to_points_optical(tum_frame.depth, tum_frame.camera))


@pytest.mark.model
def test_real_model_finds_the_tum_chairs(tum_frame, tum_gl, model_pt):
    cam = tum_frame.camera
    config = ObjectMaskAnnotation3DConfig(fx=cam.fx, fy=cam.fy, cx=cam.cx, cy=cam.cy, device='cpu')
    result = run(point_cloud=to_o3d(tum_gl), image_input=str(TUM / 'color.png'), model_backend=str(model_pt),
                 advanced_config=config)
    assert result.backend_used == str(model_pt)
    confidences = [a.confidence for a in result.annotations]
    assert confidences == sorted(confidences, reverse=True)
    chairs = [a for a in result.annotations if a.label == 'chair']
    assert len(chairs) >= 2
    for chair in chairs:
        assert chair.point_count > 2000
        assert chair.class_id == 56
        assert 1.0 < -chair.centroid[2] < 4.0  # metres in front of the camera (GL: -Z forward)
        np.testing.assert_array_equal(chair.point_coords, tum_gl[chair.point_indices].astype(np.float64))
    assert len(np.asarray(result.annotated_cloud.points)) == len(tum_gl)


@pytest.mark.model
def test_cached_backend_is_shared_per_checkpoint_and_settings(model_pt, tmp_path):
    config = ObjectMaskAnnotation3DConfig(device='cpu')
    backend = cached_backend(model_pt, config)
    assert cached_backend(str(model_pt), ObjectMaskAnnotation3DConfig(device='cpu')) is backend
    assert cached_backend(model_pt, ObjectMaskAnnotation3DConfig(device='cpu', imgsz=320)) is not backend
    with pytest.raises(ValueError, match='no_such_class'):
        cached_backend(model_pt, ObjectMaskAnnotation3DConfig(device='cpu', classes='no_such_class'))
    (tmp_path / 'bad.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ModelUnavailableError, match='could not load model'):
        cached_backend(tmp_path / 'bad.pt', config)


@pytest.mark.model
def test_real_model_finds_a_chair_in_the_cloud_alone(tum_frame, tum_gl, model_pt):
    colors = tum_frame.color.reshape(-1, 3)
    result = run(point_cloud=to_o3d(tum_gl, colors), model_backend=str(model_pt),
                 advanced_config=ObjectMaskAnnotation3DConfig(device='cpu'))
    assert result.synthesized_image
    chairs = [a for a in result.annotations if a.label == 'chair']
    assert chairs, f'no chair among {[a.label for a in result.annotations]}'
    assert max(c.point_count for c in chairs) > 2000
    assert all(1.0 < -c.centroid[2] < 4.0 for c in chairs)
