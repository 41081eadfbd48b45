// A stand-in for the NVIDIA driver's libcuda.so.1, for the CPU tests: the CUDA kernels of roi_align_gpu.cu and
// bilinear_sample_gpu.cu compiled for the host, behind the driver functions the GPU entry points call
// (cuda_driver.h). A launch runs its threads one after another on host memory (so atomics are plain adds) and the
// module image is ignored. Loaded into a process before the entry points, it lets their parameter handling,
// launches, zeroing and the kernels' indexing run, and be compared with the references, on a machine without a GPU.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <utility>

// What the kernels use of CUDA, on the host.
#define __global__
#define __device__
struct HostDim3 {
  unsigned x = 1, y = 1, z = 1;
};
static HostDim3 threadIdx, blockIdx, blockDim, gridDim;
inline float atomicAdd(float *address, float value) {
  const float old = *address;
  *address = old + value;
  return old;
}

#include "bilinear_sample_gpu.cu"
#include "roi_align_gpu.cu"

namespace {

using Kernel = std::function<void(void **)>;

template <typename... Args, size_t... I>
void call(void (*kernel)(Args...), void **args, std::index_sequence<I...>) {
  kernel(*static_cast<std::decay_t<Args> *>(args[I])...);
}

// The kernel as cuLaunchKernel calls it: with a pointer to each argument.
template <typename... Args>
Kernel with_argument_pointers(void (*kernel)(Args...)) {
  return [kernel](void **args) { call(kernel, args, std::index_sequence_for<Args...>{}); };
}

const std::map<std::string, Kernel> &kernels() {
  static const std::map<std::string, Kernel> table = {
      {"roi_align_forward", with_argument_pointers(roi_align_forward)},
      {"roi_align_backward", with_argument_pointers(roi_align_backward)},
      {"bilinear_sample_forward", with_argument_pointers(bilinear_sample_forward)},
      {"bilinear_sample_add_relu_forward", with_argument_pointers(bilinear_sample_add_relu_forward)},
      {"bilinear_sample_scatter", with_argument_pointers(bilinear_sample_scatter)},
      {"relu_gradient", with_argument_pointers(relu_gradient)},
      {"column_sums", with_argument_pointers(column_sums)},
  };
  return table;
}

int the_context, the_module;
constexpr int kNotFound = 500;  // CUDA_ERROR_NOT_FOUND

}  // namespace

extern "C" {

int cuInit(unsigned) { return 0; }

int cuGetErrorString(int, const char **text) {
  *text = "CUDA_ERROR_NOT_FOUND (host emulation)";
  return 0;
}

int cuStreamGetCtx(void *, void **context) {
  *context = &the_context;
  return 0;
}

int cuCtxPushCurrent_v2(void *) { return 0; }

int cuCtxPopCurrent_v2(void **context) {
  *context = &the_context;
  return 0;
}

int cuModuleLoadData(void **module, const void *) {
  *module = &the_module;
  return 0;
}

int cuModuleGetFunction(void **function, void *, const char *name) {
  const auto found = kernels().find(name);
  if (found == kernels().end()) return kNotFound;
  *function = const_cast<Kernel *>(&found->second);
  return 0;
}

int cuLaunchKernel(void *function, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x,
                   unsigned block_y, unsigned block_z, unsigned, void *, void **args, void **) {
  const Kernel &kernel = *static_cast<const Kernel *>(function);
  gridDim = {grid_x, grid_y, grid_z};
  blockDim = {block_x, block_y, block_z};
  for (blockIdx.z = 0; blockIdx.z < grid_z; ++blockIdx.z)
    for (blockIdx.y = 0; blockIdx.y < grid_y; ++blockIdx.y)
      for (blockIdx.x = 0; blockIdx.x < grid_x; ++blockIdx.x)
        for (threadIdx.z = 0; threadIdx.z < block_z; ++threadIdx.z)
          for (threadIdx.y = 0; threadIdx.y < block_y; ++threadIdx.y)
            for (threadIdx.x = 0; threadIdx.x < block_x; ++threadIdx.x) kernel(args);
  return 0;
}

int cuMemsetD32Async(uint64_t address, unsigned value, size_t count, void *) {
  uint32_t *words = reinterpret_cast<uint32_t *>(address);
  std::fill(words, words + count, value);
  return 0;
}

}  // extern "C"
