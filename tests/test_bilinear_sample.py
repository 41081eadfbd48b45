"""PointRend's channels-last bilinear sampling (BilinearSample, BilinearSampleAddRelu) against the numpy references
of tools/kernel_references.py, which the GPU kernel check shares; the references against MindSpore's grid_sample."""
import mindspore as ms
import numpy as np
from mindspore import Tensor, ops

from maskrcnn_pointrend.layers.bilinear_sample import BilinearSample, BilinearSampleAddRelu
from tools.kernel_references import (make_points, reference_bilinear_sample, reference_bilinear_scatter,
                                     reference_sample_add_relu)

ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


def test_reference_equals_grid_sample():
    """An independent check of the reference: MindSpore's grid_sample on NCHW maps, one map at a time."""
    rng = np.random.default_rng(3)
    maps = rng.standard_normal((3, 6, 9, 11)).astype(np.float32)
    points, batch_index = make_points(rng, 300, 3)
    finite = np.isfinite(points).all(1) & (np.abs(points) < 10).all(1)
    points, batch_index = points[finite], batch_index[finite]
    expected = np.zeros((len(points), 6), np.float32)
    for n in range(3):
        rows = batch_index == n
        grid = Tensor((2 * points[rows] - 1)[None, :, None, :].astype(np.float32))
        sampled = ops.grid_sample(Tensor(maps[n:n + 1]), grid, "bilinear", "zeros", False)
        expected[rows] = sampled.asnumpy()[0, :, :, 0].T

    got = reference_bilinear_sample(maps.transpose(0, 2, 3, 1), points, batch_index)

    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_sample_and_its_gradient_match_the_reference():
    rng = np.random.default_rng(4)
    maps = rng.standard_normal((3, 9, 11, 6)).astype(np.float32)
    points, batch_index = make_points(rng, 400, 3)
    weights = rng.standard_normal((len(points), 6)).astype(np.float32)
    sample = BilinearSample()

    out = sample(Tensor(maps), Tensor(points), Tensor(batch_index))
    grad = ms.grad(lambda m: (sample(m, Tensor(points), Tensor(batch_index)) * Tensor(weights)).sum())(Tensor(maps))

    np.testing.assert_allclose(out.asnumpy(), reference_bilinear_sample(maps, points, batch_index), rtol=0, atol=1e-5)
    np.testing.assert_allclose(grad.asnumpy(), reference_bilinear_scatter(weights, points, batch_index, maps.shape),
                               rtol=0, atol=1e-4)


def test_fused_sample_add_relu_and_its_gradients_match_the_reference():
    rng = np.random.default_rng(5)
    maps = rng.standard_normal((2, 5, 5, 8)).astype(np.float32)
    points, batch_index = make_points(rng, 60, 2, extent=(0, 1))
    base = rng.standard_normal((len(points), 8)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    weights = rng.standard_normal((len(points), 8)).astype(np.float32)
    fused = BilinearSampleAddRelu()

    def weighted(base, maps, bias):
        return (fused(base, maps, Tensor(points), Tensor(batch_index), bias) * Tensor(weights)).sum()

    out = fused(Tensor(base), Tensor(maps), Tensor(points), Tensor(batch_index), Tensor(bias))
    grads = ms.grad(weighted, (0, 1, 2))(Tensor(base), Tensor(maps), Tensor(bias))

    expected_out, expected_grads = reference_sample_add_relu(base, maps, points, batch_index, bias, weights)
    np.testing.assert_allclose(out.asnumpy(), expected_out, rtol=0, atol=1e-5)
    for got, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(got.asnumpy(), expected, rtol=0, atol=1e-4)


def test_float16_inputs_are_computed_in_float32_with_float16_gradients():
    rng = np.random.default_rng(6)
    maps = rng.standard_normal((2, 5, 5, 8)).astype(np.float16)
    points, batch_index = rng.uniform(0, 1, (30, 2)).astype(np.float32), rng.integers(0, 2, 30).astype(np.int32)
    base = rng.standard_normal((30, 8)).astype(np.float16)
    bias = rng.standard_normal(8).astype(np.float16)
    fused = BilinearSampleAddRelu()

    def total(base, maps, bias):
        return fused(base, maps, Tensor(points.astype(np.float16)), Tensor(batch_index), bias).sum()

    out = fused(Tensor(base), Tensor(maps), Tensor(points), Tensor(batch_index), Tensor(bias))
    grads = ms.grad(total, (0, 1, 2))(Tensor(base), Tensor(maps), Tensor(bias))

    assert out.dtype == ms.float32
    expected = fused(Tensor(base.astype(np.float32)), Tensor(maps.astype(np.float32)), Tensor(points),
                     Tensor(batch_index), Tensor(bias.astype(np.float32)))
    np.testing.assert_array_equal(out.asnumpy(), expected.asnumpy())
    assert [g.dtype for g in grads] == [ms.float16] * 3
    assert BilinearSample()(Tensor(maps), Tensor(points), Tensor(batch_index)).dtype == ms.float32
