"""The training job's parts: the solver (LR schedule, parameter groups, SGD), the compiled training step,
checkpoints with resume, per-iteration metrics, starting weights, and data-parallel helpers."""
from .checkpointer import Checkpointer, SavedCheckpoint, restore_parameters
from .distributed import init_distributed, launcher_device_id, parameter_digest, rank0_prepares
from .metrics import TrainingMetrics
from .pretrained import PretrainedReport, load_pretrained
from .solver import LRSchedule, build_lr_schedule, build_optimizer, parameter_groups
from .train_step import NonFiniteLossError, TrainStep, loss_inputs, step_randomness

__all__ = [
    "Checkpointer", "LRSchedule", "NonFiniteLossError", "PretrainedReport", "SavedCheckpoint", "TrainStep",
    "TrainingMetrics", "build_lr_schedule", "build_optimizer", "init_distributed", "launcher_device_id",
    "load_pretrained", "loss_inputs", "parameter_digest", "parameter_groups", "rank0_prepares", "restore_parameters",
    "step_randomness",
]
