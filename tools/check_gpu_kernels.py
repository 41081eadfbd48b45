#!/usr/bin/env python3
"""Checks the CUDA kernels of ROIAlignV2 and of PointRend's bilinear point sampling on a GPU, without MindSpore.

Compiles maskrcnn/layers/csrc/roi_align_gpu.cu and maskrcnn_pointrend/layers/csrc/bilinear_sample_gpu.cu -- the
files maskrcnn/layers/build.py compiles for MindSpore, with its NVRTC options -- through CuPy's RawModule, runs
every forward and backward kernel on random inputs and on edge cases (ROIs on every FPN level; tiny, huge and
elongated boxes; boxes partly outside the map; skipped ROIs; points on the map's corners and borders, just inside
and outside it, far away and non-finite), compares them with the numpy references of tools/kernel_references.py
(the CPU tests' references): max abs error <= 1e-5 forward, <= 1e-4 backward. Then prints each kernel's time at
R50-FPN training sizes (2 images of 800 x 1344).

With --entry_points DIR it runs the same checks and timings through the AOT entry points MindSpore calls (the
libraries `python -m maskrcnn.layers.build --device_target GPU --arch 90 --kernel_dir DIR` builds: the kernels
compiled by NVRTC 11.8, launched by the g++ entry points through the CUDA driver), on CuPy's stream.

Needs Python 3, numpy and CuPy for the GPU's CUDA version; neither MindSpore nor the CUDA 11 wheels. Exits
non-zero when a check fails. Takes under a minute plus CuPy's first compilation. With the device tool (the working
tree is copied; carry nothing, or only the few hundred KB of prebuilt entry points):

    run(command="python tools/check_gpu_kernels.py", timeout_s=300)

    # after `python -m maskrcnn.layers.build --device_target GPU --arch 90 --kernel_dir build/kernels` here:
    run(command="python tools/check_gpu_kernels.py --entry_points build/kernels", carry=["build/kernels"],
        timeout_s=300)
"""
import argparse
import ctypes
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from maskrcnn.layers.build import (COMMON_CSRC, NVRTC_OPTIONS, KernelSources,  # noqa: E402
                                   gpu_library_path)
from tools import kernel_references as refs  # noqa: E402

ROI_ALIGN = KernelSources(COMMON_CSRC, "roi_align")
BILINEAR_SAMPLE = KernelSources(REPO_ROOT / "maskrcnn_pointrend" / "layers" / "csrc", "bilinear_sample")
FORWARD_TOLERANCE, BACKWARD_TOLERANCE = 1e-5, 1e-4
FPN_STRIDES = (4, 8, 16, 32)  # p2..p5, the ROI heads' levels
THREADS = 256  # per block, as cuda_driver.h's kThreadsPerBlock
SUM_BLOCK = (32, 8, 1)  # column_sums' block, as bilinear_sample_gpu.cc's
ROWS_PER_SUM_THREAD = 256

# roi_align::LevelMaps and bilinear_sample::SampleShape as passed by value (see roi_align.h, bilinear_sample.h).
LEVEL_MAPS = np.dtype({"names": ["data", "height", "width"], "formats": [("<u8", 8), ("<i4", 8), ("<i4", 8)],
                       "offsets": [0, 64, 96], "itemsize": 128})
SAMPLE_SHAPE = np.dtype([("sizes", "<i8", 5)])


# ---- inputs ----

@dataclass
class RoiAlignCase:
    name: str
    features: list  # L (N, C, H_l, W_l) float32
    rois: np.ndarray  # (R, 5) float32
    levels: np.ndarray  # (R,) int32
    extents: np.ndarray  # (N, 2) int32 input pixels of each image
    scales: np.ndarray  # (L,) float32
    sampling_ratio: int
    pooled: int
    grad_output: np.ndarray  # (R, C, P, P) float32


@dataclass
class SampleCase:
    name: str
    maps: np.ndarray  # (N, H, W, C) float32
    points: np.ndarray  # (P, 2) float32
    batch_index: np.ndarray  # (P,) int32
    base: np.ndarray  # (P, C) float32
    bias: np.ndarray  # (C,) float32
    grad_output: np.ndarray  # (P, C) float32


