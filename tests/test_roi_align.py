"""ROIAlignV2 against a numpy transcription of torchvision's roi_align(aligned=True): forward and adjoint."""
import ctypes
import itertools
from concurrent.futures import ThreadPoolExecutor

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn, ops

from maskrcnn.layers import build
from maskrcnn.layers.roi_align import ROIAlignV2

F32 = np.float32
STRIDES = (4, 8, 16)
SCALES = tuple(1 / s for s in STRIDES)
CANVAS = (64, 960)  # wide enough for a box whose adaptive grid has ~30 samples per bin along x
CHANNELS = 3


def bilinear_taps(y, x, height, width):
    """[(flat index into (H, W), weight)] of one bilinear sample at feature coordinates (y, x)."""
    if not (-1 <= y <= height and -1 <= x <= width):
        return []
    y = F32(0) if y <= 0 else y
    x = F32(0) if x <= 0 else x
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = F32(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = F32(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - F32(y_low), x - F32(x_low)
    hy, hx = F32(1) - ly, F32(1) - lx
    return [(y_low * width + x_low, hy * hx), (y_low * width + x_high, hy * lx),
            (y_high * width + x_low, ly * hx), (y_high * width + x_high, ly * lx)]


def pooling_matrix(roi, scale, height, width, output_size, sampling_ratio):
    """(P*P, H*W) matrix taking a flattened (H, W) plane to the (P, P) bins of roi [b, x1, y1, x2, y2]."""
    p = output_size
    start_x, start_y, end_x, end_y = (F32(v) * F32(scale) - F32(0.5) for v in roi[1:])
    bin_w, bin_h = (end_x - start_x) / F32(p), (end_y - start_y) / F32(p)
    grid_h = sampling_ratio if sampling_ratio > 0 else int(np.ceil((end_y - start_y) / F32(p)))
    grid_w = sampling_ratio if sampling_ratio > 0 else int(np.ceil((end_x - start_x) / F32(p)))
    count = max(grid_h * grid_w, 1)
    matrix = np.zeros((p * p, height * width))
    for ph, pw, iy, ix in itertools.product(range(p), range(p), range(grid_h), range(grid_w)):
        y = start_y + F32(ph) * bin_h + F32(iy + 0.5) * bin_h / F32(grid_h)
        x = start_x + F32(pw) * bin_w + F32(ix + 0.5) * bin_w / F32(grid_w)
        for index, weight in bilinear_taps(y, x, height, width):
            matrix[ph * p + pw, index] += weight / count
    return matrix


def reference_roi_align(features, rois, levels, output_size, sampling_ratio, grad_output):
    """Pooled (R, C, P, P) and the gradients of sum(pooled * grad_output) w.r.t. each feature level."""
    pooled = np.zeros(grad_output.shape)
    grads = [np.zeros(f.shape) for f in features]
    for r, (roi, level) in enumerate(zip(rois, levels)):
        if level < 0:
            continue
        batch = int(roi[0])
        _, channels, height, width = features[level].shape
        matrix = pooling_matrix(roi, SCALES[level], height, width, output_size, sampling_ratio)
        pooled[r] = (features[level][batch].reshape(channels, -1) @ matrix.T).reshape(pooled.shape[1:])
        grads[level][batch] += (grad_output[r].reshape(channels, -1) @ matrix).reshape(channels, height, width)
    return pooled, grads


def make_features(rng):
    """One (2, C, H/s, W/s) float32 map per stride."""
    return [rng.standard_normal((2, CHANNELS, CANVAS[0] // s, CANVAS[1] // s)).astype(F32) for s in STRIDES]


def make_rois(rng):
    """(R, 5) ROIs on a 2-image batch and their (R,) levels: ordinary boxes, boxes under one bin, elongated
    boxes, boxes on or across the border, a 925 x 6 px box (34 x 1 samples per bin), two skipped (-1) ROIs."""
    height, width = CANVAS
    groups = []
    for count, (min_size, max_size) in ((12, (8, 60)), (6, (0.2, 5)), (4, (100, 900))):
        x1, y1 = rng.uniform(0, width - 10, count), rng.uniform(0, height - 10, count)
        groups.append(np.stack([x1, y1, x1 + rng.uniform(min_size, max_size, count),
                                y1 + rng.uniform(min_size, max_size, count) / 4], 1))
    groups.append(np.array([[-6, -3, 20, 12], [width - 30, height - 9, width + 7, height + 5],
                            [0, 0, width, height], [5, 20, 930, 26], [100, 0, 104, height]]))
    boxes = np.concatenate(groups)
    batch = rng.integers(0, 2, len(boxes))
    levels = rng.integers(0, len(STRIDES), len(boxes))
    levels[-2] = 0  # the 925 x 6 px box, on the finest level
    levels[[1, 13]] = -1
    return np.concatenate([batch[:, None], boxes], 1).astype(F32), levels.astype(np.int32)


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

    expected_pooled, expected_grads = reference_roi_align(features, rois, levels, output_size, sampling_ratio,
                                                          grad_output)
    np.testing.assert_allclose(pooled, expected_pooled, rtol=0, atol=1e-5)
    for grad, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-4)
    assert not pooled[levels < 0].any()
    assert np.abs(pooled[levels >= 0]).sum(axis=(1, 2, 3)).min() > 0


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


def test_float16_features_raise():
    rng = np.random.default_rng(7)
    rois, levels = make_rois(rng)
    with pytest.raises(TypeError, match="float32 features"):
        ROIAlignV2(7, SCALES, 0)(tuple(Tensor(f.astype(np.float16)) for f in make_features(rng)), Tensor(rois),
                                 Tensor(levels))


def test_concurrent_builds_leave_one_loadable_library_then_reuse_it(tmp_path, monkeypatch):
    monkeypatch.setenv(build.KERNEL_DIR_ENV, str(tmp_path))
    with ThreadPoolExecutor(3) as executor:
        libraries = set(executor.map(lambda _: build.build_cpu_kernel("roi_align_cpu.cc"), range(3)))
    (library,) = libraries
    assert sorted(p.name for p in tmp_path.iterdir()) == [library.name]
    assert ctypes.CDLL(str(library)).RoiAlignV2Backward

    def no_compiler_call(*args, **kwargs):
        raise AssertionError("the cached library should have been reused")

    monkeypatch.setattr(build.subprocess, "run", no_compiler_call)
    assert build.build_cpu_kernel("roi_align_cpu.cc") == library


def test_missing_compiler_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv(build.KERNEL_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs g\\+\\+"):
        build.build_cpu_kernel("roi_align_cpu.cc")
