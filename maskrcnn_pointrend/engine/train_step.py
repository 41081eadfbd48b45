"""One training iteration as one compiled graph: the losses, their gradients (averaged over ranks when
distributed) and the SGD update, applied only when the losses and gradients are finite."""
import mindspore as ms
import numpy as np
from mindspore import nn, ops

from maskrcnn.layers.custom_op import to_float32

# PyTorch GradScaler's defaults: start at 2 ** 16, halve on overflow, double after 2000 finite steps.
LOSS_SCALE_INIT, LOSS_SCALE_FACTOR, LOSS_SCALE_WINDOW = 2.0 ** 16, 2, 2000


class NonFiniteLossError(FloatingPointError):
    """A loss or gradient became NaN or Inf; the update of that iteration was not applied."""


def all_finite(tensors):
    """Whether no element of the float tensors is NaN or Inf: each tensor's sum, as a matrix-vector product with
    ones (any NaN or Inf reaches it; so would a sum beyond float32's range, which no usable gradient reaches).
    On the CPU that is ~6x faster than ms.amp.all_finite's IsFinite + ReduceAll over R50-FPN's 60M gradients."""
    sums = [ops.matmul(t.reshape(t.shape[0], -1), ops.ones((t.size // t.shape[0], 1), t.dtype)).sum() if t.ndim > 1
            else t.sum() for t in tensors]
    return ops.isfinite(ops.stack(sums)).all()


def step_randomness(net, seed, iteration, first_slot, num_images, input_hw, num_gt_slots):
    """The uniform draws GeneralizedRCNN.losses takes (net.random_input_shapes: rpn_keys, roi_keys and the mask
    head's tuple) for images first_slot .. first_slot + num_images - 1 of the global batch of `iteration`, on
    inputs of input_hw with num_gt_slots ground-truth slots: each image's drawn from a Generator seeded (seed,
    iteration, its slot), so they do not depend on how the batch is split across ranks."""
    rpn_shape, roi_shape, mask_shapes = net.random_input_shapes(1, *input_hw, num_gt_slots)
    per_image = []
    for slot in range(first_slot, first_slot + num_images):
        rng = np.random.default_rng([seed, iteration, slot])
        per_image.append([rng.random(shape, dtype=np.float32) for shape in (rpn_shape, roi_shape, *mask_shapes)])
    rpn_keys, roi_keys, *mask_random = (np.concatenate(arrays) for arrays in zip(*per_image))
    return rpn_keys, roi_keys, tuple(mask_random)


def loss_inputs(batch, randomness):
    """A TRAIN_COLUMNS batch of numpy arrays and step_randomness's arrays -> the inputs of
    GeneralizedRCNN.losses (gt_valid as bool; PointRend's ground truth as (mask grids, their frames))."""
    images, image_size, gt_boxes, gt_classes, gt_valid, gt_masks, gt_mask_frames = batch
    rpn_keys, roi_keys, mask_random = randomness
    return (ms.Tensor(images), ms.Tensor(image_size, ms.int32), ms.Tensor(gt_boxes, ms.float32),
            ms.Tensor(gt_classes, ms.int32), ms.Tensor(gt_valid > 0),
            ms.mutable((ms.Tensor(gt_masks), ms.Tensor(gt_mask_frames, ms.float32))), ms.Tensor(rpn_keys),
            ms.Tensor(roi_keys), ms.mutable(tuple(ms.Tensor(r) for r in mask_random)))


class TrainStep:
    """Runs iterations of `net.losses(*inputs)` (a tuple of scalar losses and the RPN's nms_converged (N,),
    `net` in training mode) with `optimizer` (an nn.Optimizer with one learning_rate Parameter, set each
    iteration).

    With world_size > 1 (communication initialised) gradients and losses are averaged over the ranks, so
    every rank applies the same update. With mixed_precision, MindSpore's automatic mixed precision ("auto")
    runs convolutions and matrix products in float16, while the custom kernels (their cells cast to float32)
    and the losses stay in float32, and a dynamic loss scale (`loss_scaler`, whose state belongs in
    checkpoints) protects the gradients: a step whose gradients overflow is skipped and the scale lowered, as
    loss scaling expects; in float32, non-finite gradients are an error like non-finite losses.
    """

    def __init__(self, net, optimizer, loss_names, world_size=1, mixed_precision=False):
        self.optimizer = optimizer
        self.loss_names = tuple(loss_names)
        self.loss_scaler = loss_scaler = ms.amp.DynamicLossScaler(
            LOSS_SCALE_INIT, LOSS_SCALE_FACTOR, LOSS_SCALE_WINDOW) if mixed_precision else None
        params = optimizer.parameters
        grad_reducer = nn.DistributedGradReducer(params, mean=True, degree=world_size) if world_size > 1 else None
        all_reduce = ops.AllReduce() if world_size > 1 else None

        def total_loss(*inputs):
            losses, nms_converged = net.losses(*inputs)
            losses = ops.stack([to_float32(loss) for loss in losses])
            total = losses.sum()
            return (loss_scaler.scale(total) if loss_scaler is not None else total), losses, nms_converged

        if mixed_precision:
            total_loss = ms.amp.auto_mixed_precision(total_loss, "auto", ms.float16)
        grad_fn = ms.value_and_grad(total_loss, None, params, has_aux=True)

        @ms.jit
        def step(lr, *inputs):
            (_, losses, nms_converged), grads = grad_fn(*inputs)
            if loss_scaler is not None:
                grads = loss_scaler.unscale(grads)
            if grad_reducer is not None:
                grads = grad_reducer(grads)
                losses = all_reduce(losses) / world_size
            grads_finite = all_finite(grads)
            if loss_scaler is not None:
                loss_scaler.adjust(grads_finite)
            apply = ops.logical_and(grads_finite, ops.isfinite(losses).all())
            if apply:
                # assigned here: the optimizer's LR set from the host between calls does not reach this graph
                ops.assign(optimizer.learning_rate, lr)
                optimizer(grads)
            return losses, apply, nms_converged.all()

        self._step = step

    def __call__(self, iteration, inputs, lr):
        """Iteration `iteration` on `inputs` (Tensors for net.losses) with learning rate `lr` -> ((num_losses,)
        losses averaged over the ranks, whether the update was applied, whether this rank's proposal NMS
        converged). Raises NonFiniteLossError naming the iteration and the losses when a loss (or, without loss
        scaling, a gradient) is not finite; the parameters are then left as they were."""
        losses, applied, nms_converged = self._step(ms.Tensor(lr, ms.float32), *inputs)
        losses, applied = losses.asnumpy(), bool(applied.asnumpy())
        bad = [f"{name} = {value}" for name, value in zip(self.loss_names, losses) if not np.isfinite(value)]
        if bad:
            raise NonFiniteLossError(f"non-finite loss at iteration {iteration}: {', '.join(bad)} (all losses: "
                                     f"{self.describe(losses)}); its update was not applied")
        if not applied and self.loss_scaler is None:
            raise NonFiniteLossError(f"non-finite gradients at iteration {iteration} with finite losses "
                                     f"({self.describe(losses)}); its update was not applied")
        return losses, applied, bool(nms_converged.asnumpy())

    def state(self):
        """{name: Parameter} of what a resumed job needs besides the model: the momentum accumulators (named
        moments.<parameter>) and, under mixed precision, the loss scale and its count of finite steps."""
        state = {moment.name: moment for moment in self.optimizer.moments}
        if self.loss_scaler is not None:
            state["loss_scaler.scale_value"] = self.loss_scaler.scale_value
            state["loss_scaler.counter"] = self.loss_scaler.counter
        return state

    def describe(self, losses):
        return ", ".join(f"{name} {value:.4g}" for name, value in zip(self.loss_names, losses))