def whole_extents(features):
    """(N, 2) extents of the whole maps of a case."""
    batch, _, height, width = features[0].shape
    return np.array([[height * FPN_STRIDES[0], width * FPN_STRIDES[0]]] * batch, np.int32)


def roi_align_case(name, rng, features, rois, levels, sampling_ratio, pooled, extents=None):
    grad_output = rng.standard_normal((len(rois), features[0].shape[1], pooled, pooled)).astype(np.float32)
    scales = np.array([1 / s for s in FPN_STRIDES[:len(features)]], np.float32)
    extents = whole_extents(features) if extents is None else extents
    return RoiAlignCase(name, features, rois, levels, extents, scales, sampling_ratio, pooled, grad_output)


def random_rois(rng, count, canvas, num_levels):
    """(count, 5) boxes of exponentially distributed sizes anywhere on (and around) a 2-image canvas, random
    levels."""
    height, width = canvas
    x1, y1 = rng.uniform(-0.1 * width, width, count), rng.uniform(-0.1 * height, height, count)
    boxes = np.stack([x1, y1, x1 + rng.exponential(width / 8, count), y1 + rng.exponential(height / 8, count)], 1)
    rois = np.concatenate([rng.integers(0, 2, count)[:, None], boxes], 1).astype(np.float32)
    return rois, rng.integers(0, num_levels, count).astype(np.int32)


def roi_align_cases(rng, scale=1):
    """The edge cases of kernel_references.make_rois on p2..p5 (adaptive grid at P = 7, fixed 2 x 2 grid at P = 14)
    and random boxes, the second image's extent smaller than the canvas; `scale` multiplies the number of random
    boxes."""
    canvas = (64, 960)
    features = refs.make_features(rng, FPN_STRIDES, canvas, 4)
    rois, levels = refs.make_rois(rng, canvas, len(FPN_STRIDES))
    random_canvas = (160, 224)
    random_features = refs.make_features(rng, FPN_STRIDES, random_canvas, 8)
    return [roi_align_case("edge cases, P=7, adaptive grid", rng, features, rois, levels, 0, 7),
            roi_align_case("edge cases, P=14, 2x2 grid", rng, features, rois, levels, 2, 14),
            roi_align_case(f"{60 * scale} random boxes, P=7, extents 160x224 and 100x150", rng, random_features,
                           *random_rois(rng, 60 * scale, random_canvas, len(FPN_STRIDES)), 0, 7,
                           np.array([random_canvas, [100, 150]], np.int32))]


def sample_case(name, rng, maps, points, batch_index):
    count, channels = len(points), maps.shape[-1]
    return SampleCase(name, maps, points, batch_index, rng.standard_normal((count, channels)).astype(np.float32),
                      rng.standard_normal(channels).astype(np.float32),
                      rng.standard_normal((count, channels)).astype(np.float32))


def sample_cases(rng, scale=1):
    """Edge-case points (kernel_references.make_points) on small maps, and random points on larger ones."""
    small = rng.standard_normal((3, 9, 11, 6)).astype(np.float32)
    large = rng.standard_normal((2, 28, 36, 64)).astype(np.float32)
    return [sample_case("edge-case points", rng, small, *refs.make_points(rng, 400, 3)),
            sample_case(f"{2000 * scale} random points, 64 channels", rng, large,
                        *refs.make_points(rng, 2000 * scale, 2))]


# ---- executors: the kernels launched directly (CuPy), or through the AOT entry points ----

