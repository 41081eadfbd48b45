"""Compiles the custom kernels on first use, cached by a hash of everything that goes into them.

A kernel library `name` lives in a csrc folder as <name>_cpu.cc (the CPU kernels) and <name>_gpu.cu (the CUDA
kernels) with <name>_gpu.cc (their AOT entry points), or as <name>_cpu.cc alone when the GPU computes it with
MindSpore's ops (NMS); headers come from that folder and from maskrcnn/layers/csrc.

- CPU: g++ compiles <name>_cpu.cc into a shared library of MindSpore AOT entry points.
- GPU: NVRTC (the pip wheel nvidia-cuda-nvrtc-cu11, called through ctypes; no nvcc) compiles <name>_gpu.cu for the
  GPU present: a CUBIN for its architecture, or PTX of the newest architecture NVRTC knows when the GPU is newer
  (the driver then finishes the compilation). g++ links that image into <name>_gpu.cc, whose entry points load it
  through the CUDA driver (libcuda.so.1, opened at run time) and launch on the op's stream. --fmad=false, like
  g++'s -ffp-contract=off, keeps every float expression rounded as written.

Each library is written to a temporary name and renamed into place, so concurrent processes (one per training
rank) never load a partly written file. As a command it builds every kernel library of this repository ahead of
time, e.g. for a container image, without a GPU:

    python -m maskrcnn.layers.build --device_target GPU --arch 70 80 90
"""
import argparse
import contextlib
import ctypes
import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..atomic_files import atomic_output

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMON_CSRC = Path(__file__).resolve().parent / "csrc"
# -ffp-contract=off keeps float expressions rounded exactly as written (no fused multiply-add).
CXX_FLAGS = ("-std=c++17", "-O3", "-fPIC", "-shared", "-ffp-contract=off")
CPU_FLAGS = ("-fopenmp",)
GPU_LINK_FLAGS = ("-ldl",)
NVRTC_OPTIONS = ("--std=c++17", "--fmad=false")
NVRTC_LIBRARY = "libnvrtc.so.11.2"
NVRTC_REQUIREMENT = "nvidia-cuda-nvrtc-cu11==11.8.89"
KERNEL_DIR_ENV = "MASKRCNN_KERNEL_DIR"


def kernel_dir() -> Path:
    """Folder of compiled kernels: $MASKRCNN_KERNEL_DIR if set, else <repo>/build/kernels."""
    configured = os.environ.get(KERNEL_DIR_ENV)
    return Path(configured) if configured else REPO_ROOT / "build" / "kernels"


@dataclass(frozen=True)
class KernelSources:
    """The kernel library `name` of the folder `csrc` (see the module docstring)."""

    csrc: Path
    name: str

    @property
    def cpu_source(self) -> Path:
        return self.csrc / f"{self.name}_cpu.cc"

    @property
    def cuda_source(self) -> Path:
        return self.csrc / f"{self.name}_gpu.cu"

    @property
    def gpu_entry_source(self) -> Path:
        return self.csrc / f"{self.name}_gpu.cc"

    @property
    def include_dirs(self) -> tuple:
        return tuple(dict.fromkeys((self.csrc, COMMON_CSRC)))

    def digest(self, sources, *options) -> str:
        """A hash of `sources`, every header of the include folders and `options`."""
        headers = sorted(header for folder in self.include_dirs for header in folder.glob("*.h"))
        parts = [path.read_bytes() for path in (*sources, *headers)] + [" ".join(options).encode()]
        return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]

    @functools.cache
    def library(self, device_target: str, device_id: int = 0) -> str:
        """Path of the compiled library for `device_target` ("CPU", or "GPU" with the architecture of GPU
        `device_id`), built once per process, on first use, unless the cache already holds it."""
        if device_target == "CPU":
            return str(build_cpu_library(self))
        if device_target == "GPU":
            return str(build_gpu_library(self, gpu_architecture(device_id)))
        raise ValueError(f"the {self.name} kernels exist for CPU and GPU, not for device_target {device_target}")


def publish(library: Path, write) -> Path:
    """Creates `library` by calling write(temporary path) and renaming the result into place; returns it."""
    with atomic_output(library) as partial:
        write(Path(partial))
    return library


def compile_cxx(sources, include_dirs, flags, output: Path):
    """g++ with CXX_FLAGS + `flags` on `sources` into the shared library `output`; RuntimeError with g++'s
    messages when it fails."""
    compiler = shutil.which("g++")
    if compiler is None:
        raise RuntimeError(f"compiling {sources[0]} needs g++ (with OpenMP support, libgomp, for the CPU kernels) on "
                           "PATH, e.g. `apt-get install g++`; none was found")
    includes = [f"-I{folder}" for folder in include_dirs]
    result = subprocess.run([compiler, *CXX_FLAGS, *includes, *map(str, sources), "-o", str(output), *flags],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"g++ failed to compile {sources[0]}:\n{result.stderr}")


