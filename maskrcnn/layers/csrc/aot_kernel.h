// What every MindSpore AOT entry point here shares (CPU kernels and GPU launchers): dtype checks, error reporting,
// and the entry-point guard. MindSpore calls an entry point as f(nparam, params, ndims, shapes, dtypes, stream,
// extra), params being host pointers on the CPU and device pointers on the GPU (shapes and dtypes are host arrays,
// stream the op's cudaStream_t on the GPU), and raises when it returns nonzero; the reason is printed to stderr
// first.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

namespace aot {

// A kernel body: false (after printing why) when the inputs are not what it takes or the launch failed.
using KernelBody = bool (*)(int nparam, void **params, const int *ndims, int64_t **shapes, const char **dtypes,
                            void *stream);

inline bool is_dtype(const char *dtype, const char *expected) { return std::strcmp(dtype, expected) == 0; }

inline bool fail(const char *kernel, const std::string &reason) {
  std::fprintf(stderr, "%s kernel: %s\n", kernel, reason.c_str());
  return false;
}

// Runs `body` as an entry point: 0 on success, 1 on failure or on an exception (none may cross into MindSpore).
inline int run(const char *kernel, KernelBody body, int nparam, void **params, int *ndims, int64_t **shapes,
               const char **dtypes, void *stream) {
  try {
    return body(nparam, params, ndims, shapes, dtypes, stream) ? 0 : 1;
  } catch (const std::exception &error) {
    fail(kernel, error.what());
    return 1;
  }
}

}  // namespace aot

// Defines the entry point `function` (extern "C", as MindSpore looks it up) running `body` for the kernel named
// `kernel` through aot::run.
#define AOT_ENTRY_POINT(function, kernel, body)                                                                 \
  extern "C" int function(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,         \
                          void *stream, void *) {                                                               \
    return aot::run(kernel, body, nparam, params, ndims, shapes, dtypes, stream);                               \
  }
