"""Our .ckpt files: MindSpore checkpoints whose tensors carry our parameter names, plus one JSON metadata
entry (input conventions, num_classes, source, training iteration, ... -- any JSON-able keys).

    save_checkpoint("model.ckpt", net_or_params, {"source": "detectron2", "iteration": 5000})
    params, metadata = read_checkpoint("model.ckpt")
    cfg = cfg.merged(config_overrides_from_metadata(metadata))   # before building the model
    report = load_into_network(net, params, strict=True)
"""
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass

import mindspore as ms
import numpy as np

from maskrcnn.atomic_files import atomic_output
from .converted import class_count
from .errors import CheckpointError

logger = logging.getLogger(__name__)

METADATA_KEY = "checkpoint_metadata"
# metadata key -> dotted config key it sets (maskrcnn_pointrend/config.py)
METADATA_CONFIG_KEYS = {
    "input_format": "input.format",
    "pixel_mean": "input.pixel_mean",
    "pixel_std": "input.pixel_std",
    "stride_in_1x1": "model.backbone.stride_in_1x1",
    "num_classes": "model.num_classes",
}
# Parameter names are grouped in logs by their first components, e.g. backbone.bottom_up.res2.
LOG_GROUP_DEPTH = 3


@dataclass
class LoadReport:
    loaded: list   # names set from the checkpoint
    missing: list  # names of the network the checkpoint lacks (kept as initialised)


def _ckpt_path(path):
    if not str(path).endswith(".ckpt"):
        raise CheckpointError(f"{path}: checkpoint file names must end in .ckpt (MindSpore reads no other)")
    return str(path)


def save_checkpoint(path, params, metadata):
    """Write `params` ({name: np.ndarray | Tensor | Parameter} or an nn.Cell's parameters) and `metadata`
    (a JSON-able dict) to `path`, atomically (output_files.atomic_output)."""
    path = _ckpt_path(path)
    if isinstance(params, ms.nn.Cell):
        params = params.parameters_dict()
    try:
        metadata_json = json.dumps(metadata, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: metadata is not JSON-serialisable ({e})") from None
    entries = [{"name": name, "data": value if isinstance(value, ms.Tensor) else ms.Tensor(value)}
               for name, value in params.items()]
    with atomic_output(path) as temporary:
        ms.save_checkpoint(entries, temporary, append_dict={METADATA_KEY: metadata_json})


def read_checkpoint(path):
    """(params {name: np.ndarray}, metadata dict) of a .ckpt; files without our metadata give {}."""
    path = _ckpt_path(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        raw = ms.load_checkpoint(path)
    except (ValueError, RuntimeError, OSError, TypeError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    params, metadata = {}, {}
    for name, value in raw.items():
        if name == METADATA_KEY:
            try:
                metadata = json.loads(value)
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"{path}: its {METADATA_KEY} entry is not valid JSON ({e})") from None
        elif isinstance(value, ms.Parameter):
            params[name] = value.asnumpy()
        else:
            metadata[name] = value
    return params, metadata


def config_overrides_from_metadata(metadata):
    """{dotted config key: value} a checkpoint's metadata asks for, to apply with `cfg.merged` before the
    model is built. A caller training for another number of classes leaves out "model.num_classes"."""
    return {config_key: metadata[key] for key, config_key in METADATA_CONFIG_KEYS.items() if key in metadata}


def group_counts(names):
    """'prefix (count), ...' of parameter names grouped by their first LOG_GROUP_DEPTH module components."""
    groups = Counter(".".join(name.split(".")[:-1][:LOG_GROUP_DEPTH]) for name in names)
    return ", ".join(f"{prefix} ({count})" for prefix, count in groups.items())


def _class_count_message(params, net_params):
    """'checkpoint has N classes, config has M' when the box classifiers disagree, else ''."""
    ckpt_classes, net_classes = class_count(params), class_count(net_params)
    if ckpt_classes is None or net_classes is None or ckpt_classes == net_classes:
        return ""
    return f"checkpoint has {ckpt_classes} classes, config has {net_classes} (model.num_classes); "


def load_into_network(net, params, strict, log=logger):
    """Set `net`'s parameters from `params` ({name: np.ndarray}) and return a LoadReport.

    Tensors the network does not have, and shape mismatches, are always errors (nothing is loaded);
    network parameters absent from `params` are an error when `strict`, else they start fresh (logged by
    prefix with counts). Loaded tensors are logged by prefix, and one by one at debug level.
    """
    net_params = net.parameters_dict()
    unexpected = sorted(set(params) - set(net_params))
    mismatched = [f"{name}: checkpoint {tuple(np.shape(params[name]))}, network {tuple(net_params[name].shape)}"
                  for name in params if name in net_params
                  and tuple(np.shape(params[name])) != tuple(net_params[name].shape)]
    problems = []
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) the network does not have:\n  " + "\n  ".join(unexpected))
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es):\n  " + "\n  ".join(mismatched))
    if problems:
        raise CheckpointError("cannot load the checkpoint, nothing was loaded: "
                              + _class_count_message(params, net_params) + "\n".join(problems))
    missing = [name for name in net_params if name not in params]
    if missing and strict:
        raise CheckpointError(f"cannot load the checkpoint, nothing was loaded: it lacks {len(missing)} tensor(s) "
                              f"of the network ({group_counts(missing)}):\n  " + "\n  ".join(missing))
    loaded = [name for name in net_params if name in params]
    for name in loaded:
        param = net_params[name]
        param.set_data(ms.Tensor(params[name], param.dtype))
    log.info("loaded %d tensors from the checkpoint: %s", len(loaded), group_counts(loaded))
    for name in loaded:
        log.debug("loaded %s %s", name, tuple(net_params[name].shape))
    if missing:
        log.warning("%d tensors are not in the checkpoint and start fresh: %s", len(missing),
                    group_counts(missing))
    for name in missing:
        log.debug("starts fresh %s %s", name, tuple(net_params[name].shape))
    return LoadReport(loaded=loaded, missing=missing)