def build_cpu_library(kernels: KernelSources, out_dir: Path = None) -> Path:
    """Path of the shared library compiled from kernels.cpu_source with g++; compiles it when missing."""
    source = kernels.cpu_source
    library = (out_dir or kernel_dir()) / f"{source.stem}_{kernels.digest([source], *CXX_FLAGS, *CPU_FLAGS)}.so"
    if library.is_file():
        return library
    return publish(library, lambda partial: compile_cxx([source], kernels.include_dirs, CPU_FLAGS, partial))


@contextlib.contextmanager
def thread_locale_kept():
    """Puts back the calling thread's C locale when the block ends. NVRTC's compiler switches it (uselocale) and
    leaves it so, which turns Python's preferred encoding into ASCII for the rest of the process (the text of
    subprocesses, files opened without an encoding)."""
    libc = ctypes.CDLL(None)
    libc.uselocale.restype = ctypes.c_void_p
    libc.uselocale.argtypes = [ctypes.c_void_p]
    previous = libc.uselocale(None)
    try:
        yield
    finally:
        libc.uselocale(previous)


class Nvrtc:
    """The NVRTC library (NVRTC_LIBRARY), from LD_LIBRARY_PATH or the system, else from the NVRTC_REQUIREMENT wheel."""

    def __init__(self):
        errors = []
        for candidate in (NVRTC_LIBRARY, self.wheel_library()):
            if candidate is None:
                continue
            try:
                self.lib = ctypes.CDLL(str(candidate))
                return
            except OSError as error:
                errors.append(str(error))
        raise RuntimeError(f"compiling the GPU kernels needs NVRTC ({NVRTC_LIBRARY}): `pip install "
                           f"{NVRTC_REQUIREMENT}` (requirements-gpu.txt), or put a CUDA 11.2+ toolkit's lib64 on "
                           f"LD_LIBRARY_PATH; tried: {'; '.join(errors) or NVRTC_LIBRARY}")

    @staticmethod
    def wheel_library():
        """Path of NVRTC_LIBRARY inside the installed wheel, or None."""
        try:
            spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
        except ModuleNotFoundError:
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        library = Path(list(spec.submodule_search_locations)[0]) / "lib" / NVRTC_LIBRARY
        return library if library.is_file() else None

    def check(self, status: int, what: str):
        if status != 0:
            self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p
            raise RuntimeError(f"NVRTC {what} failed: {self.lib.nvrtcGetErrorString(status).decode()}")

    def supported_architectures(self) -> list:
        """The compute capabilities (e.g. 90 for sm_90) this NVRTC compiles for."""
        count = ctypes.c_int()
        self.check(self.lib.nvrtcGetNumSupportedArchs(ctypes.byref(count)), "nvrtcGetNumSupportedArchs")
        architectures = (ctypes.c_int * count.value)()
        self.check(self.lib.nvrtcGetSupportedArchs(architectures), "nvrtcGetSupportedArchs")
        return list(architectures)

    def compile(self, source: Path, options) -> bytes:
        """The image of `source` compiled with `options`: a CUBIN for --gpu-architecture=sm_XX, NUL-terminated PTX
        for compute_XX. RuntimeError with NVRTC's log when the source does not compile."""
        program = ctypes.c_void_p()
        self.check(self.lib.nvrtcCreateProgram(ctypes.byref(program), source.read_bytes(), source.name.encode(), 0,
                                               None, None), "nvrtcCreateProgram")
        try:
            encoded = [option.encode() for option in options]
            with thread_locale_kept():
                status = self.lib.nvrtcCompileProgram(program, len(encoded),
                                                      (ctypes.c_char_p * len(encoded))(*encoded))
            if status != 0:
                raise RuntimeError(f"NVRTC failed to compile {source} with {' '.join(options)}:\n{self.log(program)}")
            cubin = any(option.startswith("--gpu-architecture=sm_") for option in options)
            get_size, get_image = ((self.lib.nvrtcGetCUBINSize, self.lib.nvrtcGetCUBIN) if cubin else
                                   (self.lib.nvrtcGetPTXSize, self.lib.nvrtcGetPTX))
            size = ctypes.c_size_t()
            self.check(get_size(program, ctypes.byref(size)), "getting the image size")
            image = ctypes.create_string_buffer(size.value)
            self.check(get_image(program, image), "getting the image")
            return image.raw
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(program))

    def log(self, program) -> str:
        size = ctypes.c_size_t()
        self.lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        self.lib.nvrtcGetProgramLog(program, log)
        return log.value.decode(errors="replace")


def nvrtc_options(kernels: KernelSources, target: str) -> tuple:
    """NVRTC's options for `kernels` and the --gpu-architecture `target` (sm_XX: CUBIN, compute_XX: PTX)."""
    return (f"--gpu-architecture={target}", *NVRTC_OPTIONS,
            *(f"--include-path={folder}" for folder in kernels.include_dirs))


