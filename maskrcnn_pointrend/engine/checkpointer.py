"""Training checkpoints in an output directory: periodic and final, each a pair of .ckpt files written
atomically, the latest named by a pointer file written last, keeping the last few.

A checkpoint after n iterations is
- `model_{n:07d}.ckpt` (`model_final.ckpt` at the end): every tensor of the model with its metadata
  (iteration, categories, input conventions, config) -- what eval.py, infer.py and --pre_trained read;
- `solver_{n:07d}.ckpt` (`solver_final.ckpt`): the optimizer's momentum accumulators (and the loss scale
  under mixed precision), with the iteration and what the data stream depends on;
- `last_checkpoint`: {"iteration", "model", "solver"}, replaced (atomically) once both files are complete.
A crash at any moment leaves `last_checkpoint` naming a complete, consistent pair.
"""
import json
import logging
import os
import re
from dataclasses import dataclass

import mindspore as ms

from ..checkpoints import CheckpointError, read_checkpoint, save_checkpoint
from maskrcnn.atomic_files import atomic_write

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last_checkpoint"
FINAL_TAG = "final"
PERIODIC_MODEL = re.compile(r"model_(\d{7})\.ckpt$")


@dataclass
class SavedCheckpoint:
    iteration: int        # iterations done
    model_path: str
    model: dict           # {name: np.ndarray} of every model tensor
    model_metadata: dict
    solver_path: str
    solver: dict          # {name: np.ndarray} of TrainStep.state()
    solver_metadata: dict


def checkpoint_files(tag):
    """(model file, solver file) names of the checkpoint tagged `tag` (7-digit iteration or 'final')."""
    return f"model_{tag}.ckpt", f"solver_{tag}.ckpt"


def restore_parameters(parameters, saved, path):
    """Set each of `parameters` ({name: Parameter}) from `saved` ({name: np.ndarray}, read from `path`); a
    missing or mis-shaped tensor is a CheckpointError naming it (nothing is set then)."""
    missing = [name for name in parameters if name not in saved]
    mismatched = [f"{name}: checkpoint {saved[name].shape}, expected {tuple(p.shape)}"
                  for name, p in parameters.items() if name in saved and tuple(saved[name].shape) != tuple(p.shape)]
    if missing or mismatched:
        raise CheckpointError(f"{path} does not fit this job: " + "; ".join(
            ([f"it lacks {len(missing)} tensor(s): {', '.join(missing)}"] if missing else []) + mismatched))
    for name, param in parameters.items():
        param.set_data(ms.Tensor(saved[name], param.dtype))


class Checkpointer:
    """Saves and finds the training checkpoints of `directory`, keeping the `keep` latest periodic ones."""

    def __init__(self, directory, keep):
        if keep < 1:
            raise ValueError(f"solver.keep_checkpoints must be at least 1, got {keep}")
        self.directory = directory
        self.keep = keep

    def path(self, name):
        return os.path.join(self.directory, name)

    def save(self, iteration, net, solver_state, model_metadata, solver_metadata, final=False):
        """Write the checkpoint after `iteration` iterations: `net`'s parameters and `solver_state`
        ({name: Parameter}), then point `last_checkpoint` at it and delete periodic checkpoints beyond the
        last `keep`. -> the model file's path."""
        model_file, solver_file = checkpoint_files(FINAL_TAG if final else f"{iteration:07d}")
        save_checkpoint(self.path(solver_file), solver_state, {**solver_metadata, "iteration": iteration})
        save_checkpoint(self.path(model_file), net, {**model_metadata, "iteration": iteration})
        with atomic_write(self.path(LAST_CHECKPOINT)) as f:
            json.dump({"iteration": iteration, "model": model_file, "solver": solver_file}, f)
        self._remove_old()
        return self.path(model_file)

    def _remove_old(self):
        periodic = sorted(name for name in os.listdir(self.directory) if PERIODIC_MODEL.match(name))
        for name in periodic[:-self.keep]:
            for stale in checkpoint_files(PERIODIC_MODEL.match(name).group(1)):
                if os.path.exists(self.path(stale)):
                    os.remove(self.path(stale))
            logger.info("removed %s (solver.keep_checkpoints=%d)", self.path(name), self.keep)

    def latest(self):
        """-> the SavedCheckpoint `last_checkpoint` names, or None when there is none. A pointer naming
        missing or inconsistent files is a CheckpointError."""
        pointer = self.path(LAST_CHECKPOINT)
        if not os.path.isfile(pointer):
            return None
        try:
            with open(pointer) as f:
                record = json.load(f)
            iteration, model_file, solver_file = record["iteration"], record["model"], record["solver"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{pointer} is not a valid checkpoint pointer: {e}") from None
        saved = SavedCheckpoint(iteration, self.path(model_file), *read_checkpoint(self.path(model_file)),
                                self.path(solver_file), *read_checkpoint(self.path(solver_file)))
        for path, metadata in ((saved.model_path, saved.model_metadata), (saved.solver_path, saved.solver_metadata)):
            if metadata.get("iteration") != iteration:
                raise CheckpointError(f"{path} holds iteration {metadata.get('iteration')}, but {pointer} says "
                                      f"{iteration}")
        return saved
