"""engine.train_step.all_finite, the check that guards every update: any NaN or Inf in any gradient is found."""
import mindspore as ms
import numpy as np
import pytest

from maskrcnn_pointrend.engine.train_step import all_finite

SHAPES = ((8, 4, 3, 3), (16, 32), (7,))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", range(len(SHAPES)))
def test_one_non_finite_element_anywhere_is_found(bad, where):
    rng = np.random.default_rng(where)
    arrays = [rng.standard_normal(shape).astype(np.float32) * 1e3 for shape in SHAPES]
    assert all_finite(tuple(ms.Tensor(a) for a in arrays)).asnumpy()
    arrays[where].flat[rng.integers(arrays[where].size)] = bad
    assert not all_finite(tuple(ms.Tensor(a) for a in arrays)).asnumpy()
