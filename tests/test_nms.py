"""layers.nms.BatchedNMS on the CPU: the custom kernel against greedy NMS (torchvision's semantics) and against
box_ops.nms's fixed point, which the other devices run."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from maskrcnn.box_ops import nms as fixed_point_nms
from maskrcnn.layers.nms import BatchedNMS
from test_model_parts import random_boxes, reference_nms


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_each_row_equals_greedy_nms_per_group_and_the_fixed_point(threshold):
    rng = np.random.default_rng(int(threshold * 10))
    boxes = np.stack([random_boxes(rng, 300, extent=150) for _ in range(3)])
    valid = rng.random((3, 300)) > 0.1
    groups = rng.integers(0, 3, (3, 300)).astype(np.int32)
    nms = BatchedNMS(threshold, 32)
    keep, converged = nms(Tensor(boxes), Tensor(valid), Tensor(groups))
    assert converged.asnumpy().all()
    for row in range(3):
        expected = reference_nms(boxes[row], valid[row], groups[row], threshold)
        np.testing.assert_array_equal(keep.asnumpy()[row], expected)
        fixed_point, _ = fixed_point_nms(Tensor(boxes[row]), Tensor(valid[row]), threshold, 32,
                                         groups=Tensor(groups[row]))
        np.testing.assert_array_equal(fixed_point.asnumpy(), expected)
    ungrouped, _ = nms(Tensor(boxes), Tensor(valid))
    np.testing.assert_array_equal(ungrouped.asnumpy()[0], reference_nms(boxes[0], valid[0], np.zeros(300), threshold))


def test_a_suppression_chain_longer_than_the_rounds_is_still_exact_on_the_cpu():
    # Box i overlaps box i + 1 by IoU 0.78: greedy keeps the even ones, a chain of 40 suppressions.
    boxes = np.array([[[4.0 * i, 0, 4.0 * i + 32, 32] for i in range(40)]], np.float32)
    keep, converged = BatchedNMS(0.7, 3)(Tensor(boxes), Tensor(np.ones((1, 40), bool)))
    assert converged.asnumpy().all()
    np.testing.assert_array_equal(keep.asnumpy()[0], np.arange(40) % 2 == 0)


def test_in_a_compiled_graph_rows_of_a_batch_are_independent():
    rng = np.random.default_rng(3)
    boxes = np.stack([random_boxes(rng, 200, extent=120) for _ in range(2)])
    valid = np.ones((2, 200), bool)
    nms = BatchedNMS(0.5, 32)

    @ms.jit
    def kept(b, v):
        return nms(b, v)[0]

    keep = kept(Tensor(boxes), Tensor(valid)).asnumpy()
    for row in range(2):
        np.testing.assert_array_equal(keep[row], reference_nms(boxes[row], valid[row], np.zeros(200), 0.5))
