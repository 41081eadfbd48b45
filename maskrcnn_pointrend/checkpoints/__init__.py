"""Checkpoints: converting detectron2 / MindSpore Model Zoo / torchvision weights to our names, our .ckpt
files with metadata, and loading them into a network with an exact report."""
from .ckpt_io import (LoadReport, config_overrides_from_metadata, load_into_network, read_checkpoint,
                      save_checkpoint)
from .converted import ConvertedCheckpoint, class_count
from .errors import CheckpointError
from .from_detectron2 import convert_detectron2
from .from_mindspore_zoo import convert_mindspore_zoo
from .from_torchvision import convert_torchvision
from .safe_pickle import UnsafePickleError, load_pickled_checkpoint

__all__ = [
    "CheckpointError", "ConvertedCheckpoint", "LoadReport", "UnsafePickleError", "class_count",
    "config_overrides_from_metadata", "convert_detectron2", "convert_mindspore_zoo", "convert_torchvision",
    "load_into_network", "load_pickled_checkpoint", "read_checkpoint", "save_checkpoint",
]