def blocks_for(count):
    return ((count + THREADS - 1) // THREADS, 1, 1)


class RawModuleExecutor:
    """The kernels compiled by CuPy's RawModule and launched as the entry points launch them."""

    def __init__(self, cupy):
        self.xp = cupy
        self.modules = {kernels.name: cupy.RawModule(code=kernels.cuda_source.read_text(), options=(
            *NVRTC_OPTIONS, *(f"--include-path={folder}" for folder in kernels.include_dirs)))
            for kernels in (ROI_ALIGN, BILINEAR_SAMPLE)}

    def launch(self, module, function, grid, block, *args):
        if grid[0] > 0:
            self.modules[module].get_function(function)(grid, block, args)

    def level_maps(self, maps):
        value = np.zeros(1, LEVEL_MAPS)
        for level, array in enumerate(maps):
            value["data"][0, level] = array.data.ptr
            value["height"][0, level], value["width"][0, level] = array.shape[2:]
        return value

    def roi_align(self, function, maps, pooled_data, rois, levels, extents, scales, ratio, pooled):
        batch, channels = maps[0].shape[:2]
        self.launch("roi_align", function, blocks_for(len(rois) * channels * pooled * pooled), (THREADS, 1, 1),
                    self.level_maps(maps), np.int32(len(maps)), np.int64(batch), np.int64(channels), rois, levels,
                    extents, scales, ratio, np.int64(len(rois)), np.int32(pooled), pooled_data)

    def roi_align_forward(self, features, rois, levels, extents, scales, ratio, pooled):
        out = self.xp.empty((len(rois), features[0].shape[1], pooled, pooled), np.float32)
        self.roi_align("roi_align_forward", features, out, rois, levels, extents, scales, ratio, pooled)
        return out

    def roi_align_backward(self, grad_output, rois, levels, extents, scales, ratio, features):
        grads = [self.xp.zeros_like(f) for f in features]
        self.roi_align("roi_align_backward", grads, grad_output, rois, levels, extents, scales, ratio,
                       grad_output.shape[2])
        return grads

    @staticmethod
    def sample_shape(maps, points):
        return np.array([((*maps.shape, len(points)),)], SAMPLE_SHAPE)

    def sample_forward(self, maps, points, batch_index):
        out = self.xp.empty((len(points), maps.shape[3]), np.float32)
        self.launch("bilinear_sample", "bilinear_sample_forward", blocks_for(out.size), (THREADS, 1, 1),
                    self.sample_shape(maps, points), maps, points, batch_index, out)
        return out

    def sample_backward(self, grad_output, maps, points, batch_index):
        grad = self.xp.zeros_like(maps)
        self.launch("bilinear_sample", "bilinear_sample_scatter", blocks_for(grad_output.size), (THREADS, 1, 1),
                    self.sample_shape(maps, points), grad_output, points, batch_index, grad)
        return grad

    def add_relu_forward(self, base, maps, points, batch_index, bias):
        out = self.xp.empty_like(base)
        self.launch("bilinear_sample", "bilinear_sample_add_relu_forward", blocks_for(out.size), (THREADS, 1, 1),
                    self.sample_shape(maps, points), base, maps, points, batch_index, bias, out)
        return out

    def add_relu_backward(self, grad_output, output, maps, points, batch_index):
        grad_base = self.xp.empty_like(grad_output)
        self.launch("bilinear_sample", "relu_gradient", blocks_for(grad_base.size), (THREADS, 1, 1),
                    np.int64(grad_base.size), grad_output, output, grad_base)
        grad_bias = self.xp.zeros(grad_base.shape[1], np.float32)
        rows, channels = grad_base.shape
        grid = (-(-channels // SUM_BLOCK[0]), min(max(-(-rows // (SUM_BLOCK[1] * ROWS_PER_SUM_THREAD)), 1), 65535), 1)
        self.launch("bilinear_sample", "column_sums", grid, SUM_BLOCK, np.int64(rows), np.int64(channels), grad_base,
                    grad_bias)
        return grad_base, self.sample_backward(grad_base, maps, points, batch_index), grad_bias


def gpu_entry_points(kernel_dir: Path, architecture: int) -> dict:
    """{kernel library name: path} of the GPU entry-point libraries for the current sources in `kernel_dir`."""
    libraries = {}
    for kernels in (ROI_ALIGN, BILINEAR_SAMPLE):
        libraries[kernels.name] = path = gpu_library_path(kernels, architecture, kernel_dir)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: build it with `python -m maskrcnn.layers.build "
                                    f"--device_target GPU --arch {architecture} --kernel_dir {kernel_dir}`")
    return libraries


class EntryPointExecutor:
    """AOT entry points (`libraries`: {kernel library name: path}) called as MindSpore calls them: data pointers,
    host shapes and dtypes, the stream. `xp` allocates the arrays: CuPy for the GPU libraries; numpy for the CPU
    libraries, or for the GPU ones where a stand-in driver runs their kernels on the host."""

    def __init__(self, xp, libraries: dict, stream=None):
        self.xp, self.stream = xp, stream
        self.libraries = {name: ctypes.CDLL(str(path)) for name, path in libraries.items()}

    def pointer(self, array):
        return array.data.ptr if self.xp.__name__ == "cupy" else array.ctypes.data

    def call(self, library, function, *arrays):
        """function(nparam, params, ndims, shapes, dtypes, stream, extra) of `library` on `arrays`."""
        count = len(arrays)
        shape_arrays = [(ctypes.c_int64 * max(a.ndim, 1))(*a.shape) for a in arrays]
        params = (ctypes.c_void_p * count)(*map(self.pointer, arrays))
        ndims = (ctypes.c_int * count)(*(a.ndim for a in arrays))
        shapes = (ctypes.POINTER(ctypes.c_int64) * count)(
            *(ctypes.cast(s, ctypes.POINTER(ctypes.c_int64)) for s in shape_arrays))
        dtypes = (ctypes.c_char_p * count)(*(str(a.dtype).encode() for a in arrays))
        status = getattr(self.libraries[library], function)(count, params, ndims, shapes, dtypes,
                                                            ctypes.c_void_p(self.stream), None)
        if status != 0:
            raise RuntimeError(f"{function} returned {status} (its reason is on stderr)")

    def roi_align_forward(self, features, rois, levels, extents, scales, ratio, pooled):
        out = self.xp.empty((len(rois), features[0].shape[1], pooled, pooled), np.float32)
        self.call("roi_align", "RoiAlignV2Forward", *features, rois, levels, extents, scales, ratio, out)
        return out

    def roi_align_backward(self, grad_output, rois, levels, extents, scales, ratio, features):
        grads = [self.xp.empty_like(f) for f in features]
        self.call("roi_align", "RoiAlignV2Backward", grad_output, rois, levels, extents, scales, ratio, *features,
                  *grads)
        return grads

    def sample_forward(self, maps, points, batch_index):
        out = self.xp.empty((len(points), maps.shape[3]), np.float32)
        self.call("bilinear_sample", "BilinearSampleForward", maps, points, batch_index, out)
        return out

    def sample_backward(self, grad_output, maps, points, batch_index):
        grad = self.xp.empty_like(maps)
        self.call("bilinear_sample", "BilinearSampleBackward", grad_output, maps, points, batch_index, grad)
        return grad

    def add_relu_forward(self, base, maps, points, batch_index, bias):
        out = self.xp.empty_like(base)
        self.call("bilinear_sample", "BilinearSampleAddReluForward", base, maps, points, batch_index, bias, out)
        return out

    def add_relu_backward(self, grad_output, output, maps, points, batch_index):
        grads = (self.xp.empty_like(grad_output), self.xp.empty_like(maps),
                 self.xp.empty(maps.shape[3], np.float32))
        self.call("bilinear_sample", "BilinearSampleAddReluBackward", grad_output, output, maps, points, batch_index,
                  *grads)
        return grads


# ---- checks ----

def to_host(xp, array):
    return xp.asnumpy(array) if xp.__name__ == "cupy" else array


def max_error(xp, got, expected):
    """Max abs difference; inf when shapes differ or `got` is not finite where `expected` is."""
    got = to_host(xp, got)
    if got.shape != np.shape(expected):
        return float("inf")
    return float(np.nan_to_num(np.abs(got - expected), nan=np.inf).max(initial=0))


def check_roi_align(executor, case: RoiAlignCase):
    """[(what, max abs error, tolerance)] of forward and backward against the reference."""
    xp = executor.xp
    expected_pooled, expected_grads = refs.reference_roi_align(case.features, case.rois, case.levels, case.scales,
                                                               case.pooled, case.sampling_ratio, case.grad_output,
                                                               case.extents)
    features = [xp.asarray(f) for f in case.features]
    rois, levels, scales = xp.asarray(case.rois), xp.asarray(case.levels), xp.asarray(case.scales)
    extents = xp.asarray(case.extents)
    ratio = xp.asarray(np.array([case.sampling_ratio], np.int32))
    pooled = executor.roi_align_forward(features, rois, levels, extents, scales, ratio, case.pooled)
    grads = executor.roi_align_backward(xp.asarray(case.grad_output), rois, levels, extents, scales, ratio, features)
    return [(f"ROIAlignV2 forward, {case.name}", max_error(xp, pooled, expected_pooled), FORWARD_TOLERANCE)] + [
        (f"ROIAlignV2 backward level {level}, {case.name}", max_error(xp, grad, expected), BACKWARD_TOLERANCE)
        for level, (grad, expected) in enumerate(zip(grads, expected_grads))]


def check_sampling(executor, case: SampleCase):
    """[(what, max abs error, tolerance)] of BilinearSample and BilinearSampleAddRelu forward and backward."""
    xp = executor.xp
    maps, points, batch_index = xp.asarray(case.maps), xp.asarray(case.points), xp.asarray(case.batch_index)
    grad_output = xp.asarray(case.grad_output)
    sampled = executor.sample_forward(maps, points, batch_index)
    grad_maps = executor.sample_backward(grad_output, maps, points, batch_index)
    out, expected_grads = refs.reference_sample_add_relu(case.base, case.maps, case.points, case.batch_index,
                                                         case.bias, case.grad_output)
    fused = executor.add_relu_forward(xp.asarray(case.base), maps, points, batch_index, xp.asarray(case.bias))
    # The backward takes the reference's forward output, so that both agree on which activations are positive.
    fused_grads = executor.add_relu_backward(grad_output, xp.asarray(out.astype(np.float32)), maps, points,
                                             batch_index)
    expected_scatter = refs.reference_bilinear_scatter(case.grad_output, case.points, case.batch_index,
                                                       case.maps.shape)
    results = [
        (f"BilinearSample forward, {case.name}",
         max_error(xp, sampled, refs.reference_bilinear_sample(case.maps, case.points, case.batch_index)),
         FORWARD_TOLERANCE),
        (f"BilinearSample backward, {case.name}", max_error(xp, grad_maps, expected_scatter), BACKWARD_TOLERANCE),
        (f"BilinearSampleAddRelu forward, {case.name}", max_error(xp, fused, out), FORWARD_TOLERANCE)]
    return results + [(f"BilinearSampleAddRelu backward ({name}), {case.name}", max_error(xp, got, expected),
                       BACKWARD_TOLERANCE)
                      for name, got, expected in zip(("base", "maps", "bias"), fused_grads, expected_grads)]


def run_checks(executor, rng, scale=1):
    """Runs every check, printing one line each; the number that failed."""
    failures = 0
    results = [r for case in roi_align_cases(rng, scale) for r in check_roi_align(executor, case)]
    results += [r for case in sample_cases(rng, scale) for r in check_sampling(executor, case)]
    for what, error, tolerance in results:
        ok = error <= tolerance
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}: max abs error {error:.2e} (tolerance {tolerance:.0e})")
    return failures


# ---- timings (GPU) ----

def time_kernels(executor, repeat):
    """Prints the median time of each kernel over `repeat` runs at R50-FPN training sizes (2 images of 800 x 1344,
    256 channels): box-head and mask-head pooling, the point features and a point-head layer."""
    cupy, rng = executor.xp, np.random.default_rng(1)
    canvas = (800, 1344)
    features = [cupy.asarray(rng.standard_normal((2, 256, canvas[0] // s, canvas[1] // s), np.float32))
                for s in FPN_STRIDES]
    scales = cupy.asarray(np.array([1 / s for s in FPN_STRIDES], np.float32))
    extents = cupy.asarray(np.array([canvas] * 2, np.int32))
    ratio = cupy.asarray(np.zeros(1, np.int32))
    maps = cupy.asarray(rng.standard_normal((2, canvas[0] // 4, canvas[1] // 4, 256), np.float32))
    num_points = 2 * 128 * 196  # foreground boxes x training points per box
    points = cupy.asarray(rng.uniform(0, 1, (num_points, 2)).astype(np.float32))
    image_index = cupy.asarray(rng.integers(0, 2, num_points).astype(np.int32))
    box_index = cupy.asarray(np.repeat(np.arange(256, dtype=np.int32), 196))
    coarse = cupy.asarray(rng.standard_normal((256, 7, 7, 256), np.float32))
    rows = cupy.asarray(rng.standard_normal((num_points, 256), np.float32))
    bias = cupy.asarray(rng.standard_normal(256, np.float32))
    timings = {}
    for name, count, pooled in (("box head: 1024 ROIs, P=7", 1024, 7), ("mask head: 256 ROIs, P=14", 256, 14)):
        rois, levels = (cupy.asarray(a) for a in random_rois(rng, count, canvas, len(FPN_STRIDES)))
        grad = cupy.asarray(rng.standard_normal((count, 256, pooled, pooled), np.float32))
        timings[f"ROIAlignV2 forward, {name}"] = lambda rois=rois, levels=levels, pooled=pooled: (
            executor.roi_align_forward(features, rois, levels, extents, scales, ratio, pooled))
        timings[f"ROIAlignV2 backward, {name}"] = lambda rois=rois, levels=levels, grad=grad: (
            executor.roi_align_backward(grad, rois, levels, extents, scales, ratio, features))
    sample = f"{num_points} points of 256 channels"
    timings[f"BilinearSample forward, {sample} on p2"] = lambda: executor.sample_forward(maps, points, image_index)
    timings[f"BilinearSample backward, {sample} on p2"] = lambda: executor.sample_backward(
        rows, maps, points, image_index)
    timings[f"BilinearSampleAddRelu forward, {sample} on 256 boxes' 7x7 maps"] = lambda: executor.add_relu_forward(
        rows, coarse, points, box_index, bias)
    timings[f"BilinearSampleAddRelu backward, {sample} on 256 boxes' 7x7 maps"] = lambda: executor.add_relu_backward(
        rows, rows, coarse, points, box_index)
    for name, run in timings.items():
        run()
        cupy.cuda.get_current_stream().synchronize()
        seconds = []
        for _ in range(repeat):
            start, end = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            run()
            end.record()
            end.synchronize()
            seconds.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)
        print(f"{np.median(seconds) * 1e3:8.3f} ms  {name}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entry_points", type=Path, default=None,
                        help="also check the AOT entry-point libraries in this folder (built for this GPU)")
    parser.add_argument("--repeat", type=int, default=20, help="runs per timing (the median is printed)")
    args = parser.parse_args(argv)
    import cupy  # here, so that --help and the CPU tests need no CuPy

    device = cupy.cuda.Device()
    architecture = int(device.compute_capability)
    print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(device.id)['name'].decode()}, compute capability "
          f"{architecture}; CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, CuPy {cupy.__version__}")
    stream = cupy.cuda.Stream(non_blocking=True)  # a stream of its own, as MindSpore gives each op
    executors = {"CuPy RawModule": lambda: RawModuleExecutor(cupy)}
    if args.entry_points:
        executors["AOT entry points"] = lambda: EntryPointExecutor(
            cupy, gpu_entry_points(args.entry_points, architecture), stream.ptr)
    failures = 0
    with stream:
        for name, make in executors.items():
            print(f"== {name}")
            start = time.perf_counter()
            try:
                executor = make()
                failures += run_checks(executor, np.random.default_rng(0))
                print(f"checks took {time.perf_counter() - start:.1f} s; timings (median of {args.repeat}):")
                time_kernels(executor, args.repeat)
            except Exception as error:  # report it and go on with the next executor: one device run shows all
                failures += 1
                print(f"FAIL {name}: {type(error).__name__}: {error}")
    print("all checks passed" if not failures else f"{failures} checks FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
