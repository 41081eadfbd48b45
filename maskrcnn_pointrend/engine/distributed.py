"""Data-parallel jobs: one process per device, launched by msrun (or mpirun), communicating through
MindSpore's backend for the device (NCCL on GPU, MCCL on CPU); every rank holds the whole model and the
gradients are averaged over the ranks (see TrainStep)."""
import hashlib
import logging
import os
import time

import mindspore as ms
from mindspore.communication import get_group_size, get_rank, init

logger = logging.getLogger(__name__)

# Environment variables naming a process's device on its machine: msrun's, then OpenMPI's local rank.
LAUNCHER_DEVICE_VARIABLES = ("DEVICE_ID", "OMPI_COMM_WORLD_LOCAL_RANK")
WAIT_LOG_SECONDS = 60


def launcher_device_id(default):
    """The device the launcher gave this process on its machine, else `default`."""
    for name in LAUNCHER_DEVICE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default


def init_distributed(run_distribute):
    """-> (rank, world size): (0, 1) for a single process; otherwise communication is initialised (the
    device context must be set first) and the job runs DATA_PARALLEL with gradients averaged."""
    if not run_distribute:
        return 0, 1
    init()
    rank, world_size = get_rank(), get_group_size()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=world_size)
    return rank, world_size


def rank0_prepares(rank, is_ready, prepare, what, poll_seconds=5.0, log=logger):
    """Unless is_ready(), rank 0 runs prepare() while the other ranks wait until is_ready(): one process
    writes a shared output, and no rank reads it before it is complete. (Should rank 0 die, the launcher
    ends the waiting ranks.)"""
    if is_ready():
        return
    if rank == 0:
        prepare()
        return
    log.info("rank %d waits for rank 0 to %s", rank, what)
    start = last_log = time.monotonic()
    while not is_ready():
        time.sleep(poll_seconds)
        if time.monotonic() - last_log >= WAIT_LOG_SECONDS:
            last_log = time.monotonic()
            log.info("rank %d still waits for rank 0 to %s (%.0f s)", rank, what, last_log - start)


def parameter_digest(net):
    """SHA-256 of every parameter of `net` (names, shapes and bytes in name order): equal on all ranks of a
    data-parallel job whose replicas are in sync."""
    digest = hashlib.sha256()
    for name, param in sorted(net.parameters_dict().items()):
        value = param.asnumpy()
        digest.update(f"{name}{value.shape}{value.dtype}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
