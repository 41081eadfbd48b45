"""detectron2's solver: SGD with momentum and weight decay (its own decay for normalization parameters), a
base LR scaled linearly with the batch, linear warmup, and steps of x gamma."""
import bisect
from dataclasses import dataclass

from mindspore import nn

from maskrcnn.layers.norm import FrozenBatchNorm2d

from ..config import ConfigError

NORM_CELLS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, FrozenBatchNorm2d)


@dataclass(frozen=True)
class LRSchedule:
    """The LR of an iteration (0-based) of max_iter: base_lr x gamma per step passed (detectron2's
    WarmupMultiStepLR: the LR of iteration `step` is already decayed), times a linear ramp from warmup_factor to
    1 over warmup_iters."""
    base_lr: float
    steps: tuple
    gamma: float
    warmup_iters: int
    warmup_factor: float
    max_iter: int

    def __call__(self, iteration):
        lr = self.base_lr * self.gamma ** bisect.bisect_right(self.steps, iteration)
        if iteration < self.warmup_iters:
            alpha = iteration / self.warmup_iters
            lr *= self.warmup_factor * (1 - alpha) + alpha
        return lr


def build_lr_schedule(cfg_solver, batch_size):
    """The LR schedule of cfg.solver, checked, for `batch_size` images per iteration: solver.base_lr is the LR of
    solver.ims_per_batch images, scaled linearly (Goyal et al.'s rule, as detectron2's reference configs apply
    it)."""
    steps, max_iter = tuple(cfg_solver.steps), cfg_solver.max_iter
    if max_iter < 1 or list(steps) != sorted(steps):
        raise ConfigError(f"solver: max_iter must be >= 1 and steps increasing, got steps {list(steps)}, "
                          f"max_iter {max_iter}")
    if cfg_solver.ims_per_batch < 1 or cfg_solver.warmup_iters < 0 or not 0 < cfg_solver.warmup_factor <= 1:
        raise ConfigError(f"solver: need ims_per_batch >= 1, warmup_iters >= 0 and 0 < warmup_factor <= 1, got "
                          f"{cfg_solver.ims_per_batch}, {cfg_solver.warmup_iters}, {cfg_solver.warmup_factor}")
    return LRSchedule(cfg_solver.base_lr * batch_size / cfg_solver.ims_per_batch, steps, cfg_solver.gamma,
                      cfg_solver.warmup_iters, cfg_solver.warmup_factor, max_iter)


def parameter_groups(net, weight_decay, weight_decay_norm):
    """nn.Optimizer parameter groups of `net`'s trainable parameters: those of normalization layers decay by
    `weight_decay_norm`, all others (biases included, as in detectron2) by `weight_decay`."""
    norm_names = {param.name for _, cell in net.cells_and_names() if isinstance(cell, NORM_CELLS)
                  for param in cell.get_parameters(expand=False)}
    trainable = net.trainable_params()
    groups = [{"params": [p for p in trainable if p.name not in norm_names], "weight_decay": weight_decay},
              {"params": [p for p in trainable if p.name in norm_names], "weight_decay": weight_decay_norm}]
    return [group for group in groups if group["params"]]


def build_optimizer(net, cfg_solver):
    """SGD with momentum (PyTorch's formulation: v = m v + g + wd w; w -= lr v) over `net`'s trainable
    parameters; its `learning_rate` Parameter is set before each step from the LRSchedule."""
    return nn.Momentum(parameter_groups(net, cfg_solver.weight_decay, cfg_solver.weight_decay_norm),
                       learning_rate=0.0, momentum=cfg_solver.momentum)
