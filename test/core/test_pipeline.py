"""FramePipeline on the real TUM frame: real masks lifted onto the real depth cloud."""
import threading

import numpy as np
import pytest

from vizion3d_ros.core.camera.frames import optical_to_gl
from vizion3d_ros.core.io.rgbd import depth_to_points_optical
from vizion3d_ros.core.pipeline import FramePipeline, lift_segmentation

pytestmark = pytest.mark.model


class PrecomputedBackend:
    """Returns a segmentation computed beforehand by the real model (saves a second inference)."""

    name = 'precomputed'

    def __init__(self, seg):
        self.seg = seg

    def segment(self, image_rgb):
        return self.seg


def test_tum_chairs_are_lifted_onto_their_masked_points(tum_frame, tum_segmentation):
    cam = tum_frame.camera
    optical = depth_to_points_optical(tum_frame.depth, cam)
    result = FramePipeline(PrecomputedBackend(tum_segmentation), lift_mode='exclusive').process(
        tum_frame.color, cam, optical_to_gl(optical), stats_points=optical)
    chairs = [o for o in result.objects if o.label == 'chair']
    assert len(chairs) >= 2
    taken = np.zeros(len(optical), bool)
    has_depth = np.isfinite(tum_frame.depth).reshape(-1)
    for obj in result.objects:  # most confident first
        idx = obj.point_indices.astype(np.int64)
        # organised cloud from depth: point i is pixel i, so the object's points are exactly its
        # masked pixels with depth that no more confident object took
        expected = np.flatnonzero(obj.mask.reshape(-1) & has_depth & ~taken)
        np.testing.assert_array_equal(idx, expected)
        assert not taken[idx].any(), 'exclusive: a point belongs to at most one object'
        taken[idx] = True
        np.testing.assert_allclose(obj.geometry.centroid, optical[idx].astype(np.float64).mean(axis=0),
                                   rtol=1e-9)
    for chair in chairs:
        assert chair.geometry.point_count > 1000
        assert 0.5 < chair.geometry.centroid[2] < 5.0  # metres in front of the camera
    assert [o.id for o in result.objects] == list(range(1, len(result.objects) + 1))
    assert set(result.timings_ms) == {'inference', 'alongside', 'lifting', 'geometry'}


def test_exclusive_keeps_every_masked_point_of_the_most_confident_object(tum_frame, tum_segmentation):
    cam = tum_frame.camera
    optical = depth_to_points_optical(tum_frame.depth, cam)
    objs = lift_segmentation(optical_to_gl(optical), cam, tum_segmentation, mode='exclusive')
    top = objs[0]
    expected = np.flatnonzero(top.mask.reshape(-1) & np.isfinite(tum_frame.depth).reshape(-1))
    np.testing.assert_array_equal(top.point_indices, expected)


def test_image_and_camera_size_mismatch_is_an_error(tum_frame, tum_segmentation):
    cam = tum_frame.camera
    with pytest.raises(ValueError, match='image is 320x240'):
        FramePipeline(PrecomputedBackend(tum_segmentation)).process(
            tum_frame.color[:240, :320], cam, np.zeros((1, 3), np.float32))


def test_mask_crop_is_tight(tum_frame, tum_segmentation):
    cam = tum_frame.camera
    obj = lift_segmentation(optical_to_gl(depth_to_points_optical(tum_frame.depth, cam)), cam,
                            tum_segmentation)[0]
    (x, y, w, h), crop = obj.mask_crop()
    assert crop.shape == (h, w) and crop.sum() == obj.mask.sum()
    assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()


def test_default_visible_mode_trims_borders_but_keeps_the_objects(tum_frame, tum_segmentation):
    """On the real frame the default mode trims mask spill but never most of an object.

    Its points stay inside their own masks (organised cloud: point i is pixel i); where two masks
    overlap, geometry may give a pixel to the less confident one, so it is not a plain subset.
    """
    cam = tum_frame.camera
    gl = optical_to_gl(depth_to_points_optical(tum_frame.depth, cam))
    exclusive = lift_segmentation(gl, cam, tum_segmentation, mode='exclusive')
    visible = lift_segmentation(gl, cam, tum_segmentation)
    assert [o.label for o in visible] == [o.label for o in exclusive]
    import cv2
    for v, e in zip(visible, exclusive):
        assert v.mask.reshape(-1)[v.point_indices].all()
        assert np.isin(v.point_indices, e.point_indices).mean() > 0.99
        # only the border is trimmed: what was dropped lies within the edge band (5 px) of the mask's edge
        dropped = np.setdiff1d(e.point_indices, v.point_indices)
        inside = cv2.distanceTransform(np.pad(e.mask.astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
        assert (inside.reshape(-1)[dropped] <= 5.5).mean() > 0.95
        if e.label == 'chair':
            assert len(v.point_indices) >= 0.7 * len(e.point_indices)
    assert sum(len(v.point_indices) for v in visible) < sum(len(e.point_indices) for e in exclusive)


class GatedBackend(PrecomputedBackend):
    """Segments only once the caller has reached ``gate``: proves the caller's work runs alongside."""

    def __init__(self, seg):
        super().__init__(seg)
        self.gate = threading.Event()
        self.threads = []

    def segment(self, image_rgb):
        self.threads.append(threading.current_thread())
        if not self.gate.wait(timeout=10):
            raise TimeoutError('the caller never ran while the model was running')
        return self.seg


def test_the_cloud_is_prepared_while_the_model_runs(tum_frame, tum_segmentation):
    cam = tum_frame.camera
    optical = depth_to_points_optical(tum_frame.depth, cam)
    backend = GatedBackend(tum_segmentation)
    pipeline = FramePipeline(backend, lift_mode='exclusive')
    with pipeline.start(tum_frame.color, cam) as frame:
        points = optical_to_gl(optical)  # the caller's own preparation, while the backend waits
        backend.gate.set()
        result = frame.finish(points, stats_points=optical)
    assert backend.threads and backend.threads[0] is not threading.current_thread()
    assert len(result.objects) == len(lift_segmentation(points, cam, tum_segmentation, mode='exclusive'))
    assert result.timings_ms['inference'] > 0
    # the same thread serves the next frame
    backend.gate.set()
    pipeline.process(tum_frame.color, cam, points)
    assert backend.threads[1] is backend.threads[0]
    pipeline.close()
    assert not backend.threads[0].is_alive()


def test_a_frame_rejected_while_the_model_runs_waits_for_it(tum_frame, tum_segmentation):
    """Leaving the frame early (bad cloud) still waits: the next frame never overlaps this inference."""
    backend = GatedBackend(tum_segmentation)
    pipeline = FramePipeline(backend)
    timer = threading.Timer(0.2, backend.gate.set)
    timer.start()
    with pytest.raises(RuntimeError, match='bad cloud'):
        with pipeline.start(tum_frame.color, tum_frame.camera) as frame:
            raise RuntimeError('bad cloud')
    assert backend.gate.is_set() and frame._future.done()
    pipeline.close()


def test_an_inference_error_surfaces_in_finish(tum_frame):
    class Broken:
        name = 'broken'

        def segment(self, image_rgb):
            raise RuntimeError('CUDA out of memory')

    with pytest.raises(RuntimeError, match='out of memory'):
        FramePipeline(Broken()).process(tum_frame.color, tum_frame.camera, np.zeros((1, 3), np.float32))
