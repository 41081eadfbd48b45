"""The kernel builder (maskrcnn/layers/build.py) on a machine without a GPU: g++ builds of the CPU kernels and their
cache; NVRTC compiling every CUDA source for compute capabilities 7.0, 8.0 and 9.0 with g++ linking the GPU entry
points; the GPU path run end to end against a host emulation of the CUDA driver; tools/check_gpu_kernels.py."""
import ctypes
import locale
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REPO_ROOT
from maskrcnn.layers import build
from maskrcnn.layers.roi_align import KERNELS as ROI_ALIGN
from maskrcnn_pointrend.layers.bilinear_sample import KERNELS as BILINEAR_SAMPLE
from tools import check_gpu_kernels

ARCHITECTURES = (70, 80, 90)  # V100, A100, H100/H200


def run_python(*args, cwd=REPO_ROOT):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def gpu_libraries(tmp_path_factory):
    """The command-line build of every GPU kernel library for ARCHITECTURES -> (its result, its folder)."""
    folder = tmp_path_factory.mktemp("gpu_kernels")
    result = run_python("-m", "maskrcnn.layers.build", "--device_target", "GPU", "--arch", *ARCHITECTURES,
                        "--kernel_dir", folder)
    return result, folder


@pytest.fixture(scope="module")
def host_driver(tmp_path_factory):
    """tests/cuda_host_emulation.cc built as a libcuda.so.1 stand-in -> its path."""
    library = tmp_path_factory.mktemp("host_driver") / "libcuda.so.1"
    build.compile_cxx([REPO_ROOT / "tests" / "cuda_host_emulation.cc"], BILINEAR_SAMPLE.include_dirs,
                      ("-Wl,-soname,libcuda.so.1",), library)
    return library


def test_concurrent_builds_leave_one_loadable_library_then_reuse_it(tmp_path, monkeypatch):
    with ThreadPoolExecutor(3) as executor:
        libraries = set(executor.map(lambda _: build.build_cpu_library(ROI_ALIGN, tmp_path), range(3)))
    (library,) = libraries
    assert sorted(p.name for p in tmp_path.iterdir()) == [library.name]
    assert ctypes.CDLL(str(library)).RoiAlignV2Backward

    def no_compiler_call(*args, **kwargs):
        raise AssertionError("the cached library should have been reused")

    monkeypatch.setattr(build.subprocess, "run", no_compiler_call)
    assert build.build_cpu_library(ROI_ALIGN, tmp_path) == library


def test_missing_compiler_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs g\\+\\+"):
        build.build_cpu_library(ROI_ALIGN, tmp_path)


def test_a_process_builds_each_library_once(tmp_path, monkeypatch):
    monkeypatch.setenv(build.KERNEL_DIR_ENV, str(tmp_path))
    kernels = build.KernelSources(ROI_ALIGN.csrc, ROI_ALIGN.name)
    calls = []
    monkeypatch.setattr(build, "build_cpu_library", lambda sources: calls.append(sources) or tmp_path / "lib.so")
    build.KernelSources.library.cache_clear()

    assert kernels.library("CPU") == kernels.library("CPU") == str(tmp_path / "lib.so")

    assert calls == [kernels]
    build.KernelSources.library.cache_clear()


def test_nvrtc_compiles_every_cuda_source_for_70_80_90_and_g_plus_plus_links_the_entry_points(gpu_libraries):
    result, folder = gpu_libraries
    assert result.returncode == 0, result.stderr
    for kernels, entry_points in ((ROI_ALIGN, ("RoiAlignV2Forward", "RoiAlignV2Backward")),
                                  (BILINEAR_SAMPLE, ("BilinearSampleForward", "BilinearSampleBackward",
                                                     "BilinearSampleAddReluForward", "BilinearSampleAddReluBackward"))):
        for architecture in ARCHITECTURES:
            library = build.gpu_library_path(kernels, architecture, folder)
            assert str(library) in result.stdout.split()
            loaded = ctypes.CDLL(str(library))  # loads without a driver: libcuda is opened at the first launch
            assert all(hasattr(loaded, name) for name in entry_points)


def test_compiling_with_nvrtc_leaves_pythons_encoding_as_it_was():
    """NVRTC switches the calling thread's C locale; left so, Python would decode subprocess output as ASCII."""
    before = locale.getpreferredencoding(False)
    nvrtc = build.Nvrtc()
    nvrtc.compile(ROI_ALIGN.cuda_source, build.nvrtc_options(ROI_ALIGN, "compute_70"))
    assert locale.getpreferredencoding(False) == before


def test_the_build_command_fails_for_an_architecture_nvrtc_cannot_target(tmp_path):
    result = run_python("-m", "maskrcnn.layers.build", "--device_target", "GPU", "--arch", "10", "--kernel_dir",
                        tmp_path)
    assert result.returncode == 1
    assert "none up to 10" in result.stderr


