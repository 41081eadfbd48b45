"""ROIAlignV2 against a numpy transcription of torchvision's roi_align(aligned=True) (tools/kernel_references.py,
which the GPU kernel check shares): forward and adjoint, input checks, mixed-precision inputs, MindIR export."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn, ops

from maskrcnn.layers.roi_align import ROIAlignV2
from tools import kernel_references
from tools.kernel_references import F32, pooling_matrix, reference_roi_align

STRIDES = (4, 8, 16)
SCALES = tuple(1 / s for s in STRIDES)
CANVAS = (64, 960)  # wide enough for a box whose adaptive grid has ~30 samples per bin along x
CHANNELS = 3


def make_features(rng):
    """One (2, C, H/s, W/s) float32 map per stride."""
    return kernel_references.make_features(rng, STRIDES, CANVAS, CHANNELS)


def make_rois(rng):
    """(R, 5) ROIs of kernel_references.make_rois on every level, and their (R,) levels."""
    return kernel_references.make_rois(rng, CANVAS, len(STRIDES))


def run_pool(pool, features, rois, levels, grad_output, graph_mode):
    """pool(features, rois, levels) and the gradients of sum(pooled * grad_output) w.r.t. each feature level."""
    def pooled(rois, levels, *feature_maps):
        return pool(feature_maps, rois, levels)

    def weighted_sum(rois, levels, grad_output, *feature_maps):
        return (pool(feature_maps, rois, levels) * grad_output).sum()

    gradients = ms.grad(weighted_sum, grad_position=tuple(range(3, 3 + len(features))))
    if graph_mode:
        pooled, gradients = ms.jit(pooled), ms.jit(gradients)
    rois, levels, features = Tensor(rois), Tensor(levels), [Tensor(f) for f in features]
    grads = gradients(rois, levels, Tensor(grad_output), *features)
    return pooled(rois, levels, *features).asnumpy(), [g.asnumpy() for g in grads]


@pytest.mark.parametrize("output_size,sampling_ratio,graph_mode",
                         [(7, 0, False), (7, 2, False), (5, 0, False), (7, 0, True)])
def test_matches_reference(output_size, sampling_ratio, graph_mode):
    rng = np.random.default_rng(output_size + sampling_ratio)
    features, (rois, levels) = make_features(rng), make_rois(rng)
    grad_output = rng.standard_normal((len(rois), CHANNELS, output_size, output_size)).astype(F32)
    pool = ROIAlignV2(output_size, SCALES, sampling_ratio)

    pooled, grads = run_pool(pool, features, rois, levels, grad_output, graph_mode)

    expected_pooled, expected_grads = reference_roi_align(features, rois, levels, SCALES, output_size,
                                                          sampling_ratio, grad_output)
    np.testing.assert_allclose(pooled, expected_pooled, rtol=0, atol=1e-5)
    for grad, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-4)
    assert not pooled[levels < 0].any()
    assert np.abs(pooled[levels >= 0]).sum(axis=(1, 2, 3)).min() > 0


def test_an_image_extent_pools_as_from_maps_that_end_there():
    """Image 1's extent (40, 610) leaves 10 x 153 cells of p2 (and the ceil of that on p3, p4): its ROIs, some
    across the extent's edge, pool and back-propagate as on maps cut to those cells; image 0 keeps whole maps."""
    rng = np.random.default_rng(9)
    features, (rois, levels) = make_features(rng), make_rois(rng)
    grad_output = rng.standard_normal((len(rois), CHANNELS, 7, 7)).astype(F32)
    extents = np.array([CANVAS, (40, 610)], np.int32)
    pool = ROIAlignV2(7, SCALES, 0)

    def weighted_sum(rois, levels, extents, grad_output, *feature_maps):
        return (pool(feature_maps, rois, levels, extents) * grad_output).sum()

    inputs = (Tensor(rois), Tensor(levels), Tensor(extents))
    pooled = pool(tuple(Tensor(f) for f in features), *inputs).asnumpy()
    grads = ms.grad(weighted_sum, grad_position=(4, 5, 6))(*inputs, Tensor(grad_output),
                                                            *(Tensor(f) for f in features))

    expected_pooled, expected_grads = reference_roi_align(features, rois, levels, SCALES, 7, 0, grad_output,
                                                          extents)
    np.testing.assert_allclose(pooled, expected_pooled, rtol=0, atol=1e-5)
    for grad, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(grad.asnumpy(), expected, rtol=0, atol=1e-4)
    cut = [f[1:, :, :-(-40 // s), :-(-610 // s)] for f, s in zip(features, STRIDES)]
    on_image_1 = (rois[:, 0] == 1) & (levels >= 0)
    assert on_image_1.sum() > 5
    cut_rois = rois[on_image_1].copy()
    cut_rois[:, 0] = 0
    np.testing.assert_allclose(pooled[on_image_1], pool(tuple(Tensor(f) for f in cut), Tensor(cut_rois),
                                                        Tensor(levels[on_image_1])).asnumpy(), rtol=0, atol=0)


def test_reference_agrees_with_builtin_roialign_where_their_semantics_meet():
    """With a fixed sampling ratio and boxes of at least one feature pixel, MindSpore's ROIAlign (legacy
    roi_end_mode 0) on boxes shifted by -0.5 / scale computes ROIAlignV2: an independent check of the reference."""
    rng = np.random.default_rng(3)
    feature = make_features(rng)[0]
    _, _, height, width = feature.shape
    x1, y1 = rng.uniform(-10, CANVAS[1], 20), rng.uniform(-10, CANVAS[0], 20)
    rois = np.stack([rng.integers(0, 2, 20), x1, y1, x1 + rng.uniform(4, 300, 20), y1 + rng.uniform(4, 60, 20)],
                    1).astype(F32)
    shifted = rois.copy()
    shifted[:, 1:] -= F32(0.5 / SCALES[0])

    builtin = ops.ROIAlign(7, 7, SCALES[0], 2, 0)(Tensor(feature), Tensor(shifted)).asnumpy()

    expected = np.stack([(feature[int(roi[0])].reshape(CHANNELS, -1) @ pooling_matrix(roi, SCALES[0], height,
                                                                                       width, 7, 2).T)
                         for roi in rois]).reshape(builtin.shape)
    np.testing.assert_allclose(builtin, expected, rtol=0, atol=1e-5)


class _PoolingNet(nn.Cell):
    """A small inference network around ROIAlignV2, for the MindIR round trip."""

    def __init__(self):
        super().__init__()
        self.pool = ROIAlignV2(7, SCALES, 0)

    def construct(self, p2, p3, p4, rois, levels):
        return self.pool((p2, p3, p4), rois, levels) * 2


def test_mindir_export_and_load_give_the_same_output(tmp_path):
    rng = np.random.default_rng(4)
    features, (rois, levels) = make_features(rng), make_rois(rng)
    inputs = [Tensor(f) for f in features] + [Tensor(rois), Tensor(levels)]
    net = _PoolingNet()
    expected = net(*inputs).asnumpy()

    ms.export(net, *inputs, file_name=str(tmp_path / "pool"), file_format="MINDIR")
    loaded = nn.GraphCell(ms.load(str(tmp_path / "pool.mindir")))

    np.testing.assert_array_equal(loaded(*inputs).asnumpy(), expected)


@pytest.mark.parametrize("batch_index,level,message", [(0, 3, "level"), (2, 0, "batch index")])
def test_invalid_rois_raise(batch_index, level, message, capfd):
    rng = np.random.default_rng(5)
    rois = np.array([[batch_index, 10, 10, 50, 40]], F32)
    with pytest.raises(RuntimeError):
        ROIAlignV2(7, SCALES, 0)(tuple(Tensor(f) for f in make_features(rng)), Tensor(rois),
                                 Tensor(np.array([level], np.int32))).asnumpy()
    assert message in capfd.readouterr().err


def test_malformed_rois_shape_raises():
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match="rois must be"):
        ROIAlignV2(7, SCALES, 0)(tuple(Tensor(f) for f in make_features(rng)), Tensor(np.zeros((3, 4), F32)),
                                 Tensor(np.zeros(3, np.int32)))


def test_feature_count_must_match_spatial_scales():
    rng = np.random.default_rng(8)
    rois, levels = make_rois(rng)
    with pytest.raises(ValueError, match="3 spatial scales but got 2 feature maps"):
        ROIAlignV2(7, SCALES, 0)(tuple(Tensor(f) for f in make_features(rng)[:2]), Tensor(rois), Tensor(levels))


def test_float16_features_are_pooled_in_float32():
    rng = np.random.default_rng(7)
    rois, levels = make_rois(rng)
    features = [f.astype(np.float16) for f in make_features(rng)]
    pool = ROIAlignV2(7, SCALES, 0)

    pooled = pool(tuple(Tensor(f) for f in features), Tensor(rois), Tensor(levels))

    assert pooled.dtype == ms.float32
    expected = pool(tuple(Tensor(f.astype(F32)) for f in features), Tensor(rois), Tensor(levels))
    np.testing.assert_array_equal(pooled.asnumpy(), expected.asnumpy())
