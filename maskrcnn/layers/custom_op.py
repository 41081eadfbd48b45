"""What the cells around custom kernels share: the kernels' entry points for the device of the MindSpore context,
and float32 inputs (the kernels compute in float32; under mixed precision their inputs may be float16)."""
import mindspore as ms

from .build import KernelSources


def entry_point(kernels: KernelSources, function: str) -> str:
    """"<library>:<function>", the ops.Custom func of `function` of `kernels` on the context's device target and
    device; the library is compiled once per process, on first use."""
    library = kernels.library(ms.get_context("device_target"), ms.get_context("device_id"))
    return f"{library}:{function}"


def to_float32(x):
    """x as float32 (unchanged when it is)."""
    return x if x.dtype == ms.float32 else x.astype(ms.float32)
