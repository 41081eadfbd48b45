"""ResNet names in torchvision's layout (`conv1`, `bn1`, `layer{1-4}.{i}.conv{k}/bn{k}/<shortcut>`) -> ours.

torchvision and the MindSpore Model Zoo name their ResNets this way; they differ only in the names of the
projection shortcut and of the BatchNorm tensors, which the callers pass in.
"""
import re

_BLOCK = re.compile(r"layer([1-4])\.(\d+)\.(.+)")
_CONV = re.compile(r"conv[1-3]")
_NORM = re.compile(r"bn([1-3])")


def bottom_up_name(name, shortcut_conv, shortcut_norm, norm_leaves):
    """Our `backbone.bottom_up.*` name for `name`, or None when `name` is not a ResNet tensor.

    shortcut_conv, shortcut_norm: the source's module names of a block's projection shortcut (tuples);
    norm_leaves: the source's BatchNorm tensor names -> ours (`gamma` -> `weight`, ...).
    """
    if "." not in name:
        return None
    path, leaf = name.rsplit(".", 1)
    block = _BLOCK.fullmatch(path)
    if block is None:
        prefix, module = "stem.", {"conv1": "conv1", "bn1": "conv1.norm"}.get(path)
    else:
        prefix, part = f"res{int(block.group(1)) + 1}.{int(block.group(2))}.", block.group(3)
        norm = _NORM.fullmatch(part)
        if _CONV.fullmatch(part):
            module = part
        elif norm:
            module = f"conv{norm.group(1)}.norm"
        elif part in shortcut_conv:
            module = "shortcut"
        elif part in shortcut_norm:
            module = "shortcut.norm"
        else:
            module = None
    if module is None:
        return None
    if module.endswith(".norm"):
        leaf = norm_leaves.get(leaf)
    elif leaf != "weight":
        leaf = None
    return None if leaf is None else f"backbone.bottom_up.{prefix}{module}.{leaf}"