def test_a_gpu_newer_than_nvrtc_gets_ptx_of_the_newest_architecture_it_knows():
    nvrtc = build.Nvrtc()
    supported = nvrtc.supported_architectures()
    assert {70, 80, 90} <= set(supported)
    assert build.nvrtc_target(90, supported) == "sm_90"
    assert build.nvrtc_target(120, supported) == "compute_90"
    ptx = nvrtc.compile(ROI_ALIGN.cuda_source, build.nvrtc_options(ROI_ALIGN, "compute_90"))
    assert b".target sm_90" in ptx and ptx.endswith(b"\0")
    assert b"fma." not in ptx  # --fmad=false: every product and sum rounded as written, as on the CPU


def test_nvrtc_errors_show_its_log_and_a_missing_nvrtc_names_the_wheel(tmp_path, monkeypatch):
    broken = tmp_path / "broken_gpu.cu"
    broken.write_text('extern "C" __global__ void k(float *x) { x[0] = undeclared; }\n')
    with pytest.raises(RuntimeError, match=r"(?s)broken_gpu\.cu.*undeclared"):
        build.Nvrtc().compile(broken, ("--gpu-architecture=sm_90",))

    monkeypatch.setattr(build, "NVRTC_LIBRARY", "libnvrtc.so.0-absent")
    monkeypatch.setattr(build.Nvrtc, "wheel_library", staticmethod(lambda: None))
    with pytest.raises(RuntimeError, match=r"libnvrtc\.so\.0-absent.*pip install nvidia-cuda-nvrtc-cu11==11\.8\.89"):
        build.Nvrtc()


def test_gpu_entry_points_check_shapes_on_the_host_and_name_a_missing_driver(gpu_libraries):
    _, folder = gpu_libraries
    code = f"""
from pathlib import Path
import numpy as np
from tools import check_gpu_kernels as check
from maskrcnn.layers.build import gpu_library_path
library = gpu_library_path(check.BILINEAR_SAMPLE, 90, Path("{folder}"))
executor = check.EntryPointExecutor(np, {{"bilinear_sample": library}})
maps, points = np.zeros((1, 4, 4, 3), np.float32), np.zeros((5, 2), np.float32)
for batch_index in (np.zeros(4, np.int32), np.zeros(5, np.int32)):
    try:
        executor.sample_forward(maps, points, batch_index)
    except RuntimeError as error:
        print(error)
"""
    try:
        ctypes.CDLL("libcuda.so.1")
        pytest.skip("this machine has an NVIDIA driver")
    except OSError:
        pass
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("BilinearSampleForward returned 1") == 2
    shape_error, driver_error = result.stderr.splitlines()
    assert shape_error == "bilinear_sample kernel: batch index must be int32 (P,)"
    assert driver_error.startswith("bilinear_sample kernel: cannot load libcuda.so.1, the NVIDIA driver's CUDA library")


def test_the_gpu_path_under_a_host_emulated_driver_matches_the_references_and_the_cpu_kernels(gpu_libraries,
                                                                                               host_driver):
    """The entry points, their launches and the CUDA kernels (compiled for the host) through the check script's
    checks; pooled values equal the CPU kernel's exactly (same arithmetic in the same order)."""
    _, folder = gpu_libraries
    code = f"""
import ctypes
ctypes.CDLL("{host_driver}", mode=ctypes.RTLD_GLOBAL)  # found by its soname when the entry points open libcuda.so.1
import sys
from pathlib import Path
import numpy as np
from maskrcnn.layers.build import build_cpu_library
from tools import check_gpu_kernels as check
folder = Path("{folder}")
gpu = check.EntryPointExecutor(np, check.gpu_entry_points(folder, 90))
cpu = check.EntryPointExecutor(np, {{k.name: build_cpu_library(k, folder) for k in (check.ROI_ALIGN,
                                                                                     check.BILINEAR_SAMPLE)}})
failures = check.run_checks(gpu, np.random.default_rng(0))
for case in check.roi_align_cases(np.random.default_rng(1)):
    inputs = (case.features, case.rois, case.levels, case.extents, case.scales,
              np.array([case.sampling_ratio], np.int32), case.pooled)
    failures += not np.array_equal(gpu.roi_align_forward(*inputs), cpu.roi_align_forward(*inputs))
sys.exit(failures)
"""
    result = run_python("-c", code)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 27 and "FAIL" not in result.stdout


def test_the_check_script_compiles_the_builders_sources_needs_no_mindspore_and_documents_the_device_run():
    assert check_gpu_kernels.ROI_ALIGN == ROI_ALIGN and check_gpu_kernels.BILINEAR_SAMPLE == BILINEAR_SAMPLE
    result = run_python("-c", "import sys; sys.modules['mindspore'] = sys.modules['cupy'] = None; "
                              "sys.argv = ['check_gpu_kernels.py', '--help']; "
                              "import runpy; runpy.run_path('tools/check_gpu_kernels.py', run_name='__main__')")
    assert result.returncode == 0, result.stderr
    assert 'run(command="python tools/check_gpu_kernels.py", timeout_s=300)' in result.stdout
