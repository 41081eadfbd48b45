// How the GPU entry points (<name>_gpu.cc) run their CUDA kernels: the compiled module that build.py links into
// each entry-point library, loaded through the CUDA driver API, whose few functions are looked up in libcuda.so.1
// (the NVIDIA driver) at run time. The entry points are therefore compiled by g++ alone, with no CUDA headers or
// libraries, and kernels launch on the stream MindSpore hands to each op, in the stream's own context.
#pragma once

#include <dlfcn.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "aot_kernel.h"

// The module compiled from <name>_gpu.cu by NVRTC (a CUBIN, or NUL-terminated PTX), defined in a source file that
// build.py generates. Hidden, like everything below (an unnamed namespace), so that each entry-point library keeps
// its own module and driver state even when several are loaded into one process.
extern "C" __attribute__((visibility("hidden"))) const unsigned char kernel_module_image[];

namespace cuda {
namespace {

using Result = int;  // CUresult; 0 is CUDA_SUCCESS
using Context = struct CUctx_st *;
using Module = struct CUmod_st *;
using Function = struct CUfunc_st *;
using Stream = struct CUstream_st *;

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

constexpr unsigned kThreadsPerBlock = 256;

// One thread per element: ceil(count / kThreadsPerBlock) blocks.
inline Dim3 blocks_for(int64_t count) {
  return {static_cast<unsigned>((count + kThreadsPerBlock - 1) / kThreadsPerBlock), 1, 1};
}

// The driver functions used here, from libcuda.so.1, initialised once per process.
struct Driver {
  Result (*init)(unsigned);
  Result (*error_string)(Result, const char **);
  Result (*stream_context)(Stream, Context *);
  Result (*push_context)(Context);
  Result (*pop_context)(Context *);
  Result (*load_module)(Module *, const void *);
  Result (*get_function)(Function *, Module, const char *);
  Result (*launch)(Function, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, Stream, void **,
                   void **);
  Result (*memset32_async)(uint64_t, unsigned, size_t, Stream);
  std::string error;  // why the driver is unusable; empty when it is

  Driver() {
    void *library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      error = std::string("cannot load libcuda.so.1, the NVIDIA driver's CUDA library (is the driver installed?): ") +
              dlerror();
      return;
    }
    const bool found = find(library, "cuInit", &init) && find(library, "cuGetErrorString", &error_string) &&
                       find(library, "cuStreamGetCtx", &stream_context) &&
                       find(library, "cuCtxPushCurrent_v2", &push_context) &&
                       find(library, "cuCtxPopCurrent_v2", &pop_context) &&
                       find(library, "cuModuleLoadData", &load_module) &&
                       find(library, "cuModuleGetFunction", &get_function) &&
                       find(library, "cuLaunchKernel", &launch) &&
                       find(library, "cuMemsetD32Async", &memset32_async);
    if (found && init(0) != 0) error = "cuInit failed: no usable GPU";
  }

  template <typename F>
  bool find(void *library, const char *name, F *function) {
    *function = reinterpret_cast<F>(dlsym(library, name));
    if (*function == nullptr) error = std::string("libcuda.so.1 lacks ") + name;
    return *function != nullptr;
  }

  // "<what>: <the driver's name for result>".
  std::string describe(const char *what, Result result) const {
    const char *text = nullptr;
    if (error_string(result, &text) != 0 || text == nullptr) text = "unknown CUDA error";
    return std::string(what) + ": " + text + " (CUresult " + std::to_string(result) + ")";
  }
};

inline Driver &driver() {
  static Driver instance;
  return instance;
}

// The kernel `name` of the embedded module, loaded once per context.
inline Result find_function(const Driver &d, Context context, const char *name, Function *function) {
  static std::mutex mutex;
  static std::map<Context, Module> modules;
  static std::map<std::pair<Context, std::string>, Function> functions;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto known = functions.find({context, name});
  if (known != functions.end()) {
    *function = known->second;
    return 0;
  }
  auto module = modules.find(context);
  if (module == modules.end()) {
    Module loaded = nullptr;
    if (const Result result = d.load_module(&loaded, kernel_module_image)) return result;
    module = modules.emplace(context, loaded).first;
  }
  if (const Result result = d.get_function(function, module->second, name)) return result;
  functions[{context, name}] = *function;
  return 0;
}

// Runs `work(driver, context)`, which returns a driver result, with the context of `stream` current; false after
// printing why (naming `kernel`, and `what` when `work` fails) when the driver is unusable or `work` fails.
template <typename Work>
bool in_stream_context(const char *kernel, void *stream, const char *what, Work work) {
  Driver &d = driver();
  if (!d.error.empty()) return aot::fail(kernel, d.error);
  Context context = nullptr;
  if (const Result result = d.stream_context(static_cast<Stream>(stream), &context))
    return aot::fail(kernel, d.describe("cuStreamGetCtx", result));
  if (const Result result = d.push_context(context)) return aot::fail(kernel, d.describe("cuCtxPushCurrent", result));
  const Result result = work(d, context);
  Context popped = nullptr;
  d.pop_context(&popped);
  return result == 0 || aot::fail(kernel, d.describe(what, result));
}

// Launches kernel `function` of the embedded module on `stream`; args points to each kernel argument.
inline bool launch(const char *kernel, const char *function, Dim3 grid, Dim3 block, unsigned shared_bytes,
                   void *stream, void **args) {
  if (grid.x == 0) return true;  // nothing to compute
  return in_stream_context(kernel, stream, function, [&](const Driver &d, Context context) {
    Function f = nullptr;
    if (const Result result = find_function(d, context, function, &f)) return result;
    return d.launch(f, grid.x, grid.y, grid.z, block.x, block.y, block.z, shared_bytes, static_cast<Stream>(stream),
                    args, nullptr);
  });
}

// Zeroes `count` floats at device address `data`, on `stream`.
inline bool zero(const char *kernel, void *data, int64_t count, void *stream) {
  if (count == 0) return true;
  return in_stream_context(kernel, stream, "cuMemsetD32Async", [&](const Driver &d, Context) {
    return d.memset32_async(reinterpret_cast<uint64_t>(data), 0u, static_cast<size_t>(count),
                            static_cast<Stream>(stream));
  });
}

}  // namespace
}  // namespace cuda