def nvrtc_target(architecture: int, supported) -> str:
    """sm_XX for an architecture NVRTC knows; else compute_YY of the newest one below it, which the driver
    compiles further for the GPU."""
    if architecture in supported:
        return f"sm_{architecture}"
    older = [a for a in supported if a < architecture]
    if not older:
        raise RuntimeError(f"NVRTC compiles for compute capabilities {supported}, none up to {architecture}")
    return f"compute_{max(older)}"


def module_image_source(image: bytes, origin: str) -> str:
    """C++ defining kernel_module_image (see cuda_driver.h) as `image`, NUL-terminated as PTX must be."""
    values = ",".join(map(str, image + b"\0"))
    return (f"// Generated by maskrcnn/layers/build.py: {origin}.\n"
            f'extern "C" __attribute__((visibility("hidden"))) const unsigned char kernel_module_image[] = '
            f"{{{values}}};\n")


def gpu_library_path(kernels: KernelSources, architecture: int, out_dir: Path = None) -> Path:
    """Where the entry-point library of `kernels` for GPUs of compute capability `architecture` is cached."""
    sources = [kernels.cuda_source, kernels.gpu_entry_source]
    digest = kernels.digest(sources, *NVRTC_OPTIONS, *CXX_FLAGS, *GPU_LINK_FLAGS, str(architecture))
    return (out_dir or kernel_dir()) / f"{kernels.name}_gpu_sm{architecture}_{digest}.so"


def build_gpu_library(kernels: KernelSources, architecture: int, out_dir: Path = None) -> Path:
    """Path of the entry-point library for GPUs of compute capability `architecture` (e.g. 90), with the CUDA
    kernels compiled by NVRTC linked in; builds it when missing."""
    library = gpu_library_path(kernels, architecture, out_dir)
    if library.is_file():
        return library

    def write(partial: Path):
        nvrtc = Nvrtc()
        target = nvrtc_target(architecture, nvrtc.supported_architectures())
        image = nvrtc.compile(kernels.cuda_source, nvrtc_options(kernels, target))
        with tempfile.TemporaryDirectory() as scratch:
            image_source = Path(scratch) / "module_image.cc"
            image_source.write_text(module_image_source(image, f"{kernels.cuda_source.name} for {target}"))
            compile_cxx([kernels.gpu_entry_source, image_source], kernels.include_dirs, GPU_LINK_FLAGS, partial)

    return publish(library, write)


def gpu_architecture(device_id: int) -> int:
    """Compute capability of CUDA device `device_id` as one number (90 for 9.0), from the driver."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as error:
        raise RuntimeError(f"device_target GPU needs the NVIDIA driver's libcuda.so.1, which cannot be loaded: "
                           f"{error}") from None

    def check(result: int, call: str):
        if result != 0:
            raise RuntimeError(f"reading the compute capability of GPU {device_id}: {call} returned CUresult {result}")

    device, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    check(cuda.cuInit(0), "cuInit")
    check(cuda.cuDeviceGet(ctypes.byref(device), device_id), "cuDeviceGet")
    major_attribute, minor_attribute = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_{MAJOR,MINOR}
    check(cuda.cuDeviceGetAttribute(ctypes.byref(major), major_attribute, device), "cuDeviceGetAttribute")
    check(cuda.cuDeviceGetAttribute(ctypes.byref(minor), minor_attribute, device), "cuDeviceGetAttribute")
    return major.value * 10 + minor.value


def repository_kernels(device_target: str) -> list:
    """Every kernel library of this repository for "CPU" (the <name>_cpu.cc under */layers/csrc) or "GPU" (those
    with a <name>_gpu.cu)."""
    libraries = [KernelSources(source.parent, source.name[:-len("_cpu.cc")])
                 for source in sorted(REPO_ROOT.glob("*/layers/csrc/*_cpu.cc"))]
    return [k for k in libraries if device_target == "CPU" or k.cuda_source.is_file()]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Builds every kernel library of this repository ahead of time "
                                                 "(no GPU needed); exits non-zero if any fails.")
    parser.add_argument("--device_target", choices=("CPU", "GPU"), required=True)
    parser.add_argument("--arch", type=int, nargs="+", default=None,
                        help="GPU compute capabilities to build for, e.g. 70 80 90 (V100, A100, H100); default: "
                             "that of this machine's GPU 0")
    parser.add_argument("--kernel_dir", type=Path, default=None,
                        help=f"where to write them (default: ${KERNEL_DIR_ENV}, else <repo>/build/kernels)")
    args = parser.parse_args(argv)
    if args.device_target == "GPU" and args.arch is None:
        args.arch = [gpu_architecture(0)]
    failures = 0
    for kernels in repository_kernels(args.device_target):
        builds = ([lambda: build_cpu_library(kernels, args.kernel_dir)] if args.device_target == "CPU" else
                  [functools.partial(build_gpu_library, kernels, arch, args.kernel_dir) for arch in args.arch])
        for build in builds:
            try:
                print(build())
            except RuntimeError as error:
                failures += 1
                print(f"{kernels.name}: {error}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
