"""Starting weights from a converted checkpoint (detectron2 Mask R-CNN or PointRend, MindSpore zoo Mask R-CNN,
ImageNet ResNet): every tensor it has is loaded, the network's others start fresh, and for a dataset with
another number of classes its class-specific tensors start fresh too."""
from dataclasses import dataclass

from ..checkpoints import CheckpointError, class_count, load_into_network

# Tensors whose shape follows the number of classes. The point head's every layer takes the coarse
# predictions of all classes as input, so all of it is class-specific.
CLASS_SPECIFIC_PREFIXES = ("roi_heads.box_predictor.", "roi_heads.mask_head.coarse_head.prediction.",
                           "roi_heads.mask_head.point_head.")


@dataclass
class PretrainedReport:
    loaded: list           # network tensors set from the checkpoint
    fresh: list            # network tensors left as initialised
    class_specific: list   # checkpoint tensors left out because the class count differs


def load_pretrained(net, params, path, num_classes, log):
    """Load `params` ({name: np.ndarray} read from `path`) into `net`, built for `num_classes` classes ->
    PretrainedReport. Tensors the network lacks or whose shapes differ are a CheckpointError naming the
    file and them (nothing is loaded then), except the class-specific ones of a checkpoint trained for
    another number of classes, which are left out with a warning."""
    ckpt_classes = class_count(params)
    left_out = []
    if ckpt_classes is not None and ckpt_classes != num_classes:
        left_out = sorted(name for name in params if name.startswith(CLASS_SPECIFIC_PREFIXES))
        log.warning("%s predicts %d classes, the dataset has %d: its %d class-specific tensors (%s) are not loaded "
                    "and start fresh", path, ckpt_classes, num_classes, len(left_out),
                    ", ".join(p + "*" for p in CLASS_SPECIFIC_PREFIXES))
        params = {name: value for name, value in params.items() if name not in left_out}
    try:
        report = load_into_network(net, params, strict=False, log=log)
    except CheckpointError as e:
        raise CheckpointError(f"--pre_trained {path}: {e}") from None
    return PretrainedReport(report.loaded, report.missing, left_out)
