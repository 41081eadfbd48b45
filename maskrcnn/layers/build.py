"""Compiles the kernels under csrc/ on first use, cached by a hash of source, shared headers and flags."""
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CSRC_DIR = Path(__file__).resolve().parent / "csrc"
# -ffp-contract=off keeps float expressions rounded exactly as written (no fused multiply-add).
CXX_FLAGS = ("-std=c++17", "-O3", "-fPIC", "-shared", "-fopenmp", "-ffp-contract=off")
KERNEL_DIR_ENV = "MASKRCNN_KERNEL_DIR"


def kernel_dir() -> Path:
    """Folder of compiled kernels: $MASKRCNN_KERNEL_DIR if set, else <repo>/build/kernels."""
    configured = os.environ.get(KERNEL_DIR_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "build" / "kernels"


def build_cpu_kernel(source_name: str) -> Path:
    """Path of the shared library compiled from csrc/<source_name> with g++; compiles it when missing.

    The library is written to a temporary name and renamed into place, so concurrent processes (one per
    training rank) never load a partly written file.
    """
    source = CSRC_DIR / source_name
    compiler = shutil.which("g++")
    if compiler is None:
        raise RuntimeError(f"compiling {source} needs g++ with OpenMP support (libgomp) on PATH, "
                           "e.g. `apt-get install g++`; none was found")
    inputs = [source.read_bytes(), *(header.read_bytes() for header in sorted(CSRC_DIR.glob("*.h"))),
              " ".join(CXX_FLAGS).encode()]
    digest = hashlib.sha256(b"\0".join(inputs)).hexdigest()[:16]
    library = kernel_dir() / f"{source.stem}_{digest}.so"
    if library.is_file():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{library.stem}.", suffix=".tmp", dir=library.parent)
    os.close(handle)
    try:
        result = subprocess.run([compiler, *CXX_FLAGS, str(source), "-o", partial],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"g++ failed to compile {source}:\n{result.stderr}")
        os.replace(partial, library)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return library


def kernel_library(name: str, device_target: str) -> str:
    """Path of the compiled kernels `name` (source csrc/<name>_<device>.cc) for `device_target`."""
    if device_target != "CPU":
        raise NotImplementedError(f"the {name} kernels exist for CPU only, not for device_target {device_target}: "
                                  f"it needs a source under maskrcnn/layers/csrc and a builder here")
    return str(build_cpu_kernel(f"{name}_cpu.cc"))
